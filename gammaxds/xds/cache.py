"""The snapshot cache: the current encoded view of every key that has connected streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gammaxds.translate.view import View, ViewKey
from gammaxds.xds.debounce import Debouncer
from gammaxds.xds.metrics import Metrics
from gammaxds.xds.snapshot import Encoder, Snapshot, same_content

log = logging.getLogger(__name__)

Provider = Callable[[ViewKey], View]
Watcher = Callable[[Snapshot], None]


class SnapshotCache:
    """Holds one snapshot per watched view key and tells the streams of a key when its content changes.

    The glue calls `update(provider)` whenever the World changes; the provider translates the current World
    for one key. Views are computed only for keys somebody watches (or `track`s), after debouncing. Watchers
    are plain callbacks that must not block: a stream only stores the newest snapshot and wakes its sender.
    """

    def __init__(
        self, *, debounce: float = 0.1, max_delay: float = 1.0, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics or Metrics()
        self._provider: Provider | None = None
        self._snapshots: dict[ViewKey, Snapshot] = {}
        self._watchers: dict[ViewKey, set[Watcher]] = {}
        self._tracked: set[ViewKey] = set()
        self._encoder = Encoder()
        self._debouncer = Debouncer(self._recompute, quiet=debounce, max_delay=max_delay)

    @property
    def ready(self) -> bool:
        """True once a provider was given: streams can be answered."""
        return self._provider is not None

    @property
    def serialised(self) -> int:
        """How many messages were serialised so far (lets tests prove reuse)."""
        return self._encoder.serialised

    def update(self, provider: Provider) -> None:
        """The World changed: recompute the watched views soon (debounced)."""
        self._provider = provider
        self._debouncer.trigger()

    def flush(self) -> None:
        """Recompute now if an update is pending."""
        self._debouncer.fire_now()

    def snapshot(self, key: ViewKey) -> Snapshot | None:
        return self._snapshots.get(key)

    def keys(self) -> list[ViewKey]:
        return sorted(set(self._watchers) | self._tracked)

    def view(self, key: ViewKey) -> Snapshot | None:
        """The snapshot of any key, computed on demand for keys nobody watches (for /debug/config)."""
        known = self._snapshots.get(key)
        if known is not None or self._provider is None:
            return known
        return self._encoder.snapshot(self._provider(key), asyncio.get_running_loop().time())

    def track(self, key: ViewKey) -> None:
        """Keep `key` computed even without streams (a view the glue wants warm)."""
        self._tracked.add(key)
        self._ensure(key)

    def watch(self, key: ViewKey, watcher: Watcher) -> Callable[[], None]:
        """Call `watcher` with the key's snapshot now (if any) and on every content change; returns cancel."""
        self._watchers.setdefault(key, set()).add(watcher)
        snap = self._ensure(key)
        if snap is not None:
            watcher(snap)

        def cancel() -> None:
            watchers = self._watchers.get(key)
            if watchers is None:
                return
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[key]
                if key not in self._tracked:
                    self._snapshots.pop(key, None)

        return cancel

    def close(self) -> None:
        self._debouncer.cancel()

    def _ensure(self, key: ViewKey) -> Snapshot | None:
        """A key seen for the first time is computed at once: a new sidecar should not wait for a debounce."""
        snap = self._snapshots.get(key)
        if snap is None and self._provider is not None:
            snap = self._encoder.snapshot(self._provider(key), asyncio.get_running_loop().time())
            self._snapshots[key] = snap
        return snap

    def _recompute(self, updated_at: float) -> None:
        provider = self._provider
        if provider is None:
            return
        self.metrics.recomputes.inc()
        changed: list[tuple[ViewKey, Snapshot]] = []
        fresh: dict[ViewKey, Snapshot] = {}
        for key in self.keys():
            old = self._snapshots.get(key)
            try:
                snap = self._encoder.snapshot(provider(key), updated_at, old)
            except Exception:
                # One view failing to translate must not take the others down; its streams keep the last one.
                log.exception("translating the view for %s failed", key)
                if old is not None:
                    fresh[key] = old
                continue
            if same_content(old, snap):
                assert old is not None
                fresh[key] = old
            else:
                fresh[key] = snap
                changed.append((key, snap))
        self._snapshots = fresh
        self._encoder.retain(list(fresh.values()))
        for key, snap in changed:
            for watcher in list(self._watchers.get(key, ())):
                watcher(snap)
