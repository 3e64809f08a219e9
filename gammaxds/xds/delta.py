"""Incremental ADS (`DeltaAggregatedResources`)."""

from __future__ import annotations

import time

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest

from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Offer, Snapshot
from gammaxds.xds.stream import Outgoing, Stream
from gammaxds.xds.subscription import WILDCARD
from gammaxds.xds.typestate import TypeState
from gammaxds.xds.wire import Encoded, delta_entry, delta_response, offered_entries


class DeltaStream(Stream):
    protocol = "delta"

    def handle(self, request: DeltaDiscoveryRequest) -> bool:
        state = self.types.get(request.type_url)
        first = state is None
        if state is None:
            state = self.types[request.type_url] = TypeState(request.type_url)
            # A reconnecting client says what it already holds: only what differs is sent.
            for name, version in request.initial_resource_versions.items():
                state.announce(name, version)
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
        subscribe, unsubscribe = request.resource_names_subscribe, request.resource_names_unsubscribe
        # Read before the subscription changes: which subscribed names the client holds (or was told are
        # absent), as far as our responses go.
        resent = state.known_among(name for name in subscribe if name != WILDCARD)
        changed = state.subscribe_delta(subscribe, unsubscribe)
        if first:
            state.forget_unwanted()  # announced names it does not subscribe to are not kept
        # Rule 1, re-subscribing: "a name the client subscribes to is sent in the response even when the
        # server believes the client already holds it (the client may have forgotten it), also when it is
        # already covered by `*`." Envoy does this when a cluster is removed and re-added before its EDS
        # unsubscription went out: it subscribes again to endpoints the server thinks it still has.
        # The exception is rule 3, "`initial_resource_versions` is honoured per resource": what the first
        # request of a stream announces is held at that version (`announce` above), and only a version
        # that differs is sent.
        for name in resent:
            if not (first and name in request.initial_resource_versions):
                state.owe(name)
        # Rule 2, unsubscribing under `*`: "unsubscribing an explicit name while `*` is held answers with
        # that resource (in `resources` if `*` still covers it, else in `removed_resources`)". The client
        # cannot tell whether the wildcard covers the name (Envoy keeps it as "ambiguous" until told).
        # Without `*` the client drops the resource itself and nothing is sent.
        if state.subscription.wildcard:
            for name in unsubscribe:
                if name != WILDCARD:
                    state.owe(name)
        # A plain ACK changes nothing: no push.
        return changed or state.reply_due or bool(state.owed)

    def _response(
        self,
        state: TypeState,
        delivered: list[Resource],
        removed: list[str],
        absent: list[str],
        entries: list[bytes] | None = None,
        offer: Offer | None = None,
    ) -> Encoded:
        """Record the response and encode it. `entries`: its resources, when known to be what snap offers;
        `offer`: it is all of that offer, to a client holding nothing."""
        seq = self.next_seq()
        version = state.record_sent(
            seq, delivered, removed, absent, now=time.time(), monotonic=time.monotonic(), offer=offer
        )
        if offer is not None:
            entries = [res.delta_entry for res in offer.resources.values()]
        elif entries is None:
            entries = [res.delta_entry for res in delivered]
        return delta_response(version, state.type_url, state.nonce, entries, removed=removed + absent)

    def make_response(self, state: TypeState, snap: Snapshot, forced: set[str]) -> Outgoing | None:
        diff = state.diff_snapshot(snap)
        if diff.offer is not None:
            # A client holding nothing is sent all of the view's shared offer (any forced name is in it).
            if not diff.offer.resources:
                return None  # nothing offered: the break half answers
            changed = list(diff.offer.resources.values())
            return Outgoing(self._response(state, changed, [], [], offer=diff.offer), changed)
        send = state.to_send(diff.changed, forced, snap)
        if not send:
            return None
        if state.offers_exactly(len(send), snap):
            # Everything snap offers (a first response): taken in order from its mapping, no sorting.
            delivered = list(send.values())
            offered = offered_entries(delta_entry, snap.of_type(state.type_url), state.scope())
        else:
            delivered, offered = [send[name] for name in sorted(send)], None
        return Outgoing(self._response(state, delivered, [], [], offered), list(diff.changed.values()))

    def break_response(self, state: TypeState, snap: Snapshot) -> Encoded | None:
        diff = state.diff_snapshot(snap)
        message = None
        # Removed resources, and names asked for that do not exist: both are reported as removed.
        if diff.gone or diff.absent or state.reply_due:
            message = self._response(state, [], diff.gone, diff.absent)
        if not diff.changed:
            state.rebase(snap)
        return message
