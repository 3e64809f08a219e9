"""What a client subscribed to, for one resource type of one stream (the xDS subscription rules).

Kept apart from the stream so the rules can be read, and tested, against the protocol text alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gammaxds.translate.view import CLUSTER_TYPE, LISTENER_TYPE

WILDCARD = "*"
# Only Listener and Cluster support the legacy wildcard (a first request that names nothing).
LEGACY_WILDCARD_TYPES = frozenset({LISTENER_TYPE, CLUSTER_TYPE})


class Subscription:
    """The names a client wants, and whether it wants everything (wildcard)."""

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.wildcard = False
        self.names: set[str] = set()
        self._started = False
        self._legacy = False

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def interest(self, available: Mapping[str, object]) -> set[str]:
        """Names to consider: everything available under a wildcard, plus every name asked for explicitly
        (a name asked for but not available is remembered, to be sent when it appears)."""
        if self.wildcard:
            return set(available) | self.names
        return set(self.names)

    def update_sotw(self, resource_names: Iterable[str]) -> set[str]:
        """Apply a state-of-the-world request (it carries the full list); returns the names dropped."""
        names = set(resource_names)
        if not self._started:
            self._started = True
            if not names and self.type_url in LEGACY_WILDCARD_TYPES:
                # Legacy wildcard: the first LDS/CDS request naming nothing means "all resources".
                self._legacy = self.wildcard = True
                return set()
        elif self._legacy and not names:
            # A legacy-wildcard client keeps sending empty lists (ACKs): still everything.
            return set()
        # From here an explicit list, where "*" is the wildcard and an empty list means "nothing".
        self._legacy = False
        self.wildcard = WILDCARD in names
        names.discard(WILDCARD)
        dropped = self.names - names
        self.names = names
        return dropped

    def update_delta(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> set[str]:
        """Apply an incremental request (changes only); returns the names explicitly unsubscribed."""
        subscribe, unsubscribe = list(subscribe), list(unsubscribe)
        if not self._started:
            self._started = True
            if not subscribe and self.type_url in LEGACY_WILDCARD_TYPES:
                # Legacy wildcard: the first LDS/CDS request subscribing to nothing means "all resources".
                self.wildcard = True
        for name in subscribe:
            if name == WILDCARD:
                self.wildcard = True
            else:
                self.names.add(name)
        dropped: set[str] = set()
        for name in unsubscribe:
            if name == WILDCARD:
                self.wildcard = False
            elif name in self.names:
                self.names.discard(name)
                dropped.add(name)
        return dropped
