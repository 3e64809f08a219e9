"""Fixtures for the source tests: a recorder of published Worlds. The fake API server (`kube`) and a client for
it (`api`) are suite-wide fixtures (tests/conftest.py), shared with tests/inject."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gammaxds.model import World


class Published:
    """Every World a source published, and a way to wait for one that satisfies a condition."""

    def __init__(self) -> None:
        self.worlds: list[World] = []
        self._changed = asyncio.Event()

    def __call__(self, world: World) -> None:
        self.worlds.append(world)
        self._changed.set()

    @property
    def world(self) -> World:
        return self.worlds[-1] if self.worlds else World()

    async def until(self, condition: Callable[[World], bool], timeout: float = 5.0) -> World:
        async def wait() -> World:
            while not condition(self.world):
                self._changed.clear()
                await self._changed.wait()
            return self.world

        return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
def published() -> Published:
    return Published()
