"""The admin endpoints: health, readiness, Prometheus metrics, debug views of config, status, sidecars and the
routing graph, an index at `/` and the dashboard at `/ui`. `index.ENDPOINTS` lists them."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

# Typed configs commonly packed in Any fields must be in the descriptor pool for proto3 JSON output.
import envoy.extensions.filters.http.router.v3.router_pb2
import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2  # noqa: F401
from aiohttp import web
from google.protobuf import json_format

from gammaxds.admin.graph import mesh_graph
from gammaxds.admin.http import HttpServer, text
from gammaxds.admin.index import index_html, index_text, prefers_html
from gammaxds.describe.endpoints import proxy_answer, service_answer
from gammaxds.model import ObjectError
from gammaxds.translate import Translation
from gammaxds.translate.view import CAPTURES, DEFAULT_OUTBOUND, PUSH_ORDER, ViewKey
from gammaxds.xds.cache import SnapshotCache
from gammaxds.xds.server import XdsServer
from gammaxds.xds.snapshot import Snapshot
from gammaxds.xds.status import describe_all

StatusFn = Callable[[], Any]
TranslationFn = Callable[[], Translation | None]
ErrorsFn = Callable[[], list[ObjectError]]

_SECTIONS = dict(zip(PUSH_ORDER, ("clusters", "endpoints", "listeners", "routes"), strict=True))

# The dashboard's files (package data), by the name they are served under /ui/.
UI_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _json(data: Any, status: int = 200) -> web.Response:
    return _json_bytes(json.dumps(data, indent=2).encode() + b"\n", status)


def _json_bytes(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


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


def _load_ui() -> dict[str, bytes]:
    folder = resources.files("gammaxds.admin") / "ui"
    return {name: (folder / name).read_bytes() for name in UI_FILES}


class Admin:
    def __init__(
        self,
        cache: SnapshotCache,
        status_fn: StatusFn | None,
        xds: XdsServer | None,
        translation_fn: TranslationFn | None,
        errors_fn: ErrorsFn | None = None,
    ) -> None:
        self.cache = cache
        self.errors_fn = errors_fn
        self.status_fn = status_fn
        self.xds = xds
        self.translation_fn = translation_fn
        self.ui = _load_ui()
        # The graph of the latest Translation, rendered once: the dashboard asks every second, the mesh
        # changes far less often.
        self._graph: tuple[Translation, bytes] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/debug/config", self.config)
        app.router.add_get("/debug/status", self.status)
        app.router.add_get("/debug/proxies", self.proxies)
        app.router.add_get("/debug/graph", self.graph)
        app.router.add_get("/debug/describe/service", self.describe_service)
        app.router.add_get("/debug/describe/proxy", self.describe_proxy)
        app.router.add_get("/ui", self.ui_redirect)
        app.router.add_get("/ui/", self.ui_file)
        app.router.add_get("/ui/{name}", self.ui_file)
        return app

    async def index(self, request: web.Request) -> web.Response:
        if prefers_html(request.headers.get("Accept", "")):
            return text(index_html(), content_type="text/html; charset=utf-8")
        return text(index_text())

    async def healthz(self, request: web.Request) -> web.Response:
        return text("ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        return text("ready\n") if self.cache.ready else text("not ready\n", 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.cache.metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def config(self, request: web.Request) -> web.Response:
        query = request.query
        namespace = query.get("namespace", "")
        capture = query.get("capture", "transparent")
        if not namespace:
            return _json({"error": "namespace is required: /debug/config?namespace=NS"}, 400)
        if capture not in CAPTURES:
            return _json({"error": f"capture must be one of {', '.join(CAPTURES)}"}, 400)
        key = ViewKey(namespace, capture, query.get("outbound", DEFAULT_OUTBOUND))
        snap = self.cache.view(key)
        if snap is None:
            return _json({"error": "no configuration yet"}, 503)
        return _json(view_json(key, snap))

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.status_fn() if self.status_fn is not None else {})

    async def proxies(self, request: web.Request) -> web.Response:
        return _json(describe_all(self.xds.streams) if self.xds is not None else [])

    async def graph(self, request: web.Request) -> web.Response:
        translation = self.translation_fn() if self.translation_fn is not None else None
        if translation is None:
            return _json({"error": "no mesh loaded yet"}, 503)
        if self._graph is None or self._graph[0] is not translation:
            self._graph = (translation, json.dumps(mesh_graph(translation), indent=2).encode() + b"\n")
        return _json_bytes(self._graph[1])

    async def describe_service(self, request: web.Request) -> web.Response:
        translation = self.translation_fn() if self.translation_fn is not None else None
        errors = self.errors_fn() if self.errors_fn is not None else []
        status, body = service_answer(translation, errors, request.query)
        return _json(body, status)

    async def describe_proxy(self, request: web.Request) -> web.Response:
        status, body = proxy_answer(self.xds.streams if self.xds is not None else [], request.query)
        return _json(body, status)

    async def ui_redirect(self, request: web.Request) -> web.Response:
        # The page's links are relative (`app.js`, `../debug/status`), so it lives at `/ui/`.
        raise web.HTTPFound("ui/")

    async def ui_file(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in UI_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.ui[name], headers={"Content-Type": UI_FILES[name], "Cache-Control": "no-cache"}
        )


class AdminServer:
    def __init__(self, http: HttpServer, address: str) -> None:
        self.http = http
        self.address = address

    @property
    def port(self) -> int:
        """The bound port (the kernel's choice for port 0); 0 on a Unix socket."""
        return self.http.port

    async def stop(self) -> None:
        await self.http.stop()


async def start_admin_server(
    address: str,
    cache: SnapshotCache,
    status_fn: StatusFn | None = None,
    *,
    xds: XdsServer | None = None,
    translation_fn: TranslationFn | None = None,
    errors_fn: ErrorsFn | None = None,
) -> AdminServer:
    """Serve the admin endpoints (`index.ENDPOINTS`) on `address` (`HOST:PORT`, port 0 for any, or
    `unix:PATH`). The port is bound exclusively: an address in use raises OSError. `translation_fn` returns
    the current Translation (None before the first World), for `/debug/graph` and `/debug/describe/...`;
    `errors_fn` the inputs not in force, which `describe service` lists beside the objects they name."""
    http = HttpServer(Admin(cache, status_fn, xds, translation_fn, errors_fn).app())
    await http.start(address)
    return AdminServer(http, address)
