"""Waiting in the source tests: for a condition (polled, with a deadline that fails the test, naming what), and
for a status writer's pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.model.status import RouteKey, RouteStatuses
from gammaxds.sources.status import StatusWriter


class WatchedWriter(StatusWriter):
    """A StatusWriter that records every pass: the resourceVersion of each route it was given. A test can
    then wait for a pass over the routes as they are now, which proves what such a pass does (or does not)
    write without waiting for a quiet period."""

    def __init__(self, api: client.ApiClient, **kwargs: Any) -> None:
        super().__init__(api, **kwargs)
        self.passes: list[dict[RouteKey, str]] = []
        self._passed = asyncio.Event()

    async def write(self, statuses: RouteStatuses, routes: Mapping[RouteKey, Mapping[str, Any]]) -> bool:
        seen = {key: str((obj.get("metadata") or {}).get("resourceVersion")) for key, obj in routes.items()}
        try:
            return await super().write(statuses, routes)
        finally:
            self.passes.append(seen)
            self._passed.set()

    async def pass_over(
        self, keys: set[RouteKey], current: Callable[[RouteKey], str], timeout: float = 5.0
    ) -> None:
        """Wait until a pass has finished that was given each of `keys` at its `current(key)` resourceVersion
        (read when the pass is over: a pass that wrote has changed it, and does not count)."""

        def done() -> bool:
            return any(keys <= p.keys() and all(p[k] == current(k) for k in keys) for p in self.passes)

        async def wait() -> None:
            while not done():
                self._passed.clear()
                await self._passed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no status pass over the routes as they are now: {self.passes}") from None


def versions_in(kube: FakeKube) -> Callable[[RouteKey], str]:
    """A route's resourceVersion on the API server now, by key (for `WatchedWriter.pass_over`)."""

    def version(key: RouteKey) -> str:
        obj = kube.get(*key)
        assert obj is not None, key
        return str(obj["metadata"]["resourceVersion"])

    return version
