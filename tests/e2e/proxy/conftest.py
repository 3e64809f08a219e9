"""Fixtures for proxy-mode e2e tests: echo backends, an in-process control plane, real Envoy sidecars."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy_harness import ANY_PORT, ControlPlane, Sidecar

from gammaxds.bootstrap import bootstrap
from gammaxds.demo.app import EchoApp, make_server
from gammaxds.testing.envoy_process import Envoy
from gammaxds.translate.view import ViewKey
from gammaxds.xds import SnapshotCache, start_xds_server

# -- echo backends ----------------------------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[Callable[[str], int]]:
    """Start an echo backend for a service name; returns its port."""
    servers = []

    def start(service: str, version: str = "v1") -> int:
        server = make_server(EchoApp(service, version), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# -- control plane and sidecars ---------------------------------------------------------------------------


@pytest.fixture
async def control_plane() -> AsyncIterator[ControlPlane]:
    cache = SnapshotCache()
    server = await start_xds_server(cache, "127.0.0.1:0")
    plane = ControlPlane(cache, server, server.target)
    cache.update(plane.provide)
    yield plane
    await plane.server.stop(0)
    cache.close()


@pytest.fixture
def sidecar_factory(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    """Make proxy-mode sidecars (not yet started) bootstrapped against the control plane."""
    started: list[Any] = []

    def make(namespace: str = "default", *, delta: bool = True, node_id: str | None = None) -> Sidecar:
        key = ViewKey(namespace, "proxy", f"127.0.0.1:{ANY_PORT}")
        node = node_id or f"{namespace}-{len(started) + 1}"
        config = bootstrap(
            node,
            namespace,
            xds_address=control_plane.address,
            capture="proxy",
            outbound_address=key.outbound,
            delta=delta,
        )
        envoy = Envoy(config, tmp_path, name=node)
        started.append(envoy)
        return Sidecar(envoy, key)

    yield make
    for envoy in started:
        envoy.stop()
        print(f"===== {envoy.name} log =====\n{envoy.logs()[-20000:]}")  # shown for failing tests only
