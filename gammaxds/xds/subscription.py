"""What a client subscribed to, for one resource type of one stream (the xDS subscription rules).

Kept apart from the stream so the rules can be read, and tested, against the protocol text alone.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping

from gammaxds.translate.view import CLUSTER_TYPE, LISTENER_TYPE

WILDCARD = "*"
# Only Listener and Cluster support the legacy wildcard (a first request that names nothing).
LEGACY_WILDCARD_TYPES = frozenset({LISTENER_TYPE, CLUSTER_TYPE})


class NameSet(frozenset[str]):
    """An immutable set of subscribed names, shared by every stream that subscribes to the same names.

    Why: the sidecars of one view subscribe to the same ~thousands of EDS names; one set for all of them
    keeps per-stream memory small, and an unchanged set keeps its identity (a push can tell in O(1) that
    the subscription did not change). A subclass, since a plain frozenset cannot be weakly referenced."""


_interned: weakref.WeakValueDictionary[frozenset[str], NameSet] = weakref.WeakValueDictionary()


def intern_names(names: frozenset[str]) -> NameSet:
    if isinstance(names, NameSet):
        return names
    known = _interned.get(names)
    if known is None:
        known = _interned[names] = NameSet(names)
    return known


NO_NAMES = intern_names(frozenset())


class Subscription:
    """The names a client wants, and whether it wants everything (wildcard).

    `generation` changes whenever what the client wants changes, so per-stream state derived from the
    subscription can tell whether it is still current without comparing names."""

    __slots__ = ("_applied", "_legacy", "_started", "generation", "names", "type_url", "wildcard")

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.wildcard = False
        self.names: NameSet = NO_NAMES
        self.generation = 0
        self._started = False
        self._legacy = False
        self._applied: int | None = None  # fingerprint of the last SotW list applied

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def interest(self, available: Mapping[str, object]) -> set[str]:
        """Names to consider: everything available under a wildcard, plus every name asked for explicitly
        (a name asked for but not available is remembered, to be sent when it appears)."""
        if self.wildcard:
            return set(available) | self.names
        return set(self.names)

    def _set(self, wildcard: bool, names: frozenset[str]) -> None:
        if wildcard != self.wildcard or names != self.names:
            self.wildcard = wildcard
            if names != self.names:
                self.names = intern_names(names)
            self.generation += 1

    def update_sotw(self, resource_names: Iterable[str], fingerprint: int | None = None) -> set[str]:
        """Apply a state-of-the-world request (it carries the full list); returns the names dropped.

        `fingerprint` identifies the list as sent: every ACK repeats it, and applying a list twice changes
        nothing, so the same fingerprint again skips reading thousands of names."""
        if fingerprint is not None:
            if fingerprint == self._applied:
                return set()
            self._applied = fingerprint
        names = frozenset(resource_names)
        if not self._started:
            self._started = True
            if not names and self.type_url in LEGACY_WILDCARD_TYPES:
                # Legacy wildcard: the first LDS/CDS request naming nothing means "all resources".
                self._legacy = True
                self._set(True, self.names)
                return set()
        elif self._legacy and not names:
            # A legacy-wildcard client keeps sending empty lists (ACKs): still everything.
            return set()
        # From here an explicit list, where "*" is the wildcard and an empty list means "nothing".
        self._legacy = False
        wildcard = WILDCARD in names
        if wildcard:
            names = names - {WILDCARD}
        dropped = set(self.names - names)
        self._set(wildcard, names)
        return dropped

    def update_delta(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> set[str]:
        """Apply an incremental request (changes only); returns the names explicitly unsubscribed."""
        subscribe, unsubscribe = list(subscribe), list(unsubscribe)
        wildcard = self.wildcard
        if not self._started:
            self._started = True
            if not subscribe and self.type_url in LEGACY_WILDCARD_TYPES:
                # Legacy wildcard: the first LDS/CDS request subscribing to nothing means "all resources".
                wildcard = True
        if not subscribe and not unsubscribe:
            self._set(wildcard, self.names)
            return set()
        names = set(self.names)
        for name in subscribe:
            if name == WILDCARD:
                wildcard = True
            else:
                names.add(name)
        dropped: set[str] = set()
        for name in unsubscribe:
            if name == WILDCARD:
                wildcard = False
            elif name in names:
                names.discard(name)
                dropped.add(name)
        self._set(wildcard, frozenset(names))
        return dropped
