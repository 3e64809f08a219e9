"""The gRPC server: ADS (SotW and delta) and CSDS on one port, HOST:PORT or unix:PATH."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientStatusRequest, ClientStatusResponse
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from google.protobuf.message import Message

from gammaxds.xds.cache import SnapshotCache
from gammaxds.xds.delta import DeltaStream
from gammaxds.xds.sotw import SotwStream
from gammaxds.xds.status import client_config
from gammaxds.xds.stream import AdsContext, Stream, XdsContext

log = logging.getLogger(__name__)

SERVER_OPTIONS: list[tuple[str, int]] = [
    # The port is ours alone: with gRPC's default SO_REUSEPORT a second `gammaxds serve` on the same port would
    # start too, silently, and take some of the sidecars with its own (possibly stale) configuration.
    ("grpc.so_reuseport", 0),
    # Envoy pings idle xDS connections every 30 s; gRPC's default policy answers that with GOAWAY.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    # Our own pings find dead sidecars whose TCP connection never closed.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
]


ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def _encoded(response: bytes | Message) -> bytes:
    """Streams write responses already encoded from shared bytes (see `wire`); messages still work."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def _add_ads(servicer: AdsServicer, server: grpc.aio.Server) -> None:
    """Like the generated `add_AggregatedDiscoveryServiceServicer_to_server`, with `_encoded` responses."""
    handlers = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.StreamAggregatedResources,
            request_deserializer=DiscoveryRequest.FromString,
            response_serializer=_encoded,
        ),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
            servicer.DeltaAggregatedResources,
            request_deserializer=DeltaDiscoveryRequest.FromString,
            response_serializer=_encoded,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ADS_SERVICE, handlers),))
    server.add_registered_method_handlers(ADS_SERVICE, handlers)


async def _requests(context: AdsContext) -> AsyncIterator[Any]:
    """The stream's requests, read one at a time. gRPC's own request iterator keeps the last request alive
    while it waits for the next; a SotW ACK naming thousands of resources is ~200 KB, per idle stream."""
    while True:
        request = await context.read()
        if request is grpc.aio.EOF:
            return
        yield request
        del request


# The generated servicer bases are untyped (xds-protos ships no stubs), so subclassing them subclasses Any.
class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, ctx: XdsContext) -> None:
        self.ctx = ctx

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[DiscoveryRequest], context: AdsContext
    ) -> None:
        await SotwStream(self.ctx, context.peer()).serve(_requests(context), context)

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[DeltaDiscoveryRequest], context: AdsContext
    ) -> None:
        await DeltaStream(self.ctx, context.peer()).serve(_requests(context), context)


def _string_matches(matcher: StringMatcher, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "exact":
        exact: str = matcher.exact  # StringMatcher has no stubs (xds-protos)
        return value == exact
    if kind == "prefix":
        return value.startswith(matcher.prefix)
    if kind == "suffix":
        return value.endswith(matcher.suffix)
    if kind == "contains":
        return matcher.contains in value
    return True


def _selected(request: ClientStatusRequest, stream: Stream) -> bool:
    """Node matchers select by node id (metadata matchers are not supported and match everything)."""
    if not request.node_matchers:
        return True
    return any(
        not m.HasField("node_id") or _string_matches(m.node_id, stream.node.id) for m in request.node_matchers
    )


class CsdsServicer(csds_pb2_grpc.ClientStatusDiscoveryServiceServicer):  # type: ignore[misc]  # untyped base
    def __init__(self, ctx: XdsContext) -> None:
        self.ctx = ctx

    def status(self, request: ClientStatusRequest) -> ClientStatusResponse:
        streams = sorted(
            (s for s in self.ctx.streams if _selected(request, s)), key=lambda s: (s.node.id, s.id)
        )
        contents = not request.exclude_resource_contents
        return ClientStatusResponse(config=[client_config(s, contents=contents) for s in streams])

    async def FetchClientStatus(
        self,
        request: ClientStatusRequest,
        context: grpc.aio.ServicerContext[ClientStatusRequest, ClientStatusResponse],
    ) -> ClientStatusResponse:
        return self.status(request)

    async def StreamClientStatus(
        self,
        request_iterator: AsyncIterator[ClientStatusRequest],
        context: grpc.aio.ServicerContext[ClientStatusRequest, ClientStatusResponse],
    ) -> AsyncIterator[ClientStatusResponse]:
        async for request in request_iterator:
            yield self.status(request)


class XdsServer:
    """A running ADS + CSDS server. `port` is the bound TCP port (0 for a Unix socket)."""

    def __init__(self, server: grpc.aio.Server, ctx: XdsContext, address: str, port: int) -> None:
        self.server = server
        self.ctx = ctx
        self.address = address
        self.port = port

    @property
    def streams(self) -> set[Stream]:
        return self.ctx.streams

    @property
    def target(self) -> str:
        """The address a client dials (the bound port when 0 was asked for)."""
        if self.address.startswith("unix:"):
            return self.address
        host = self.address.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop accepting streams, give open ones `grace` seconds, then cancel them."""
        await self.server.stop(grace)


async def start_xds_server(
    cache: SnapshotCache, address: str = "127.0.0.1:18000", *, new_cluster_wait: float = 2.0
) -> XdsServer:
    """Serve ADS and CSDS for `cache` on `address` (`HOST:PORT`, port 0 for any, or `unix:PATH`)."""
    ctx = XdsContext(cache=cache, new_cluster_wait=new_cluster_wait)
    cache.metrics.connected_streams.read = lambda: float(len(ctx.streams))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    _add_ads(AdsServicer(ctx), server)
    csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(CsdsServicer(ctx), server)
    port = server.add_insecure_port(address)
    if not address.startswith("unix:") and port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    xds = XdsServer(server, ctx, address, port)
    log.info("xDS server listening on %s", xds.target, extra={"event": "listening", "address": xds.target})
    return xds


__all__ = ["DeltaDiscoveryResponse", "DiscoveryResponse", "XdsServer", "start_xds_server"]
