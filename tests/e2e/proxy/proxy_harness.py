"""Helpers for proxy-mode e2e tests: HTTP through a sidecar, a steady load, an in-process control plane.

Plain code (no fixtures) so tests import it; the fixtures in conftest.py build on it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from gammaxds.testing.http_client import Connection, request
from gammaxds.translate.view import View, ViewKey
from gammaxds.xds import SnapshotCache, XdsServer, start_xds_server

# -- HTTP through the sidecar -----------------------------------------------------------------------------


def get(port: int, path: str = "/", host: str = "svc", timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """One request through a sidecar's outbound listener; (status, JSON body or {}), status 0 when there was
    no response."""
    response = request(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=timeout)
    try:
        return response.status, dict(response.json())
    except (ValueError, TypeError):
        return response.status, {}


async def aget(port: int, path: str = "/", host: str = "svc") -> tuple[int, dict[str, Any]]:
    """`get` off the event loop, so the in-process control plane keeps running."""
    return await asyncio.to_thread(get, port, path, host)


async def wait_for_service(port: int, service: str, timeout: float = 10.0) -> float:
    """Poll through the sidecar until `service` answers; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < timeout:
        status, body = await aget(port)
        if status == 200 and body.get("service") == service:
            return loop.time() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{service} did not answer through port {port} within {timeout}s")


class Load(threading.Thread):
    """Requests sent back to back on one keep-alive connection until stopped; counts every outcome."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.statuses: dict[int, int] = {}
        self.services: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        with Connection("127.0.0.1", self.port, timeout=5) as conn:  # reopened after a failure
            while not self._stop_event.is_set():
                try:
                    response, body = conn.request("GET", "/", {"Host": "svc"})
                except (OSError, http.client.HTTPException) as err:
                    self.errors.append(repr(err))
                    continue
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.status == 200:
                    service = json.loads(body)["service"]
                    self.services[service] = self.services.get(service, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    @property
    def failures(self) -> int:
        return self.total - self.statuses.get(200, 0)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


@dataclass
class ControlPlane:
    """An in-process gammaxds xDS server whose views the test sets by hand."""

    cache: SnapshotCache
    server: XdsServer
    address: str
    views: dict[ViewKey, View] = field(default_factory=dict)

    def provide(self, key: ViewKey) -> View:
        return self.views.get(key, View())

    def set_view(self, key: ViewKey, view: View) -> None:
        self.views[key] = view
        self.cache.update(self.provide)

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop the gRPC server (streams cut), stay down for a while, listen again on the same address."""
        await self.server.stop(0)
        await asyncio.sleep(down_for)
        self.server = await start_xds_server(self.cache, self.address)


# Views for these sidecars put the outbound listener on port 0: Envoy takes a port from the kernel and the
# test reads it back (`Sidecar.start`), so no port is picked in advance and taken by someone else meanwhile.
ANY_PORT = 0
OUTBOUND_LISTENER = "outbound"


@dataclass
class Sidecar:
    envoy: Any
    key: ViewKey
    outbound_port: int = 0  # the port Envoy bound for its outbound listener, once started

    async def start(self) -> int:
        """Start Envoy, wait until it is initialised and its outbound listener bound; returns that port."""
        self.envoy.start()
        await asyncio.to_thread(self.envoy.wait_ready)
        self.outbound_port = await asyncio.to_thread(self.envoy.listener_port, OUTBOUND_LISTENER)
        return self.outbound_port
