"""The view provider protocol tests steer (kept out of conftest.py so tests can import it)."""

from __future__ import annotations

from gammaxds.translate.view import View, ViewKey
from gammaxds.xds import SnapshotCache


class Views:
    """The provider the tests steer: one view for every key, or one per key."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache
        self.default = View()
        self.by_key: dict[ViewKey, View] = {}
        self.calls = 0

    def __call__(self, key: ViewKey) -> View:
        self.calls += 1
        return self.by_key.get(key, self.default)

    def set(self, view: View, key: ViewKey | None = None, *, flush: bool = True) -> None:
        if key is None:
            self.default = view
        else:
            self.by_key[key] = view
        self.cache.update(self)
        if flush:
            self.cache.flush()
