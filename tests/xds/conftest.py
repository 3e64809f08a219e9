"""Fixtures for protocol tests: a real ADS server in-process, fed hand-built views."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from ads_client import AdsClient
from xds_harness import Views

from gammaxds.xds import SnapshotCache, XdsServer, start_xds_server


@pytest.fixture
async def cache() -> AsyncIterator[SnapshotCache]:
    c = SnapshotCache()
    yield c
    c.close()


@pytest.fixture
def views(cache: SnapshotCache) -> Views:
    return Views(cache)


@pytest.fixture
async def server(cache: SnapshotCache) -> AsyncIterator[XdsServer]:
    srv = await start_xds_server(cache, "127.0.0.1:0", new_cluster_wait=0.5)
    yield srv
    await srv.stop(0)


@pytest.fixture
async def connect(server: XdsServer) -> AsyncIterator[Callable[..., AdsClient]]:
    clients: list[AdsClient] = []

    def make(**kwargs: object) -> AdsClient:
        client = AdsClient(server.target, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
