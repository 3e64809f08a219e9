"""A small ADS client for protocol tests: sends requests when told, collects responses in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from google.rpc.status_pb2 import Status

from gammaxds.translate.view import ViewKey

_END = object()


DEFAULT_KEY = ViewKey("default")


def make_node(node_id: str = "sidecar-1", key: ViewKey | None = DEFAULT_KEY) -> Node:
    node = Node(id=node_id, cluster="test")
    if key is not None:
        node.metadata.update(
            {"namespace": key.namespace, "capture": key.capture, "outbound_address": key.outbound}
        )
    return node


class AdsClient:
    """One ADS stream. `read=False` leaves responses unread (a slow client) until `start_reading()`."""

    def __init__(
        self, target: str, *, delta: bool = False, node: Node | None = None, read: bool = True
    ) -> None:
        self.delta = delta
        self.node = node if node is not None else make_node()
        self.channel = grpc.aio.insecure_channel(target)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.received: list[Any] = []
        method = stub.DeltaAggregatedResources if delta else stub.StreamAggregatedResources
        self.call = method(self._requests())
        self._sent_node = False
        self._reader: asyncio.Task[None] | None = None
        self.last_nonce: dict[str, str] = {}
        self.last_version: dict[str, str] = {}
        self.names: dict[str, list[str]] = {}
        if read:
            self.start_reading()

    async def _requests(self) -> AsyncIterator[Any]:
        while (item := await self._outbox.get()) is not _END:
            yield item

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for response in self.call:
            self.received.append(response)
            self.last_nonce[response.type_url] = response.nonce
            if not self.delta:
                self.last_version[response.type_url] = response.version_info
            await self.inbox.put(response)

    def _with_node(self, request: Any) -> Any:
        if not self._sent_node:
            request.node.CopyFrom(self.node)
            self._sent_node = True
        return request

    # -- SotW ---------------------------------------------------------------------------------------------

    def request(
        self,
        type_url: str,
        names: Iterable[str] = (),
        *,
        nonce: str | None = None,
        version: str | None = None,
        error: str | None = None,
    ) -> None:
        """A SotW request. By default it acknowledges the latest response of its type."""
        self.names[type_url] = list(names)
        req = DiscoveryRequest(
            type_url=type_url,
            resource_names=list(names),
            response_nonce=self.last_nonce.get(type_url, "") if nonce is None else nonce,
            version_info=self.last_version.get(type_url, "") if version is None else version,
        )
        if error is not None:
            req.error_detail.CopyFrom(Status(code=3, message=error))
        self._outbox.put_nowait(self._with_node(req))

    # -- delta --------------------------------------------------------------------------------------------

    def delta_request(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        *,
        nonce: str = "",
        error: str | None = None,
        initial: dict[str, str] | None = None,
    ) -> None:
        req = DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            response_nonce=nonce,
            initial_resource_versions=initial or {},
        )
        if error is not None:
            req.error_detail.CopyFrom(Status(code=3, message=error))
        self._outbox.put_nowait(self._with_node(req))

    def ack(self, response: Any, error: str | None = None, names: Iterable[str] | None = None) -> None:
        """ACK (or NACK, with `error`) one response."""
        if self.delta:
            self.delta_request(response.type_url, nonce=response.nonce, error=error)
        else:
            version = response.version_info if error is None else None
            self.request(
                response.type_url,
                names if names is not None else self._names_of(response),
                nonce=response.nonce,
                version=version,
                error=error,
            )

    def _names_of(self, response: DiscoveryResponse) -> list[str]:
        return self.names.get(response.type_url, [])

    # -- receiving ----------------------------------------------------------------------------------------

    async def recv(self, timeout: float = 3.0) -> Any:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def recv_many(self, count: int, timeout: float = 5.0) -> list[Any]:
        """The next `count` responses, all within `timeout` seconds. (Whether more follow is for a probe to
        tell: see `xds_probe`.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out: list[Any] = []
        while len(out) < count:
            try:
                out.append(await self.recv(max(0.0, deadline - loop.time())))
            except TimeoutError:
                got = [r.type_url.rsplit(".", 1)[-1] for r in out]
                raise AssertionError(f"{len(out)} of {count} responses within {timeout} s: {got}") from None
        return out

    async def recv_all(self, quiet: float = 0.3) -> list[Any]:
        """Every response until none arrives for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(await asyncio.wait_for(self.inbox.get(), quiet))
            except TimeoutError:
                return out

    async def close(self) -> None:
        self._outbox.put_nowait(_END)
        if self._reader is not None:
            self._reader.cancel()
        await self.channel.close()


Response = DiscoveryResponse | DeltaDiscoveryResponse
