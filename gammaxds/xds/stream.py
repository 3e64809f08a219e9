"""One ADS stream: the request side updates subscription state, a send task pushes in make-before-break order.

The two protocol variants (state of the world, incremental) differ only in how a request changes the state
and how a response is encoded; `Stream` owns the rest: node identification, the coalescing "latest snapshot"
slot, the push order and the waits it needs.

What an operator follows is logged at info, one line per event, with the event's fields attached for
`--log-format json` (`gammaxds.logs`): a stream connecting (node, namespace, capture, SotW or delta, peer)
and disconnecting (why, after how long), each push (type, version, resources, node), each ACK; a NACK
(type, the rejected version, node, the client's error_detail) is a warning. Requests themselves are
per-message noise: debug.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
from envoy.config.core.v3.base_pb2 import Node

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, PUSH_ORDER, ViewKey
from gammaxds.xds.cache import SnapshotCache
from gammaxds.xds.metrics import Metrics
from gammaxds.xds.node import NodeError, view_key
from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Snapshot
from gammaxds.xds.typestate import TypeState
from gammaxds.xds.wire import Encoded

log = logging.getLogger(__name__)

PROTOCOL_NAMES = {"sotw": "SotW", "delta": "delta"}

Write = Callable[[Any], Awaitable[None]]
# An ADS call's context. It reads DiscoveryRequests or DeltaDiscoveryRequests (untyped: xds-protos ships no
# stubs) and writes responses already encoded, which the server's serializer passes through as bytes.
AdsContext = grpc.aio.ServicerContext[Any, bytes]
_ids = itertools.count(1)


def type_label(type_url: str) -> str:
    """`type.googleapis.com/envoy.config.cluster.v3.Cluster` → `Cluster`, for metric labels and tables."""
    return type_url.rsplit(".", 1)[-1]


@dataclass
class XdsContext:
    """What every stream of a server shares."""

    cache: SnapshotCache
    streams: set[Stream] = field(default_factory=set)
    # How long a push waits, after sending new EDS clusters, for the client to subscribe to their
    # endpoints before it sends routes that may use them (make-before-break).
    new_cluster_wait: float = 2.0

    @property
    def metrics(self) -> Metrics:
        return self.cache.metrics


@dataclass
class Outgoing:
    """A response ready to write, and the resources in it whose version changed for the client."""

    message: Encoded
    changed: list[Resource] = field(default_factory=list)


class Stream(ABC):
    protocol: ClassVar[str]

    def __init__(self, ctx: XdsContext, peer: str) -> None:
        self.ctx = ctx
        self.id = next(_ids)
        self.peer = peer
        self.node = Node()
        self.key: ViewKey | None = None
        self.types: dict[str, TypeState] = {}
        self.connected_at = time.time()
        self.snapshot: Snapshot | None = None
        self.responses = 0
        self.resources_sent = 0
        self._connected_loop_time = asyncio.get_running_loop().time()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._seq = 0
        self._observed: Snapshot | None = None
        self._end_reason: str | None = None  # why the stream is ending, when the server ends it

    def fields(self, **more: Any) -> dict[str, Any]:
        """The structured fields of this stream's log events (see `gammaxds.logs`)."""
        return {"stream": self.id, "node": self.node.id, "protocol": self.protocol, **more}

    # -- request side -------------------------------------------------------------------------------------

    async def serve(self, requests: AsyncIterator[Any], context: AdsContext) -> None:
        first = await anext(aiter(requests), None)
        if first is None:
            return
        try:
            # Only the first request is guaranteed to carry the node: it selects the view for the stream.
            key = view_key(first.node)
        except NodeError as err:
            refused = {"stream": self.id, "node": first.node.id, "peer": self.peer, "error": str(err)}
            log.warning(
                "stream %d refused: %s (peer %s)",
                self.id,
                err,
                self.peer,
                extra={"event": "stream.refused", **refused},
            )
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        self.key = key
        self.node.CopyFrom(first.node)
        handler = asyncio.current_task()
        assert handler is not None
        self.ctx.streams.add(self)
        self._log_connected()
        unwatch = self.ctx.cache.watch(key, self._on_snapshot)
        sender = asyncio.create_task(self._send_loop(context.write), name=f"xds-send-{self.id}")

        def sender_done(task: asyncio.Task[None]) -> None:
            # A failed write ends the stream: the client reconnects and starts over.
            if not task.cancelled() and task.exception() is not None:
                self._end_reason = f"sending failed: {task.exception()!r}"
                handler.cancel()

        sender.add_done_callback(sender_done)
        reason = "the client closed the stream"
        try:
            self._handle(first)
            del first
            async for request in requests:
                self._handle(request)
                # A SotW request can name thousands of resources (~200 KB parsed): not kept while idle.
                del request
        except asyncio.CancelledError:
            # gRPC cancels the handler when the client goes away (or resets the stream) and when the server
            # stops; a failed send cancels it too, and says so.
            reason = self._end_reason or "cancelled: the client went away or the server is stopping"
            raise
        except Exception as err:
            reason = f"failed: {err!r}"
            raise
        finally:
            sender.cancel()
            unwatch()
            self.ctx.streams.discard(self)
            self._log_disconnected(reason)

    def _log_connected(self) -> None:
        key = self.key
        assert key is not None
        log.info(
            "stream %d connected: node %s, namespace %s, capture %s, %s ADS, peer %s",
            self.id,
            self.node.id,
            key.namespace,
            key.capture,
            PROTOCOL_NAMES[self.protocol],
            self.peer,
            extra=self.fields(
                event="stream.connect", namespace=key.namespace, capture=key.capture, peer=self.peer
            ),
        )

    def _log_disconnected(self, reason: str) -> None:
        duration = asyncio.get_running_loop().time() - self._connected_loop_time
        level = logging.WARNING if self._end_reason else logging.INFO
        log.log(
            level,
            "stream %d disconnected: node %s, after %.1f s: %s",
            self.id,
            self.node.id,
            duration,
            reason,
            extra=self.fields(
                event="stream.disconnect",
                namespace=self.key.namespace if self.key else "",
                peer=self.peer,
                reason=reason,
                duration_s=round(duration, 3),
                responses=self.responses,
            ),
        )

    def _handle(self, request: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # requests are per-message noise: not even formatted at info
            kind, nonce = type_label(request.type_url), request.response_nonce
            log.debug(
                "stream %d: request for %s, nonce %r%s",
                self.id,
                kind,
                nonce,
                " (with error_detail)" if request.HasField("error_detail") else "",
                extra=self.fields(event="request", type=kind, nonce=nonce),
            )
        if request.type_url not in PUSH_ORDER:
            log.debug("stream %d: ignoring request for unserved type %s", self.id, request.type_url)
            return
        if self.handle(request):
            self._wake.set()
        self._progress.set()

    @abstractmethod
    def handle(self, request: Any) -> bool:
        """Apply one request (subscription change, ACK or NACK) to the type states; True if it may call for
        a push. A plain ACK does not: waking the sender for it would cost a push per ACK for nothing."""

    def ack(self, state: TypeState, nonce: str) -> None:
        latency = state.record_ack(nonce, now=time.time(), monotonic=time.monotonic())
        if latency is None:
            return  # not a response of ours that is still outstanding: nothing was acknowledged
        self.ctx.metrics.ack_latency.observe(latency)
        kind = type_label(state.type_url)
        log.info(
            "%s acknowledged %s version %s (stream %d)",
            self.node.id,
            kind,
            state.acked_version,
            self.id,
            extra=self.fields(event="ack", type=kind, version=state.acked_version, nonce=nonce),
        )

    def nack(self, state: TypeState, nonce: str, message: str) -> None:
        latency = state.record_nack(nonce, message, now=time.time(), monotonic=time.monotonic())
        if latency is None:
            return
        self.ctx.metrics.ack_latency.observe(latency)
        kind = type_label(state.type_url)
        self.ctx.metrics.nacks.inc(type=kind)
        rejected = state.nack.version if state.nack is not None else ""
        log.warning(
            "%s rejected %s version %s (stream %d): %s",
            self.node.id,
            kind,
            rejected,
            self.id,
            message,
            extra=self.fields(event="nack", type=kind, version=rejected, nonce=nonce, error=message),
        )

    # -- send side ----------------------------------------------------------------------------------------

    def _on_snapshot(self, snap: Snapshot) -> None:
        # The coalescing slot: only the newest snapshot is kept; a stream that is behind skips the rest.
        self.snapshot = snap
        self._wake.set()

    async def _send_loop(self, write: Write) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.snapshot is not None:
                await self._push(self.snapshot, write)

    async def _push(self, snap: Snapshot, write: Write) -> None:
        """Send what changed, make-before-break: CDS, EDS, LDS, RDS, then removals."""
        changed_eds: set[str] = set()
        new_eds: set[str] = set()
        for type_url in PUSH_ORDER:
            if type_url == ENDPOINT_TYPE and new_eds:
                await self._await_eds_subscription(new_eds)
            state = self.types.get(type_url)
            if state is None:
                continue  # never requested: nothing may be sent for it
            # A changed cluster is always followed by its endpoints: Envoy re-warms it and waits for them.
            forced = changed_eds if type_url == ENDPOINT_TYPE else set()
            if not forced and state.in_sync(snap):
                continue
            out = self.make_response(state, snap, forced)
            if out is None:
                continue
            await self._write(out.message, state, snap, write)
            if type_url == CLUSTER_TYPE:
                changed_eds = {name for res in out.changed if (name := res.eds_name)}
                eds = self.types.get(ENDPOINT_TYPE)
                if eds is not None:
                    new_eds = {name for name in changed_eds if not eds.subscription.wants(name)}
        for type_url in PUSH_ORDER:
            state = self.types.get(type_url)
            if state is None or state.in_sync(snap):
                continue
            if (message := self.break_response(state, snap)) is not None:
                await self._write(message, state, snap, write)

    async def _await_eds_subscription(self, names: set[str]) -> None:
        """New EDS clusters were sent: routes must not use them before their endpoints arrive, and the client
        asks for those endpoints only after it has applied the clusters. Wait for that request (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.new_cluster_wait
        while True:
            eds, cds = self.types.get(ENDPOINT_TYPE), self.types[CLUSTER_TYPE]
            if eds is not None and all(eds.subscription.wants(name) for name in names):
                return
            if cds.nack is not None and cds.nack.seq == cds.seq:
                return  # the clusters were rejected: their endpoints will never be asked for
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.info("stream %d: no EDS subscription for %s; pushing on", self.id, sorted(names))
                return
            self._progress.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @abstractmethod
    def make_response(self, state: TypeState, snap: Snapshot, forced: set[str]) -> Outgoing | None:
        """The "make" half of a push: new and changed resources (plus `forced` endpoints), or None."""

    @abstractmethod
    def break_response(self, state: TypeState, snap: Snapshot) -> Encoded | None:
        """The "break" half: removals, or the reply a first request is owed; None if nothing to say."""

    async def _write(self, message: Encoded, state: TypeState, snap: Snapshot, write: Write) -> None:
        await write(message.data)  # already encoded: the server's serializer passes bytes through
        self.responses += 1
        self.resources_sent += message.resources
        kind = type_label(state.type_url)
        log.info(
            "pushed %s version %s to %s: %d resources, %d removed (stream %d)",
            kind,
            state.sent_version,
            self.node.id,
            message.resources,
            message.removed,
            self.id,
            extra=self.fields(
                event="push",
                type=kind,
                version=state.sent_version,
                nonce=state.nonce,
                resources=message.resources,
                removed=message.removed,
            ),
        )
        metrics = self.ctx.metrics
        metrics.pushes.inc(type=kind)
        # Push latency counts config changes that happened while connected, once per snapshot and stream.
        if snap is not self._observed and snap.updated_at >= self._connected_loop_time:
            metrics.push_latency.observe(asyncio.get_running_loop().time() - snap.updated_at)
        self._observed = snap
