"""A view's resources, encoded: what every stream of one view key is served from."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from gammaxds.translate.view import PUSH_ORDER, View, ViewKey
from gammaxds.xds.resources import Resource, encode

MASK = (1 << 64) - 1
# How far back a mapping remembers what changed: a stream more than this many changes behind (or whose
# ancestor changed more names than a full comparison costs) compares everything once.
MAX_ANCESTORS = 32
MAX_REMEMBERED_NAMES = 2_048
EMPTY: frozenset[str] = frozenset()
_generations = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Lineage:
    """The identity of one type's resource mapping, and what changed since a few of its ancestors.

    Why: a stream remembers the generation of the mapping its client last synced to. A push then only
    compares the names changed since then, O(changes) instead of O(resources); patched snapshots share the
    mappings (and lineages) of the types that did not change, so those cost O(1).
    """

    generation: int
    # (ancestor generation, names whose resource differs since it), nearest ancestor first.
    ancestors: tuple[tuple[int, frozenset[str]], ...] = ()

    @classmethod
    def fresh(cls) -> Lineage:
        return cls(next(_generations))

    def changed_since(self, generation: int) -> frozenset[str] | None:
        """Names that may differ from the mapping of `generation`; None if it is not a known ancestor."""
        if generation == self.generation:
            return EMPTY
        for ancestor, names in self.ancestors:
            if ancestor == generation:
                return names
        return None

    def child(self, changed: frozenset[str]) -> Lineage:
        """The lineage of a mapping that differs from this one in `changed`."""
        ancestors = [(self.generation, changed)]
        for ancestor, names in self.ancestors[: MAX_ANCESTORS - 1]:
            union = names | changed
            if len(union) > MAX_REMEMBERED_NAMES:
                break
            ancestors.append((ancestor, union))
        return Lineage(next(_generations), tuple(ancestors))


def _changed_names(old: Mapping[str, Resource], new: Mapping[str, Resource]) -> frozenset[str]:
    """Names added, removed or at another version between two mappings of one type."""
    changed = {
        name for name, res in new.items() if (was := old.get(name)) is None or was.version != res.version
    }
    changed.update(name for name in old if name not in new)
    return frozenset(changed)


def _item_hash(type_url: str, name: str, version: str) -> int:
    return hash((type_url, name, version)) & MASK


def _digest(total: int) -> str:
    """The content digest: a sum of per-resource hashes, so a patched snapshot updates it in O(changes).
    Compared only within one process (`same_content`), so Python's per-process string hash is fine."""
    return f"{total & MASK:016x}"


@dataclass(frozen=True, eq=False, slots=True)
class Offer:
    """Everything one snapshot mapping offers one subscription, in name order.

    Why: a client that holds nothing (a connect, or a reconnect storm after a restart) is sent exactly
    this. Computed once per view and subscription instead of once per stream, its first response costs
    the stream O(1) bookkeeping instead of a comparison, a sort and a record per resource (~50 ms per
    stream at 8,000 resources)."""

    mapping: Mapping[str, Resource]
    generation: int  # the mapping's Lineage generation; 0: none
    scope: frozenset[str] | None  # the names offered: all (None, a wildcard) or these
    resources: Mapping[str, Resource]
    missing: tuple[str, ...]  # names asked for explicitly that the mapping lacks, sorted
    total: int  # the sum of the resources' tokens: the set's version

    @classmethod
    def of(
        cls, mapping: Mapping[str, Resource], lineage: Lineage | None, wildcard: bool, names: frozenset[str]
    ) -> Offer:
        if wildcard:
            scope, resources = None, mapping  # read-only: the mapping itself
        else:
            scope, resources = names, {name: res for name, res in mapping.items() if name in names}
        return cls(
            mapping,
            lineage.generation if lineage is not None else 0,
            scope,
            resources,
            tuple(sorted(name for name in names if name not in mapping)),
            sum(res.token for res in resources.values()),
        )


# Offers remembered per snapshot: streams of one view nearly always share one subscription per type.
MAX_OFFERS = 16


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The encoded resources of one view. Immutable: streams hold on to it while they push."""

    view: View
    resources: Mapping[str, Mapping[str, Resource]]
    # Loop time of the first update that led to this snapshot: the start of push latency.
    updated_at: float
    digest: str = field(default="")
    lineage: Mapping[str, Lineage] = field(default_factory=dict)
    _offers: dict[tuple[str, bool, frozenset[str]], Offer] = field(
        default_factory=dict, init=False, repr=False
    )

    def of_type(self, type_url: str) -> Mapping[str, Resource]:
        return self.resources.get(type_url, {})

    def lineage_of(self, type_url: str) -> Lineage | None:
        return self.lineage.get(type_url)

    def offer(self, type_url: str, wildcard: bool, names: frozenset[str]) -> Offer:
        """What this snapshot offers a subscription (`wildcard`, or `names`), computed once and shared by
        every stream of the view with that subscription."""
        key = (type_url, wildcard, names)
        known = self._offers.get(key)
        if known is None:
            known = Offer.of(self.of_type(type_url), self.lineage_of(type_url), wildcard, names)
            if len(self._offers) < MAX_OFFERS:
                self._offers[key] = known
        return known


class Encoder:
    """Encodes views, reusing what is already encoded.

    A message object seen before (the translator returns the same object for unchanged inputs) reuses its
    Resource without serialising; equal bytes from different objects share one Resource, so views with the
    same content share the very same Any objects.
    """

    def __init__(self) -> None:
        self._by_identity: dict[int, tuple[Message, Resource]] = {}
        self._by_content: dict[tuple[str, str], Resource] = {}
        self._by_view: dict[int, tuple[View, Snapshot]] = {}
        self.serialised = 0  # how many messages were serialised: lets tests prove reuse
        # Entries added since the last full `retain`, against the live count then: retain is amortised.
        self._added = 0
        self._live = 0
        self._live_snapshots = -1

    def snapshot(self, view: View, updated_at: float, previous: Snapshot | None = None) -> Snapshot:
        """The snapshot of `view`. `previous` (the key's last snapshot) lets types whose resources did not
        change keep its mappings, and the others record what changed (see `Lineage`)."""
        known = self._by_view.get(id(view))
        if known is not None and known[0] is view:
            return known[1]
        derivation = view.derived_from
        base_view = derivation.base() if derivation is not None else None
        if derivation is not None and base_view is not None:
            base = self._by_view.get(id(base_view))
            if base is not None and base[0] is base_view:
                return self._remember(view, self._patched(view, base[1], derivation.changed, updated_at))
        resources: dict[str, dict[str, Resource]] = {}
        for type_url in PUSH_ORDER:
            resources[type_url] = {
                name: self._resource(type_url, name, msg)
                for name, msg in sorted(view.by_type[type_url].items())
            }
        total = sum(
            _item_hash(t, name, r.version) for t, by_name in resources.items() for name, r in by_name.items()
        )
        linked, lineage = _linked(resources, previous)
        return self._remember(view, Snapshot(view, linked, updated_at, _digest(total), lineage))

    def _remember(self, view: View, snap: Snapshot) -> Snapshot:
        self._by_view[id(view)] = (view, snap)
        self._added += 1
        return snap

    def _patched(
        self, view: View, base: Snapshot, changed: Mapping[str, frozenset[str]], updated_at: float
    ) -> Snapshot:
        """`base` with the `changed` names of each type re-read from `view` (the translator says which)."""
        resources = dict(base.resources)
        lineage = dict(base.lineage)
        total = int(base.digest, 16)
        for type_url, names in changed.items():
            by_name = dict(resources[type_url])
            messages = view.by_type[type_url]
            added = False
            differ = set()
            for name in names:
                old = by_name.get(name)
                if old is not None:
                    total -= _item_hash(type_url, name, old.version)
                msg = messages.get(name)
                if msg is None:
                    if old is not None:
                        del by_name[name]
                        differ.add(name)
                    continue
                res = by_name[name] = self._resource(type_url, name, msg)
                total += _item_hash(type_url, name, res.version)
                added = added or old is None
                if old is None or old.version != res.version:
                    differ.add(name)
            if differ:  # else the type keeps the base's very mapping: streams skip it in O(1)
                resources[type_url] = dict(sorted(by_name.items())) if added else by_name
                known = lineage.get(type_url)
                lineage[type_url] = known.child(frozenset(differ)) if known else Lineage.fresh()
        return Snapshot(view, resources, updated_at, _digest(total), lineage)

    def _resource(self, type_url: str, name: str, msg: Message) -> Resource:
        known = self._by_identity.get(id(msg))
        if known is not None and known[0] is msg and known[1].type_url == type_url:
            return known[1]
        fresh = encode(type_url, name, msg)
        self.serialised += 1
        shared = self._by_content.setdefault((type_url, fresh.version), fresh)
        self._by_identity[id(msg)] = (msg, shared)
        self._added += 1
        return shared

    def retain(self, snapshots: list[Snapshot]) -> None:
        """Forget everything not used by these snapshots, so memory follows the live views only.

        Amortised: a full sweep costs every live resource, so it runs when the set of snapshots changes or
        the entries added since the last sweep reach half of what was live then (memory stays within 1.5x)."""
        if len(snapshots) == self._live_snapshots and 2 * self._added < self._live:
            return
        by_identity: dict[int, tuple[Message, Resource]] = {}
        by_content: dict[tuple[str, str], Resource] = {}
        by_view: dict[int, tuple[View, Snapshot]] = {}
        for snap in snapshots:
            by_view[id(snap.view)] = (snap.view, snap)
            for by_name in snap.resources.values():
                for res in by_name.values():
                    by_identity[id(res.message)] = (res.message, res)
                    by_content[(res.type_url, res.version)] = res
        self._by_identity, self._by_content, self._by_view = by_identity, by_content, by_view
        self._added, self._live, self._live_snapshots = 0, len(by_identity) + len(by_view), len(snapshots)


def _linked(
    resources: dict[str, dict[str, Resource]], previous: Snapshot | None
) -> tuple[dict[str, Mapping[str, Resource]], dict[str, Lineage]]:
    """Freshly encoded mappings, each replaced by `previous`'s when equal, or linked to it as a child."""
    linked: dict[str, Mapping[str, Resource]] = {}
    lineage: dict[str, Lineage] = {}
    for type_url, by_name in resources.items():
        old, known = (previous.of_type(type_url), previous.lineage_of(type_url)) if previous else ({}, None)
        if known is None:
            linked[type_url], lineage[type_url] = by_name, Lineage.fresh()
            continue
        changed = _changed_names(old, by_name)
        if changed:
            linked[type_url], lineage[type_url] = by_name, known.child(changed)
        else:
            linked[type_url], lineage[type_url] = old, known
    return linked, lineage


def same_content(a: Snapshot | None, b: Snapshot) -> bool:
    return a is not None and a.digest == b.digest


__all__ = ["Encoder", "Lineage", "Snapshot", "ViewKey", "same_content"]
