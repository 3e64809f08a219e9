"""The fan-out load generator: many ADS streams (SotW or delta) that subscribe and ACK like Envoy, in a
process apart from the control plane. Streams share a few channels (one HTTP/2 connection per 100 streams).

`python -m bench.loadgen TARGET sotw|delta [NAME]` (node ids NAME-0, NAME-1...) answers JSON-line commands
(see `proc.Worker`):
`connect(n, namespaces)` opens streams until every one has its first response of all four types;
`arm(cluster)` starts watching for that ClusterLoadAssignment; `collect(timeout)` waits until every stream
received it and returns per-stream receive times (CLOCK_MONOTONIC), bytes and resources received since `arm`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE

from .proc import profiling, serve_commands

SOTW_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
STREAMS_PER_CHANNEL = 100
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # a channel of its own is a connection of its own
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
]
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)

# What a resource's bytes name, parsed once per distinct bytes (every stream receives the same resources).
_parsed: dict[tuple[str, bytes], Any] = {}


# SotW requests repeat thousands of names, alike for the streams of one view; streams numbering their
# responses alike ACK with the very same bytes. One copy each: joining ~80 KB per ACK per stream cost the
# load generator, on the same cores as the server, ~85 µs an ACK (0.17 s a change at N = 2,000).
_names_encodings: dict[bytes, bytes] = {}
_sotw_acks: dict[tuple[str, str, str, bytes], bytes] = {}


def _eds_name(data: bytes) -> tuple[str, str | None]:
    c = Cluster.FromString(data)
    eds = c.eds_cluster_config.service_name or c.name if c.type == Cluster.EDS else None
    return c.name, eds


def _rds_names(data: bytes) -> tuple[str, frozenset[str]]:
    lis = Listener.FromString(data)
    names = set()
    for chain in [*lis.filter_chains, lis.default_filter_chain]:
        for f in chain.filters:
            if f.typed_config.type_url == HCM_TYPE:
                hcm = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                if hcm.HasField("rds"):
                    names.add(hcm.rds.route_config_name)
    return lis.name, frozenset(names)


def _cla_name(data: bytes) -> str:
    return ClusterLoadAssignment.FromString(data).cluster_name


def parsed(type_url: str, data: bytes) -> Any:
    key = (type_url, data)
    hit = _parsed.get(key)
    if hit is None:
        parse = {CLUSTER_TYPE: _eds_name, LISTENER_TYPE: _rds_names, ENDPOINT_TYPE: _cla_name}.get(type_url)
        hit = _parsed[key] = parse(data) if parse else ""
    return hit


class LoadStream:
    def __init__(self, channel: grpc.aio.Channel, node: Node, delta: bool) -> None:
        self.delta = delta
        self.node = node
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.bytes = 0
        self.responses = 0
        self.resources = 0
        self.seen: set[str] = set()
        self.synced = asyncio.Event()
        self.nonce: dict[str, str] = {}
        self.version: dict[str, str] = {}
        self.names: dict[str, set[str]] = {ENDPOINT_TYPE: set(), ROUTE_TYPE: set()}
        # What SotW ACKs repeat, sorted once per subscription change: sorting 2,000 names on every ACK
        # (~0.4 ms) delayed the receive time of every stream read after it (a measurement bias).
        self.sorted_names: dict[str, list[str]] = {ENDPOINT_TYPE: [], ROUTE_TYPE: []}
        self.encoded_names: dict[str, tuple[list[str], bytes]] = {}
        self.held: dict[str, dict[str, Any]] = {CLUSTER_TYPE: {}, LISTENER_TYPE: {}}
        self.watch: str | None = None
        self.got_at: float | None = None
        self.mark = (0, 0, 0)
        self.got = asyncio.Event()
        self.error: str | None = None
        response = DeltaDiscoveryResponse if delta else DiscoveryResponse
        method = channel.stream_stream(
            DELTA_METHOD if delta else SOTW_METHOD,
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=self._deserializer(response),
        )
        self.call = method(self._requests())
        self.task = asyncio.create_task(self._read())
        first = True
        for type_url in (CLUSTER_TYPE, LISTENER_TYPE):
            self._send(type_url, [], node=first)
            first = False

    def _deserializer(self, cls: Any) -> Any:
        def deserialize(data: bytes) -> Any:
            self.bytes += len(data)
            return cls.FromString(data)

        return deserialize

    async def _requests(self) -> AsyncIterator[Any]:
        while (item := await self.outbox.get()) is not None:
            yield item

    def _send(
        self,
        type_url: str,
        names: list[str],
        *,
        node: bool = False,
        unsubscribe: list[str] | None = None,
        nonce: str | None = None,
    ) -> None:
        if self.delta:
            req: Any = DeltaDiscoveryRequest(
                type_url=type_url,
                resource_names_subscribe=names,
                resource_names_unsubscribe=unsubscribe or [],
                response_nonce=nonce or "",
            )
        elif not node:
            # The same bytes as the message below, with the (repeated, unchanged) names encoded once per
            # subscription change: building and serialising 2,000 names per ACK delayed the receive time of
            # every stream read after it (a measurement bias).
            self.outbox.put_nowait(self._sotw_request(type_url, names))
            return
        else:
            req = DiscoveryRequest(
                type_url=type_url,
                resource_names=names,
                response_nonce=self.nonce.get(type_url, ""),
                version_info=self.version.get(type_url, ""),
            )
        if node:
            req.node.CopyFrom(self.node)
        self.outbox.put_nowait(req)

    def _sotw_request(self, type_url: str, names: list[str]) -> bytes:
        known = self.encoded_names.get(type_url)
        if known is None or known[0] is not names:
            encoded = DiscoveryRequest(resource_names=names).SerializeToString()
            known = self.encoded_names[type_url] = (names, _names_encodings.setdefault(encoded, encoded))
        version, nonce = self.version.get(type_url, ""), self.nonce.get(type_url, "")
        key = (type_url, version, nonce, known[1])
        request = _sotw_acks.get(key)
        if request is None:
            if len(_sotw_acks) >= 1_024:
                _sotw_acks.clear()
            request = _sotw_acks[key] = (
                DiscoveryRequest(version_info=version).SerializeToString()
                + known[1]
                + DiscoveryRequest(type_url=type_url, response_nonce=nonce).SerializeToString()
            )
        return request

    async def _read(self) -> None:
        try:
            async for response in self.call:
                self._on_response(response, time.monotonic())
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = f"{err.code()}: {err.details()}"
        except asyncio.CancelledError:
            pass

    def _on_response(self, r: Any, now: float) -> None:
        t = r.type_url
        self.responses += 1
        self.resources += len(r.resources)
        if self.delta:
            items = [(res.name, res.resource.value) for res in r.resources]
            removed = list(r.removed_resources)
        else:
            self.nonce[t], self.version[t] = r.nonce, r.version_info
            items = [(None, a.value) for a in r.resources]
            removed = []
        if t in self.held:
            held = self.held[t]
            if not self.delta:
                held.clear()  # full state
            for name in removed:
                held.pop(name, None)
            for _name, data in items:
                name, names = parsed(t, data)
                held[name] = names
            wanted: set[str] = set()
            for names in held.values():
                if names is not None:
                    wanted |= {names} if isinstance(names, str) else names
            child = ENDPOINT_TYPE if t == CLUSTER_TYPE else ROUTE_TYPE
            self._resubscribe(child, wanted)
        elif t == ENDPOINT_TYPE and self.watch is not None and self.got_at is None:
            names = [name if name is not None else parsed(t, data) for name, data in items]
            if self.watch in names:
                self.got_at = now
                self.got.set()
        self._ack(t, r.nonce)
        self.seen.add(t)
        if len(self.seen) == 4:
            self.synced.set()

    def _resubscribe(self, type_url: str, wanted: set[str]) -> None:
        current = self.names[type_url]
        if wanted == current:
            return
        self.sorted_names[type_url] = sorted(wanted)
        if self.delta:
            self._send(type_url, sorted(wanted - current), unsubscribe=sorted(current - wanted))
        else:
            self._send(type_url, self.sorted_names[type_url])
        self.names[type_url] = wanted

    def _ack(self, type_url: str, nonce: str) -> None:
        if self.delta:
            self._send(type_url, [], nonce=nonce)
        else:
            self._send(type_url, self.sorted_names.get(type_url, []))

    def arm(self, cluster: str) -> None:
        self.watch, self.got_at = cluster, None
        self.got.clear()
        self.mark = (self.bytes, self.resources, self.responses)

    async def close(self) -> None:
        self.outbox.put_nowait(None)
        self.call.cancel()
        self.task.cancel()


async def main(target: str, protocol: str, name: str = "load") -> None:
    delta = protocol == "delta"
    channels: list[grpc.aio.Channel] = []
    streams: list[LoadStream] = []
    ids = itertools.count()

    async def connect(
        n: int, namespaces: list[str], timeout: float = 600.0, wave: int = 100
    ) -> dict[str, Any]:
        started = time.monotonic()
        while len(streams) < n:
            batch = []
            for _ in range(min(wave, n - len(streams))):
                if len(streams) % STREAMS_PER_CHANNEL == 0:
                    channels.append(grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS))
                i = next(ids)
                node = Node(id=f"{name}-{i}", cluster="bench")
                node.metadata.update({"namespace": namespaces[i % len(namespaces)], "capture": "transparent"})
                stream = LoadStream(channels[-1], node, delta)
                streams.append(stream)
                batch.append(stream)
            remaining = timeout - (time.monotonic() - started)
            try:
                await asyncio.wait_for(asyncio.gather(*(s.synced.wait() for s in batch)), max(remaining, 0.1))
            except TimeoutError:
                errors = {s.error for s in batch if s.error}
                return {"error": f"only {sum(s.synced.is_set() for s in streams)}/{n} synced; {errors}"}
        return {"connected": len(streams), "seconds": time.monotonic() - started}

    async def arm(cluster: str) -> dict[str, Any]:
        for s in streams:
            s.arm(cluster)
        return {"armed": len(streams)}

    async def collect(timeout: float = 60.0, quiet: float = 0.5) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.got.wait() for s in streams)), timeout)
        # Anything else the change causes arrives right after: wait until the streams are quiet.
        total = -1
        while total != (total := sum(s.responses for s in streams)):
            await asyncio.sleep(quiet)
        return {
            "times": [s.got_at for s in streams if s.got_at is not None],
            "missing": sum(s.got_at is None for s in streams),
            "bytes": [s.bytes - s.mark[0] for s in streams],
            "resources": [s.resources - s.mark[1] for s in streams],
            "responses": [s.responses - s.mark[2] for s in streams],
            "errors": sorted({s.error for s in streams if s.error}),
        }

    async def close() -> dict[str, Any]:
        for s in streams:
            await s.close()
        for c in channels:
            await c.close()
        streams.clear()
        channels.clear()
        return {"ok": True}

    await serve_commands({"connect": connect, "arm": arm, "collect": collect, "close": close, **profiling()})
    await close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
