"""Per-sidecar sync status, as CSDS messages and as the JSON behind `/debug/proxies` and `gammaxds status`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from envoy.admin.v3.config_dump_shared_pb2 import ClientResourceStatus, UpdateFailureState
from envoy.service.status.v3.csds_pb2 import ClientConfig, ConfigStatus
from google.protobuf.timestamp_pb2 import Timestamp

from gammaxds.translate.view import PUSH_ORDER
from gammaxds.xds.holdings import Entry
from gammaxds.xds.resources import Resource
from gammaxds.xds.stream import Stream, type_label
from gammaxds.xds.typestate import TypeState


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def resource_status(state: TypeState, name: str, held: Entry | None) -> tuple[int, int]:
    """(ConfigStatus, ClientResourceStatus) of one resource: sent? acknowledged? rejected?"""
    if held is None:
        return ConfigStatus.NOT_SENT, ClientResourceStatus.REQUESTED
    seq = state.delivered_in(name)
    if state.nack is not None and seq == state.nack.seq:
        return ConfigStatus.ERROR, ClientResourceStatus.NACKED
    if seq <= state.acked_seq:
        return ConfigStatus.SYNCED, ClientResourceStatus.ACKED
    return ConfigStatus.STALE, ClientResourceStatus.REQUESTED


def client_config(stream: Stream, *, contents: bool = True) -> ClientConfig:
    config = ClientConfig(node=stream.node)
    snap = stream.snapshot
    for type_url in PUSH_ORDER:
        state = stream.types.get(type_url)
        if state is None:
            continue
        available = snap.of_type(type_url) if snap is not None else {}
        wanted = state.target(available)
        for name in sorted(set(state.held_names()) | set(wanted)):
            held = state.held(name)
            config_status, client_status = resource_status(state, name, held)
            entry = config.generic_xds_configs.add(
                type_url=type_url,
                name=name,
                config_status=config_status,
                client_status=client_status,
                last_updated=_timestamp(state.last_updated),
            )
            if held is not None:
                entry.version_info = held.version
                if contents and isinstance(held, Resource):
                    entry.xds_config.CopyFrom(held.any)
            elif name in wanted:
                entry.version_info = wanted[name].version
            if config_status == ConfigStatus.ERROR and state.nack is not None:
                entry.error_state.CopyFrom(
                    UpdateFailureState(
                        details=state.nack.message,
                        version_info=entry.version_info,
                        last_update_attempt=_timestamp(state.nack.at),
                    )
                )
    return config


def _iso(seconds: float) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds") if seconds else None


def describe(stream: Stream) -> dict[str, Any]:
    """One connected sidecar, for `/debug/proxies`."""
    types: dict[str, Any] = {}
    for type_url in PUSH_ORDER:
        state = stream.types.get(type_url)
        if state is None:
            continue
        types[type_label(type_url)] = {
            "type_url": type_url,
            "sent_version": state.sent_version,
            "acked_version": state.acked_version,
            "synced": bool(state.nonce) and state.acked_seq == state.seq,
            "resources": len(state.holdings),
            "error": state.nack.message if state.nack else None,
            "error_version": state.nack.version if state.nack else None,
            "last_updated": _iso(state.last_updated),
        }
    key = stream.key
    return {
        "node_id": stream.node.id,
        "cluster": stream.node.cluster,
        "namespace": key.namespace if key else None,
        "capture": key.capture if key else None,
        "outbound_address": key.outbound if key else None,
        "protocol": stream.protocol,
        "peer": stream.peer,
        "connected_at": _iso(stream.connected_at),
        "responses": stream.responses,
        "types": types,
    }


def describe_all(streams: Iterable[Stream]) -> list[dict[str, Any]]:
    return [describe(s) for s in sorted(streams, key=lambda s: (s.node.id, s.id))]
