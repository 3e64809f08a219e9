"""State-of-the-world ADS (`StreamAggregatedResources`)."""

from __future__ import annotations

import time

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Snapshot
from gammaxds.xds.stream import Outgoing, Stream
from gammaxds.xds.subscription import LEGACY_WILDCARD_TYPES
from gammaxds.xds.typestate import TypeState

# Listener and Cluster responses must carry the complete set: an absent resource is a removal.
FULL_STATE_TYPES = LEGACY_WILDCARD_TYPES


class SotwStream(Stream):
    protocol = "sotw"

    def handle(self, request: DiscoveryRequest) -> None:
        state = self.types.get(request.type_url)
        if state is None:
            state = self.types[request.type_url] = TypeState(request.type_url)
        nonce = request.response_nonce
        if nonce and nonce != state.nonce:
            # Stale: the client has not seen our latest response of this type yet. It will answer that one
            # with its full subscription list, so this request carries nothing we need.
            return
        if nonce:
            if request.HasField("error_detail"):
                # NACK: the client keeps its last good config. Recorded, never answered with the same
                # version again: the next real change is sent as usual.
                self.nack(state, nonce, request.error_detail.message)
            else:
                self.ack(state, nonce)
        else:
            # No nonce: a (re)subscription the client expects an answer to.
            state.reply_due = True
        state.forget(state.subscription.update_sotw(request.resource_names))
        state.forget_unwanted()

    def _response(self, state: TypeState, delivered: list[Resource], removed: list[str]) -> DiscoveryResponse:
        seq = self.next_seq()
        version = state.record_sent(seq, delivered, removed, now=time.time(), monotonic=time.monotonic())
        # Full-state types resend everything held; the others only what is in this response.
        resources = [h.resource.any for h in state.held.values() if h.resource is not None]
        if state.type_url not in FULL_STATE_TYPES:
            resources = [res.any for res in delivered]
        return DiscoveryResponse(
            version_info=version, resources=resources, type_url=state.type_url, nonce=state.nonce
        )

    def make_response(self, state: TypeState, snap: Snapshot, forced: set[str]) -> Outgoing | None:
        diff = state.diff(snap.of_type(state.type_url))
        if state.type_url in FULL_STATE_TYPES:
            if not diff.changed:
                return None  # only removals (or nothing): the break half sends them
            # Removed resources stay in this response (they are still held) until the break half, so
            # routes moving off them never point at a missing cluster or listener.
            return Outgoing(
                self._response(state, list(diff.changed.values()), []), list(diff.changed.values())
            )
        send = dict(diff.changed)
        send.update({name: diff.target[name] for name in forced if name in diff.target})
        if not send:
            return None
        # Resources of other types that vanished cannot be removed in SotW: the client drops them when it
        # unsubscribes. Forget them so they are sent again if they come back.
        delivered = [send[name] for name in sorted(send)]
        return Outgoing(self._response(state, delivered, diff.gone), list(diff.changed.values()))

    def break_response(self, state: TypeState, snap: Snapshot) -> DiscoveryResponse | None:
        diff = state.diff(snap.of_type(state.type_url))
        if state.type_url in FULL_STATE_TYPES:
            if not diff.gone and not diff.changed and not state.reply_due:
                return None
            return self._response(state, list(diff.changed.values()), diff.gone)
        state.forget(diff.gone)
        if not state.reply_due:
            return None
        return self._response(state, [], [])
