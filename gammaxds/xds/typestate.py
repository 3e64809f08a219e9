"""Per stream and type: what the client holds (as far as our responses go), nonces, ACKs and NACKs.

A push costs O(what changed), not O(resources): what the client holds is the snapshot mapping it last
synced to (`Holdings.rebase`), and the snapshot's `Lineage` names what changed since; a full comparison is
needed only after the subscription changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from gammaxds.xds.holdings import Announced, Entry, Holdings
from gammaxds.xds.resources import Resource
from gammaxds.xds.snapshot import Lineage, Offer, Snapshot
from gammaxds.xds.subscription import Subscription

OUTSTANDING_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Nack:
    seq: int
    version: str
    message: str
    at: float


@dataclass(slots=True)
class Diff:
    """The wanted resources against what the client holds. Each list is sorted by name."""

    changed: Mapping[str, Resource]  # wanted and available, not held at this version (read-only)
    gone: list[str]  # held but no longer wanted or available
    absent: list[str]  # asked for by name, never available, not yet reported absent (delta)
    # Set when the client holds nothing: `changed` is all of this offer (shared by the view's streams)
    offer: Offer | None = None


class TypeState:
    __slots__ = (
        "_outstanding",
        "_pending",
        "_pending_offer",
        "_synced_subscription",
        "acked_seq",
        "acked_version",
        "holdings",
        "last_updated",
        "nack",
        "nonce",
        "owed",
        "reply_due",
        "reported_absent",
        "sent_version",
        "seq",
        "subscription",
        "type_url",
    )

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.subscription = Subscription(type_url)
        self.holdings = Holdings()
        self.reported_absent: set[str] = set()
        # Names the next response must answer whatever the client holds: with the resource if it is
        # offered, else (delta) in removed_resources. See `owe`.
        self.owed: set[str] = set()
        # The first request of a type is always answered, even with nothing: the client's init waits on it.
        self.reply_due = True
        self.nonce = ""
        self.seq = 0
        self.sent_version = ""
        self.acked_version = ""
        self.acked_seq = 0
        self.nack: Nack | None = None
        self.last_updated = 0.0
        self._outstanding: dict[str, tuple[int, str, float]] = {}
        # name → response that delivered it, for deliveries not yet acknowledged (what CSDS reports)
        self._pending: dict[str, int] = {}
        # A whole offer delivered in one response, not yet acknowledged: (response, offer)
        self._pending_offer: tuple[int, Offer] | None = None
        # The subscription generation the holdings' scope was taken at; -1: never synced
        self._synced_subscription = -1

    # -- what the client holds ----------------------------------------------------------------------------

    def held(self, name: str) -> Entry | None:
        return self.holdings.get(name)

    def held_names(self) -> list[str]:
        return sorted(self.holdings.names())

    def delivered_in(self, name: str) -> int:
        """The response that delivered the held `name`, if not yet acknowledged; else 0."""
        seq = self._pending.get(name)
        if seq is not None:
            return seq
        bulk = self._pending_offer
        return bulk[0] if bulk is not None and name in bulk[1].resources else 0

    def announce(self, name: str, version: str) -> None:
        """A reconnecting delta client holds `name` at `version` already."""
        self.holdings.put(Announced.of(name, version))

    # -- subscriptions ------------------------------------------------------------------------------------

    def subscribe_sotw(self, resource_names: Iterable[str], fingerprint: int | None = None) -> bool:
        """Apply a SotW request's names (see `Subscription.update_sotw`); True if the subscription changed."""
        before = self.subscription.generation
        return self._subscribed(before, self.subscription.update_sotw(resource_names, fingerprint))

    def subscribe_delta(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> bool:
        """Apply a delta request's changes; True if the subscription changed."""
        before = self.subscription.generation
        return self._subscribed(before, self.subscription.update_delta(subscribe, unsubscribe))

    def _subscribed(self, before: int, dropped: set[str]) -> bool:
        if self.subscription.generation == before:
            return False
        # A dropped name is dropped by the client itself; if a wildcard still covers it, it expects it again.
        self.forget(dropped)
        self.forget_unwanted()
        return True

    def forget_unwanted(self) -> None:
        """Forget what the subscription no longer covers. O(held): run only when the subscription changed."""
        self.forget([name for name in self.holdings.names() if not self.subscription.wants(name)])
        self.reported_absent &= self.subscription.names

    def forget(self, names: Iterable[str]) -> None:
        """The client dropped these (unsubscribed): it no longer holds them, nor waits for their absence."""
        for name in names:
            self.holdings.drop(name)
            self._pending.pop(name, None)
            self.reported_absent.discard(name)
            self.owed.discard(name)

    def owe(self, name: str) -> None:
        """The client asked about `name` in a way the protocol says must be answered even if we believe it
        holds the resource (or knows it is absent): the next response carries it, or reports it removed."""
        self.owed.add(name)
        self.reported_absent.discard(name)

    def known_among(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that, as far as our responses go, the client holds or was told do not exist.
        O(1) for a client that holds nothing (every first request), else O(names)."""
        if self.holdings.empty and not self.reported_absent:
            return []
        absent, get = self.reported_absent, self.holdings.get
        return [name for name in names if name in absent or get(name) is not None]

    # -- pushes -------------------------------------------------------------------------------------------

    def diff(self, available: Mapping[str, Resource], lineage: Lineage | None = None) -> Diff:
        """Compare `available` (a snapshot's mapping of this type) with what the client holds. With the
        mapping's `lineage`, only the names changed since the client last synced are looked at."""
        names = self._candidates(lineage)
        if names is None:
            names = self.subscription.interest(available)
            names.update(self.holdings.names())
        wildcard, subscribed = self.subscription.wildcard, self.subscription.names
        changed: dict[str, Resource] = {}
        gone: list[str] = []
        absent: list[str] = []
        for name in sorted(names):
            res = available.get(name)
            held = self.holdings.get(name)
            if res is not None and (wildcard or name in subscribed):
                if held is None or held.version != res.version:
                    changed[name] = res
            elif held is not None:
                gone.append(name)
            elif res is None and name in subscribed and name not in self.reported_absent:
                absent.append(name)
        return Diff(changed, gone, absent)

    def in_sync(self, snap: Snapshot) -> bool:
        """O(1): the client holds exactly what `snap` offers and is owed no reply (nothing to push)."""
        lineage = snap.lineage_of(self.type_url)
        return (
            not self.reply_due
            and not self.owed
            and lineage is not None
            and lineage.generation == self.holdings.generation
            and self._synced_subscription == self.subscription.generation
            and not self.holdings.has_overrides
        )

    def diff_snapshot(self, snap: Snapshot) -> Diff:
        if self.holdings.empty:
            # Everything offered is new to the client: the view's shared offer is the whole difference.
            sub = self.subscription
            offer = snap.offer(self.type_url, sub.wildcard, sub.names)
            absent = [name for name in offer.missing if name not in self.reported_absent]
            diff = Diff(offer.resources, [], absent, offer)
        else:
            diff = self.diff(snap.of_type(self.type_url), snap.lineage_of(self.type_url))
        if self.owed:
            self._add_owed(diff, snap)
        return diff

    def _add_owed(self, diff: Diff, snap: Snapshot) -> None:
        """Owed names are answered whatever the client holds: an offered one is sent again even at the
        version it holds; one not offered is reported absent (unless the diff already removes it)."""
        extra: dict[str, Resource] = {}
        absent = set(diff.absent)
        for name in self.owed:
            res = self.offered(name, snap)
            if res is None:
                if name not in diff.gone:
                    absent.add(name)
            elif name not in diff.changed:
                extra[name] = res  # never for an offer: it already holds everything offered
        if extra:
            diff.changed = {name: res for name, res in sorted({**diff.changed, **extra}.items())}
        if len(absent) != len(diff.absent):
            diff.absent = sorted(absent)

    def _candidates(self, lineage: Lineage | None) -> set[str] | None:
        """The names that may differ between the mapping of `lineage` and what the client holds; None:
        compare all (no lineage, an unknown ancestor, or the subscription changed since the last sync)."""
        if lineage is None or self._synced_subscription != self.subscription.generation:
            return None
        since = lineage.changed_since(self.holdings.generation)
        if since is None:
            return None
        names = set(since)
        names.update(self.holdings.overridden)
        return names

    def offered(self, name: str, snap: Snapshot) -> Resource | None:
        """The resource `snap` offers this client under `name`, if any."""
        res = snap.of_type(self.type_url).get(name)
        return res if res is not None and self.subscription.wants(name) else None

    def to_send(
        self, changed: Mapping[str, Resource], forced: set[str], snap: Snapshot
    ) -> dict[str, Resource]:
        """What a response carries: the resources that changed for this client, plus those it must get again
        (`forced`: newly subscribed names, or a re-request) if `snap` offers them."""
        send = dict(changed)
        for name in forced:
            if (res := self.offered(name, snap)) is not None:
                send[name] = res
        return send

    def target(self, available: Mapping[str, Resource]) -> dict[str, Resource]:
        """Everything `available` offers this client, by name (sorted). O(resources): for status pages."""
        names = self.subscription.interest(available)
        return {name: available[name] for name in sorted(names) if name in available}

    def scope(self) -> frozenset[str] | None:
        """The names a snapshot mapping offers this client: all (None), or the subscribed ones."""
        return None if self.subscription.wildcard else self.subscription.names

    def offers_exactly(self, count: int, snap: Snapshot) -> bool:
        """Whether `count` distinct resources offered by `snap` are everything it offers (a cheap test: the
        offer is at most the whole mapping, or every subscribed name)."""
        scope = self.scope()
        return count == len(snap.of_type(self.type_url) if scope is None else scope)

    def rebase(self, snap: Snapshot) -> None:
        """The client holds exactly what `snap` offers it (the push found nothing left to send): share the
        snapshot's mapping instead of keeping per-name state."""
        lineage = snap.lineage_of(self.type_url)
        self.holdings.rebase(snap.of_type(self.type_url), lineage.generation if lineage else 0, self.scope())
        self._synced_subscription = self.subscription.generation

    # -- responses, ACKs, NACKs ---------------------------------------------------------------------------

    def record_sent(
        self,
        seq: int,
        delivered: Iterable[Resource],
        removed: Iterable[str] = (),
        absent: Iterable[str] = (),
        *,
        now: float,
        monotonic: float,
        offer: Offer | None = None,
    ) -> str:
        """Update what the client holds after response `seq`; returns the version of that state.
        `offer`: the response delivered all of it to a client holding nothing (`delivered` is ignored)."""
        if offer is not None:
            self.holdings.assume(offer.mapping, offer.generation, offer.scope, offer.total)
            if not offer.missing:
                # Synced: nothing else to compare. (Names that do not exist are left to a full comparison
                # in the break half, which reports them absent.)
                self._synced_subscription = self.subscription.generation
            self._pending_offer = (seq, offer)
            if self.reported_absent:
                self.reported_absent.difference_update(offer.resources)
            if self.owed:
                self.owed.difference_update(offer.resources)
        else:
            for res in delivered:
                self.holdings.put(res)
                self._pending[res.name] = seq
                self.reported_absent.discard(res.name)
                self.owed.discard(res.name)
        for name in removed:
            self.holdings.drop(name)
            self._pending.pop(name, None)
            self.owed.discard(name)
            if name in self.subscription.names:
                self.reported_absent.add(name)  # still asked for: its absence is now known to the client
        self.reported_absent.update(absent)
        self.owed.difference_update(absent)
        self.seq, self.nonce = seq, str(seq)
        self.sent_version = self.holdings.version
        self.reply_due = False
        self.last_updated = now
        self._outstanding[self.nonce] = (seq, self.sent_version, monotonic)
        if len(self._outstanding) > OUTSTANDING_LIMIT:
            del self._outstanding[next(iter(self._outstanding))]
        return self.sent_version

    def held_entries(self) -> Iterator[Entry]:
        """What the client holds, sorted by name (a SotW full-state response)."""
        get = self.holdings.get
        for name in self.held_names():
            entry = get(name)
            assert entry is not None
            yield entry

    def is_outstanding(self, nonce: str) -> bool:
        return nonce in self._outstanding

    def record_ack(self, nonce: str, *, now: float, monotonic: float) -> float | None:
        """The client applied response `nonce`; returns seconds since it was sent, None if unknown."""
        entry = self._settle(nonce)
        if entry is None:
            return None
        seq, version, sent_at = entry
        if seq >= self.acked_seq:
            self.acked_seq, self.acked_version = seq, version
        if self.nack is not None and seq > self.nack.seq:
            self.nack = None  # a later response was accepted: the error is over
        if self._pending:
            acked = self.acked_seq
            self._pending = {name: s for name, s in self._pending.items() if s > acked}
        if self._pending_offer is not None and self._pending_offer[0] <= self.acked_seq:
            self._pending_offer = None
        self.last_updated = now
        return monotonic - sent_at

    def record_nack(self, nonce: str, message: str, *, now: float, monotonic: float) -> float | None:
        """The client rejected response `nonce` and keeps its previous config; returns seconds since sent."""
        entry = self._settle(nonce)
        if entry is None:
            return None
        seq, version, sent_at = entry
        self.nack = Nack(seq, version, message, now)
        self.last_updated = now
        return monotonic - sent_at

    def _settle(self, nonce: str) -> tuple[int, str, float] | None:
        entry = self._outstanding.get(nonce)
        if entry is None:
            return None
        # Responses are applied in order: an answer to `nonce` settles every earlier one too.
        for key in [k for k, v in self._outstanding.items() if v[0] <= entry[0]]:
            del self._outstanding[key]
        return entry
