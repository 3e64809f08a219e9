"""Fixtures for the source tests: a fake API server, a client for it, and a recorder of published Worlds."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client

sys.path.append(str(Path(__file__).resolve().parents[1]))  # `fakekube`, however pytest was started

from fakekube import FakeKube

from gammaxds.model import World
from gammaxds.sources.kubeclient import api_client


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


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with FakeKube() as server:
        yield server


@pytest.fixture
async def api(kube: FakeKube, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    api = await api_client(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield api
    await api.close()
