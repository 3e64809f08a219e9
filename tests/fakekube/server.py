"""A Kubernetes API server in the test process, speaking the API's HTTP protocol for the kinds gammaxds uses.

It keeps objects in memory under one global, monotonically increasing resourceVersion, and implements what a
client of the real API relies on: paginated lists (`limit`/`continue`), watches that replay events after a
resourceVersion and then stream new ones as chunked JSON lines (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
`ERROR`), `410 Gone` for a compacted resourceVersion (as an ERROR event or as an HTTP status), the `/status`
subresource (`PUT`, and `PATCH` with `application/merge-patch+json`), merge patches of whole objects (the
webhook's MutatingWebhookConfiguration) and plain create/get/replace/delete, all
with optimistic concurrency on `metadata.resourceVersion` (`409 Conflict`), and `404` for API groups/versions
not installed. Tests drive it with the methods under "test controls", and wait for what it sees with `until`.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

GATEWAY = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    group: str
    plural: str
    kind: str
    namespaced: bool
    versions: tuple[str, ...]
    builtin: bool  # built-in types omit kind/apiVersion on list items; CRDs include them

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "namespaces", "Namespace", False, ("v1",), True),
    ResourceType("", "services", "Service", True, ("v1",), True),
    ResourceType("discovery.k8s.io", "endpointslices", "EndpointSlice", True, ("v1",), True),
    ResourceType("coordination.k8s.io", "leases", "Lease", True, ("v1",), True),
    ResourceType(GATEWAY, "httproutes", "HTTPRoute", True, ("v1", "v1beta1"), False),
    ResourceType(GATEWAY, "grpcroutes", "GRPCRoute", True, ("v1",), False),
    ResourceType(GATEWAY, "referencegrants", "ReferenceGrant", True, ("v1", "v1beta1"), False),
    ResourceType(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        ("v1",),
        True,
    ),
)
BY_KIND = {t.kind: t for t in TYPES}
BY_PLURAL = {(t.group, t.plural): t for t in TYPES}
STATUS_SUBRESOURCE = {"httproutes", "grpcroutes"}


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code,
    }


def _error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status_body(code, reason, message), status=code)


def _bool(value: str | None) -> bool:
    """A boolean query parameter as the API server parses it (Go's strconv.ParseBool)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _without_rv(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Event:
    resource_version: int
    type: str
    rtype: ResourceType
    object: dict[str, Any]


@dataclass(eq=False)
class Watcher:
    rtype: ResourceType
    version: str
    namespace: str | None
    bookmarks: bool
    queue: asyncio.Queue[Event | str] = field(default_factory=asyncio.Queue)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]


class FakeKube:
    """The server. `async with FakeKube() as kube:` starts it on a free port of 127.0.0.1."""

    def __init__(self, *, gateway_api: bool = True) -> None:
        self.resource_version = 0
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {
            (t.group, t.plural): {} for t in TYPES
        }
        self.served: dict[tuple[str, str], tuple[str, ...]] = {(t.group, t.plural): t.versions for t in TYPES}
        if not gateway_api:
            self.uninstall_gateway_api()
        self.events: list[Event] = []
        self.compacted = 0  # watches from a resourceVersion below this get 410 Gone
        self.gone_as: Literal["event", "http"] = "event"
        self.requests: list[Request] = []
        self.status_writes = 0  # successful writes through a /status subresource
        self.conflicts = 0  # 409s answered
        self.inject_conflicts = 0  # status writes to preempt with a concurrent update (to provoke a 409)
        self.inject_patch_conflicts = 0  # the same for merge patches of a whole object
        self.patches = 0  # successful merge patches of a whole object
        self._watchers: set[Watcher] = set()
        self._activity = asyncio.Event()  # set whenever a request, a watch or an object changes
        self._continues: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # token → (resourceVersion, rest)
        self._app = web.Application()
        self._app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(self._app, handle_signals=False, shutdown_timeout=1)
        self._site: web.TCPSite | None = None
        self.port = 0

    async def __aenter__(self) -> FakeKube:
        await self._runner.setup()
        await self._start_site()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_watches()
        await self._runner.cleanup()

    async def _start_site(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        server = self._site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    # --- test controls ------------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object or replace it (spec changes bump `metadata.generation`). Returns it as stored."""
        rtype = BY_KIND[obj["kind"]]
        meta = obj["metadata"]
        current = self._get(rtype, meta.get("namespace", ""), meta["name"])
        if current is None:
            return self._create(rtype, copy.deepcopy(obj))
        replacement = copy.deepcopy(obj)
        replacement.setdefault("status", current.get("status"))
        if replacement["status"] is None:
            replacement.pop("status")
        return self._update(rtype, current, replacement)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        rtype = BY_KIND[kind]
        obj = self.objects[(rtype.group, rtype.plural)].pop(self._okey(rtype, namespace, name))
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self._emit("DELETED", rtype, obj)

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Another client writes the object's status."""
        rtype = BY_KIND[kind]
        current = self._get(rtype, namespace, name)
        assert current is not None
        return self._update(rtype, current, {**copy.deepcopy(current), "status": copy.deepcopy(status)})

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self._get(BY_KIND[kind], namespace, name))

    def compact(self) -> None:
        """Forget all history up to now: older resourceVersions (and continue tokens) answer 410 Gone."""
        self.compacted = self.resource_version
        self.events.clear()
        self._continues.clear()

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch that asked for bookmarks."""
        for w in self._watchers:
            if w.bookmarks:
                obj = {
                    "kind": w.rtype.kind,
                    "apiVersion": w.rtype.api_version(w.version),
                    "metadata": {"resourceVersion": str(self.resource_version)},
                }
                w.queue.put_nowait(Event(self.resource_version, "BOOKMARK", w.rtype, obj))

    def drop_watches(self) -> set[Watcher]:
        """Cut every watch connection mid-stream (no terminating chunk). Returns the watches cut."""
        dropped = set(self._watchers)
        for w in dropped:
            w.queue.put_nowait("drop")
        return dropped

    def watch_count(self, plural: str | None = None) -> int:
        return sum(1 for w in self._watchers if plural in (None, w.rtype.plural))

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until `condition()` holds, checking it after each request the server takes or answers, each
        watch that starts or ends and each object change; fail, naming `what`, after `timeout` seconds."""

        async def wait() -> None:
            while not condition():
                self._activity.clear()
                await self._activity.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None

    async def go_down(self) -> None:
        """Stop listening and cut every connection, as an API server restart does."""
        dropped = self.drop_watches()
        await self.until(lambda: not dropped & self._watchers, "the cut watches to end")
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        if server is not None:
            for conn in server.connections:
                conn.force_close()

    async def come_up(self) -> None:
        await self._start_site()

    def uninstall_gateway_api(self) -> None:
        for t in TYPES:
            if t.group == GATEWAY:
                self.serve(t.plural, ())

    def serve(self, plural: str, versions: Iterable[str]) -> None:
        """Serve a resource at exactly these versions (none: its CRD is not installed)."""
        rtype = next(t for t in TYPES if t.plural == plural)
        self.served[(rtype.group, rtype.plural)] = tuple(versions)

    def list_requests(self, plural: str) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.path.endswith("/" + plural) and not _bool(r.query.get("watch"))
        ]

    def watch_requests(self, plural: str) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/" + plural) and _bool(r.query.get("watch"))]

    # --- storage ------------------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.resource_version += 1
        return self.resource_version

    @staticmethod
    def _okey(rtype: ResourceType, namespace: str, name: str) -> tuple[str, str]:
        return (namespace if rtype.namespaced else "", name)

    def _get(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects[(rtype.group, rtype.plural)].get(self._okey(rtype, namespace, name))

    def _create(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not rtype.namespaced:
            meta.pop("namespace", None)
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resourceVersion=str(self._next_rv()),
            generation=1,
        )
        obj["apiVersion"] = rtype.api_version(rtype.versions[0])
        obj["kind"] = rtype.kind
        self.objects[(rtype.group, rtype.plural)][
            self._okey(rtype, meta.get("namespace", ""), meta["name"])
        ] = obj
        self._emit("ADDED", rtype, obj)
        return copy.deepcopy(obj)

    def _update(self, rtype: ResourceType, current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        meta = new.setdefault("metadata", {})
        for keep in ("uid", "creationTimestamp", "namespace", "name"):
            if keep in current["metadata"]:
                meta[keep] = current["metadata"][keep]
        spec_changed = {
            k: v for k, v in new.items() if k not in ("metadata", "status", "apiVersion", "kind")
        } != {k: v for k, v in current.items() if k not in ("metadata", "status", "apiVersion", "kind")}
        meta["generation"] = current["metadata"].get("generation", 1) + (1 if spec_changed else 0)
        new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
        if _without_rv(new) == _without_rv(current):
            return copy.deepcopy(current)  # a no-op update does not change the resourceVersion
        meta["resourceVersion"] = str(self._next_rv())
        self.objects[(rtype.group, rtype.plural)][
            self._okey(rtype, meta.get("namespace", ""), meta["name"])
        ] = new
        self._emit("MODIFIED", rtype, new)
        return copy.deepcopy(new)

    def _emit(self, type_: str, rtype: ResourceType, obj: dict[str, Any]) -> None:
        event = Event(int(obj["metadata"]["resourceVersion"]), type_, rtype, copy.deepcopy(obj))
        self.events.append(event)
        self._activity.set()
        for w in self._watchers:
            if w.rtype == rtype and w.namespace in (None, obj["metadata"].get("namespace")):
                w.queue.put_nowait(event)

    def _as_version(self, obj: dict[str, Any], rtype: ResourceType, version: str) -> dict[str, Any]:
        return {**copy.deepcopy(obj), "apiVersion": rtype.api_version(version), "kind": rtype.kind}

    # --- HTTP ---------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Request(request.method, request.path, dict(request.query)))
        self._activity.set()
        try:
            return await self._answer(request)
        finally:
            self._activity.set()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        parsed = self._parse(request.path)
        if parsed is None:
            return _error(404, "NotFound", "the server could not find the requested resource")
        rtype, version, namespace, name, sub = parsed
        if request.method == "GET" and name is None:
            if _bool(request.query.get("watch")):
                return await self._watch(request, rtype, version, namespace)
            return self._list(request, rtype, version, namespace)
        if request.method == "GET" and name is not None and sub is None:
            obj = self._get(rtype, namespace or "", name)
            if obj is None:
                return _error(404, "NotFound", f'{rtype.plural}.{rtype.group} "{name}" not found')
            return web.json_response(self._as_version(obj, rtype, version))
        if request.method == "POST" and name is None:
            return await self._post(request, rtype, version, namespace)
        if request.method == "PUT" and name is not None:
            return await self._put(request, rtype, version, namespace or "", name, sub)
        if request.method == "PATCH" and name is not None and sub is None:
            return await self._patch(request, rtype, version, namespace or "", name)
        if request.method == "PATCH" and name is not None and sub == "status":
            return await self._patch_status(request, rtype, version, namespace or "", name)
        if request.method == "DELETE" and name is not None and sub is None:
            if self._get(rtype, namespace or "", name) is None:
                return _error(404, "NotFound", f'{rtype.plural}.{rtype.group} "{name}" not found')
            self.delete(rtype.kind, namespace or "", name)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        return _error(405, "MethodNotAllowed", f"{request.method} is not supported here")

    def _parse(self, path: str) -> tuple[ResourceType, str, str | None, str | None, str | None] | None:
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rtype = BY_PLURAL.get((group, rest[0]))
        if rtype is None or version not in self.served[(group, rtype.plural)]:
            return None
        if namespace is not None and not rtype.namespaced:
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or rtype.plural not in STATUS_SUBRESOURCE):
            return None
        return rtype, version, namespace, name, sub

    def _selected(self, rtype: ResourceType, namespace: str | None) -> list[dict[str, Any]]:
        objs = self.objects[(rtype.group, rtype.plural)]
        return [objs[k] for k in sorted(objs) if namespace is None or k[0] == namespace]

    def _list(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str | None
    ) -> web.Response:
        token = request.query.get("continue")
        if token:
            if token not in self._continues:
                return _error(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent "
                    "list result. You can start a new list without the continue parameter.",
                )
            rv, items = self._continues.pop(token)  # the rest of the same consistent snapshot
        else:
            items = [self._as_version(o, rtype, version) for o in self._selected(rtype, namespace)]
            if rtype.builtin:
                items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
            rv = str(self.resource_version)
        limit = int(request.query.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit and len(items) > limit:
            token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()
            self._continues[token] = (rv, items[limit:])
            meta["continue"] = token
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return web.json_response(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version(version),
                "metadata": meta,
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str | None
    ) -> web.StreamResponse:
        since = request.query.get("resourceVersion", "")
        bookmarks = _bool(request.query.get("allowWatchBookmarks"))
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        watcher = Watcher(rtype, version, namespace, bookmarks)
        if since not in ("", "0") and int(since) < self.compacted:
            message = f"too old resource version: {since} ({self.compacted})"
            if self.gone_as == "http":
                return _error(410, "Expired", message)
            watcher.queue.put_nowait(Event(0, "ERROR", rtype, status_body(410, "Expired", message)))
            watcher.queue.put_nowait("end")
        elif since in ("", "0"):
            for obj in self._selected(rtype, namespace):
                watcher.queue.put_nowait(Event(int(obj["metadata"]["resourceVersion"]), "ADDED", rtype, obj))
        else:
            for event in self.events:
                if (
                    event.rtype == rtype
                    and event.resource_version > int(since)
                    and (namespace is None or event.object["metadata"].get("namespace") == namespace)
                ):
                    watcher.queue.put_nowait(event)
        self._watchers.add(watcher)
        self._activity.set()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break  # the watch's timeoutSeconds: end the stream cleanly
                if item == "end":
                    break
                if item == "drop":
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                assert isinstance(item, Event)
                obj = (
                    item.object
                    if item.type in ("BOOKMARK", "ERROR")
                    else self._as_version(item.object, rtype, version)
                )
                await response.write(json.dumps({"type": item.type, "object": obj}).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(watcher)
            self._activity.set()
        return response

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "the request body is not a JSON object")
        return body

    async def _post(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str | None
    ) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        meta = body.setdefault("metadata", {})
        if rtype.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        if self._get(rtype, meta.get("namespace", ""), meta.get("name", "")) is not None:
            self.conflicts += 1
            return _error(
                409, "AlreadyExists", f'{rtype.plural}.{rtype.group} "{meta["name"]}" already exists'
            )
        if rtype.plural in STATUS_SUBRESOURCE:
            body.pop("status", None)  # status is written through the subresource only
        created = self._create(rtype, body)
        return web.json_response(self._as_version(created, rtype, version), status=201)

    def _conflict(self, rtype: ResourceType, name: str) -> web.Response:
        self.conflicts += 1
        return _error(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rtype.plural}.{rtype.group} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
        )

    def _preempt(self, rtype: ResourceType, current: dict[str, Any]) -> dict[str, Any]:
        """Another client updates the object first (a label change), as a concurrent writer would."""
        self.inject_conflicts -= 1
        other = copy.deepcopy(current)
        other["metadata"].setdefault("labels", {})["touched-by"] = f"other-{self.resource_version}"
        return self._update(rtype, current, other)

    async def _put(
        self,
        request: web.Request,
        rtype: ResourceType,
        version: str,
        namespace: str,
        name: str,
        sub: str | None,
    ) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        current = self._get(rtype, namespace, name)
        if current is None:
            return _error(404, "NotFound", f'{rtype.plural}.{rtype.group} "{name}" not found')
        if sub == "status" and self.inject_conflicts > 0:
            current = self._preempt(rtype, current)
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            return self._conflict(rtype, name)
        if sub == "status":
            new = {**copy.deepcopy(current), "status": body.get("status")}
            if new["status"] is None:
                new.pop("status")
            self.status_writes += 1
        else:
            new = body
            if rtype.plural in STATUS_SUBRESOURCE:
                new["status"] = current.get("status")
        return web.json_response(self._as_version(self._update(rtype, current, new), rtype, version))

    async def _patch(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str, name: str
    ) -> web.Response:
        """PATCH of a whole object with `application/merge-patch+json` (what gammaxds sends there), with the
        same optimistic concurrency as the status subresource."""
        if request.content_type != "application/merge-patch+json":
            return _error(
                415,
                "UnsupportedMediaType",
                f"this server takes application/merge-patch+json only (got {request.content_type})",
            )
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        current = self._get(rtype, namespace, name)
        if current is None:
            return _error(404, "NotFound", f'{rtype.plural}.{rtype.group} "{name}" not found')
        if self.inject_patch_conflicts > 0:
            self.inject_patch_conflicts -= 1
            self.inject_conflicts += 1
            current = self._preempt(rtype, current)
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            return self._conflict(rtype, name)
        patched = merge_patch(current, {k: v for k, v in body.items() if k != "status"})
        if rtype.plural in STATUS_SUBRESOURCE:
            patched["status"] = current.get("status")
        self.patches += 1
        return web.json_response(self._as_version(self._update(rtype, current, patched), rtype, version))

    async def _patch_status(
        self, request: web.Request, rtype: ResourceType, version: str, namespace: str, name: str
    ) -> web.Response:
        if request.content_type != "application/merge-patch+json":
            return _error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/merge-patch+json (got {request.content_type})",
            )
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        current = self._get(rtype, namespace, name)
        if current is None:
            return _error(404, "NotFound", f'{rtype.plural}.{rtype.group} "{name}" not found')
        if self.inject_conflicts > 0:
            current = self._preempt(rtype, current)
        expected = (body.get("metadata") or {}).get("resourceVersion")
        if expected and expected != current["metadata"]["resourceVersion"]:
            return self._conflict(rtype, name)
        patched = merge_patch(current, body)
        new = {
            **copy.deepcopy(current),
            "status": patched.get("status"),
        }  # the status subresource: status only
        if new["status"] is None:
            new.pop("status")
        self.status_writes += 1
        return web.json_response(self._as_version(self._update(rtype, current, new), rtype, version))
