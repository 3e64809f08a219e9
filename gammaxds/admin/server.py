"""The admin endpoints: health, readiness, Prometheus metrics, and debug views of config and sidecars."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# Typed configs commonly packed in Any fields must be in the descriptor pool for proto3 JSON output.
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2  # noqa: F401
from google.protobuf import json_format

from gammaxds.admin.http import HttpServer, Request, Response
from gammaxds.translate.view import CAPTURES, DEFAULT_OUTBOUND, PUSH_ORDER, ViewKey
from gammaxds.xds.cache import SnapshotCache
from gammaxds.xds.server import XdsServer
from gammaxds.xds.snapshot import Snapshot
from gammaxds.xds.status import describe_all

StatusFn = Callable[[], Any]

_SECTIONS = dict(zip(PUSH_ORDER, ("clusters", "endpoints", "listeners", "routes"), strict=True))


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, indent=2, sort_keys=False).encode() + b"\n"
    return Response(status, body, "application/json")


def view_json(key: ViewKey, snap: Snapshot) -> dict[str, Any]:
    """A view in proto3 JSON: what a sidecar of `key` is sent, with each resource's version."""
    out: dict[str, Any] = {
        "namespace": key.namespace,
        "capture": key.capture,
        "outbound_address": key.outbound,
    }
    for type_url, section in _SECTIONS.items():
        out[section] = [json_format.MessageToDict(res.message) for res in snap.of_type(type_url).values()]
    out["versions"] = {
        section: {name: res.version for name, res in snap.of_type(type_url).items()}
        for type_url, section in _SECTIONS.items()
    }
    return out


class Admin:
    def __init__(self, cache: SnapshotCache, status_fn: StatusFn | None, xds: XdsServer | None) -> None:
        self.cache = cache
        self.status_fn = status_fn
        self.xds = xds

    async def handle(self, request: Request) -> Response:
        match request.path:
            case "/healthz":
                return Response(200, b"ok\n")
            case "/readyz":
                return Response(200, b"ready\n") if self.cache.ready else Response(503, b"not ready\n")
            case "/metrics":
                return Response(200, self.cache.metrics.render().encode(), "text/plain; version=0.0.4")
            case "/debug/config":
                return self.config(request.query)
            case "/debug/status":
                return _json(self.status_fn() if self.status_fn is not None else {})
            case "/debug/proxies":
                return _json(describe_all(self.xds.streams) if self.xds is not None else [])
        return Response(404, b"not found\n")

    def config(self, query: dict[str, str]) -> Response:
        namespace = query.get("namespace", "")
        capture = query.get("capture", "transparent")
        if not namespace:
            return _json({"error": "namespace is required: /debug/config?namespace=NS"}, 400)
        if capture not in CAPTURES:
            return _json({"error": f"capture must be one of {', '.join(CAPTURES)}"}, 400)
        key = ViewKey(namespace, capture, query.get("outbound", DEFAULT_OUTBOUND))  # type: ignore[arg-type]
        snap = self.cache.view(key)
        if snap is None:
            return _json({"error": "no configuration yet"}, 503)
        return _json(view_json(key, snap))


class AdminServer:
    def __init__(self, http: HttpServer, address: str) -> None:
        self.http = http
        self.address = address

    @property
    def port(self) -> int:
        return self.http.port

    async def stop(self) -> None:
        await self.http.stop()


async def start_admin_server(
    address: str, cache: SnapshotCache, status_fn: StatusFn | None = None, *, xds: XdsServer | None = None
) -> AdminServer:
    """Serve /healthz, /readyz, /metrics, /debug/config, /debug/status and /debug/proxies on `address`."""
    http = HttpServer(Admin(cache, status_fn, xds).handle)
    await http.start(address)
    return AdminServer(http, address)
