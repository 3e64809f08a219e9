"""State-of-the-world ADS (`StreamAggregatedResources`)."""

from __future__ import annotations

import time

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Offer, Snapshot
from gammaxds.xds.stream import Outgoing, Stream
from gammaxds.xds.subscription import LEGACY_WILDCARD_TYPES
from gammaxds.xds.typestate import TypeState
from gammaxds.xds.wire import Encoded, offered_entries, sotw_entry, sotw_response

# Listener and Cluster responses must carry the complete set: an absent resource is a removal.
FULL_STATE_TYPES = LEGACY_WILDCARD_TYPES


def names_fingerprint(request: DiscoveryRequest) -> int:
    """A hash of the request's type and resource names, as encoded (order included). Clears the request's
    other fields: call it last. Hashing the encoding costs ~60 µs for 2,000 names, reading them into a set
    ~200-400 µs; a collision (2^-64) would miss one subscription change until the client's next request."""
    for name in ("version_info", "node", "response_nonce", "error_detail"):
        request.ClearField(name)
    return hash(request.SerializeToString(deterministic=True))


class SotwStream(Stream):
    protocol = "sotw"

    def handle(self, request: DiscoveryRequest) -> bool:
        state = self.types.get(request.type_url)
        if state is None:
            state = self.types[request.type_url] = TypeState(request.type_url)
        nonce = request.response_nonce
        if nonce and nonce != state.nonce:
            # Stale: the client has not seen our latest response of this type yet. It will answer that one
            # with its full subscription list, so this request carries nothing we need.
            return False
        if nonce:
            if request.HasField("error_detail"):
                # NACK: the client keeps its last good config. Recorded, never answered with the same
                # version again: the next real change is sent as usual.
                self.nack(state, nonce, request.error_detail.message)
            else:
                self.ack(state, nonce)
        else:
            # No nonce: a (re)subscription the client expects an answer to, with what it names: a client
            # starting over may have dropped what it held. (Listener and Cluster answers always carry the
            # full state; for the other types the held names are sent again.)
            state.reply_due = True
            if state.type_url not in FULL_STATE_TYPES:
                for name in state.known_among(request.resource_names):
                    if state.held(name) is not None:
                        state.owe(name)
        # An ACK naming what the client already subscribed to changes nothing: no push.
        names = request.resource_names
        return state.subscribe_sotw(names, names_fingerprint(request)) or state.reply_due

    def _response(
        self,
        state: TypeState,
        delivered: list[Resource],
        removed: list[str],
        entries: list[bytes] | None = None,
        offer: Offer | None = None,
    ) -> Encoded:
        """Record the response and encode it. `entries`: its resources, when known to be what snap offers;
        `offer`: it is all of that offer, to a client holding nothing."""
        seq = self.next_seq()
        version = state.record_sent(
            seq, delivered, removed, now=time.time(), monotonic=time.monotonic(), offer=offer
        )
        if offer is not None:
            entries = [res.sotw_entry for res in offer.resources.values()]
        elif entries is None:
            if state.type_url in FULL_STATE_TYPES:
                # Full-state types resend everything held (sorted by name); the others only what changed.
                entries = [entry.sotw_entry for entry in state.held_entries() if isinstance(entry, Resource)]
            else:
                entries = [res.sotw_entry for res in delivered]
        return sotw_response(version, state.type_url, state.nonce, entries)

    @staticmethod
    def _offered(state: TypeState, snap: Snapshot) -> list[bytes]:
        """Everything `snap` offers the client, in name order, straight from the snapshot's mapping."""
        return offered_entries(sotw_entry, snap.of_type(state.type_url), state.scope())

    def make_response(self, state: TypeState, snap: Snapshot, forced: set[str]) -> Outgoing | None:
        diff = state.diff_snapshot(snap)
        changed = list(diff.changed.values())
        if diff.offer is not None:
            # A client holding nothing is sent all of the view's shared offer (any forced name is in it).
            if not changed:
                return None  # nothing offered: the break half answers
            return Outgoing(self._response(state, changed, [], offer=diff.offer), changed)
        if state.type_url in FULL_STATE_TYPES:
            if not changed:
                return None  # only removals (or nothing): the break half sends them
            # Removed resources stay in this response (they are still held) until the break half, so
            # routes moving off them never point at a missing cluster or listener. Without any, the client
            # then holds just what snap offers.
            offered = None if diff.gone else self._offered(state, snap)
            return Outgoing(self._response(state, changed, [], offered), changed)
        send = state.to_send(diff.changed, forced, snap)
        if not send:
            return None
        # Resources of other types that vanished cannot be removed in SotW: the client drops them when it
        # unsubscribes. Forget them so they are sent again if they come back.
        if state.offers_exactly(len(send), snap):  # a first response: in order from snap, no sorting
            delivered, offered = list(send.values()), self._offered(state, snap)
        else:
            delivered, offered = [send[name] for name in sorted(send)], None
        return Outgoing(self._response(state, delivered, diff.gone, offered), changed)

    def break_response(self, state: TypeState, snap: Snapshot) -> Encoded | None:
        diff = state.diff_snapshot(snap)
        message = None
        if state.type_url in FULL_STATE_TYPES:
            if diff.gone or diff.changed or state.reply_due:
                changed = list(diff.changed.values())
                message = self._response(state, changed, diff.gone, self._offered(state, snap))
            state.rebase(snap)  # whatever was left is in this response: the client holds what snap offers
            return message
        state.forget(diff.gone)
        if state.reply_due:
            message = self._response(state, [], [])
        if not diff.changed:
            state.rebase(snap)
        return message
