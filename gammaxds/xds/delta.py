"""Incremental ADS (`DeltaAggregatedResources`)."""

from __future__ import annotations

import time

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DeltaDiscoveryResponse

from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Snapshot
from gammaxds.xds.stream import Outgoing, Stream
from gammaxds.xds.typestate import Held, TypeState


class DeltaStream(Stream):
    protocol = "delta"

    def handle(self, request: DeltaDiscoveryRequest) -> None:
        state = self.types.get(request.type_url)
        if state is None:
            state = self.types[request.type_url] = TypeState(request.type_url)
            # A reconnecting client says what it already holds: only what differs is sent.
            for name, version in request.initial_resource_versions.items():
                state.held[name] = Held(version, None, 0)
        nonce = request.response_nonce
        if nonce and state.is_outstanding(nonce):
            if request.HasField("error_detail"):
                # NACK: the client keeps its last good version. What we sent stays recorded as held, so the
                # rejected version is never sent again; the next real change is.
                self.nack(state, nonce, request.error_detail.message)
            else:
                self.ack(state, nonce)
        # Unknown or already settled nonces carry no ACK to record; subscription changes still apply,
        # since in delta each request carries only its own changes.
        dropped = state.subscription.update_delta(
            request.resource_names_subscribe, request.resource_names_unsubscribe
        )
        # An unsubscribed resource is dropped by the client itself (no removal is sent); if a wildcard still
        # covers it, the client expects it again.
        state.forget(dropped)
        state.forget_unwanted()

    def _response(
        self, state: TypeState, delivered: list[Resource], removed: list[str], absent: list[str]
    ) -> DeltaDiscoveryResponse:
        seq = self.next_seq()
        version = state.record_sent(
            seq, delivered, removed, absent, now=time.time(), monotonic=time.monotonic()
        )
        return DeltaDiscoveryResponse(
            system_version_info=version,
            resources=[res.delta for res in delivered],
            removed_resources=removed + absent,
            type_url=state.type_url,
            nonce=state.nonce,
        )

    def make_response(self, state: TypeState, snap: Snapshot, forced: set[str]) -> Outgoing | None:
        diff = state.diff(snap.of_type(state.type_url))
        send = dict(diff.changed)
        send.update({name: diff.target[name] for name in forced if name in diff.target})
        if not send:
            return None
        delivered = [send[name] for name in sorted(send)]
        return Outgoing(self._response(state, delivered, [], []), list(diff.changed.values()))

    def break_response(self, state: TypeState, snap: Snapshot) -> DeltaDiscoveryResponse | None:
        diff = state.diff(snap.of_type(state.type_url))
        # Removed resources, and names asked for that do not exist: both are reported as removed.
        if not diff.gone and not diff.absent and not state.reply_due:
            return None
        return self._response(state, [], diff.gone, diff.absent)
