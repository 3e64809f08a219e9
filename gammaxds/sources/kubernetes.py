"""Kubernetes as a source: list-then-watch of every kind the World holds, one reflector per kind.

Each reflector lists (paginated), then watches from the list's resourceVersion, following bookmarks so that a
reconnect resumes where it left off instead of relisting. `410 Gone` (as an HTTP status or an ERROR event)
means the resourceVersion was compacted away: relist. Any other failure is retried with capped, jittered
exponential backoff. Gateway API kinds whose CRDs are not installed are reported once and looked for again
slowly, while the other kinds keep working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..model import ObjectError, parse_object
from ..model.base import LENIENT
from ..model.gateway import GATEWAY_GROUP
from ..model.world import Key
from .base import Publish, Store
from .kubeclient import Backoff, call_json, check, raw_response, status_error

log = logging.getLogger(__name__)

ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


@dataclass(frozen=True)
class Resource:
    """One kind the source reads: where it is served, newest version first."""

    kind: str
    group: str
    plural: str
    versions: tuple[str, ...]
    verbs: tuple[str, ...] = ("get", "list", "watch")  # what RBAC must allow (get: status conflict re-reads)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


RESOURCES: tuple[Resource, ...] = (
    Resource("Namespace", "", "namespaces", ("v1",)),
    Resource("Service", "", "services", ("v1",)),
    Resource("EndpointSlice", "discovery.k8s.io", "endpointslices", ("v1",)),
    Resource("HTTPRoute", GATEWAY_GROUP, "httproutes", ("v1", "v1beta1")),
    Resource("GRPCRoute", GATEWAY_GROUP, "grpcroutes", ("v1", "v1alpha2")),
    Resource("ReferenceGrant", GATEWAY_GROUP, "referencegrants", ("v1", "v1beta1")),
)


class _Gone(Exception):
    """The resourceVersion we hold is older than the API server keeps: relist."""


def _lister(api: client.ApiClient, res: Resource, version: str) -> Callable[..., Awaitable[object]]:
    """The `kubernetes_asyncio` list/watch call for a resource, across all namespaces. Made with
    `_preload_content=False`, it returns aiohttp's response (`raw_response`)."""
    if res.plural == "namespaces":
        return client.CoreV1Api(api).list_namespace
    if res.plural == "services":
        return client.CoreV1Api(api).list_service_for_all_namespaces
    if res.plural == "endpointslices":
        return client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces
    custom = client.CustomObjectsApi(api)

    def list_custom(**kwargs: Any) -> Awaitable[object]:
        return custom.list_cluster_custom_object(res.group, version, res.plural, **kwargs)

    return list_custom


def _key(kind: str, raw: dict[str, Any]) -> Key:
    meta = raw.get("metadata") or {}
    namespace = "" if kind == "Namespace" else str(meta.get("namespace", "default"))
    return (kind, namespace, str(meta.get("name", "")))


class KubernetesSource:
    """Services, EndpointSlices, Namespaces and Gateway API routes/grants from a cluster, as Worlds.

    The first World is published once every kind has been listed (or found not installed); `synced` is set
    right after it. An object the model refuses is reported in `errors` and its last valid version, if any,
    stays in force.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        resources: Sequence[Resource] = RESOURCES,
        watch_timeout: int = 300,
        page_size: int = 500,
        backoff_initial: float = 0.5,
        backoff_cap: float = 30.0,
        crd_retry: float = 30.0,
    ) -> None:
        self.api = api
        self.resources = tuple(resources)
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.backoff_initial, self.backoff_cap = backoff_initial, backoff_cap
        self.crd_retry = crd_retry
        self.synced = asyncio.Event()
        self.resource_versions: dict[str, str] = {}  # kind → the resourceVersion a watch resumes from
        self.versions: dict[str, str] = {}  # kind → API version in use
        self.missing: set[str] = set()  # kinds whose API is not served (CRD not installed)
        self._store = Store()
        self._errors: dict[Key, list[ObjectError]] = {}
        self._routes: dict[Key, dict[str, Any]] = {}
        self._listed: set[str] = set()
        self._changed = asyncio.Event()

    @property
    def errors(self) -> list[ObjectError]:
        return [e for key in sorted(self._errors) for e in self._errors[key]]

    def route_objects(self) -> dict[Key, dict[str, Any]]:
        """Every HTTPRoute and GRPCRoute as last seen in the cluster (raw JSON), for the status writer."""
        return dict(self._routes)

    async def run(self, publish: Publish) -> None:
        async with asyncio.TaskGroup() as tasks:
            for res in self.resources:
                tasks.create_task(self._reflect(res), name=f"reflect {res.kind}")
            tasks.create_task(self._publish(publish), name="publish")

    async def _publish(self, publish: Publish) -> None:
        """Publish after each batch: reflectors apply every event already received before this runs again."""
        kinds = {r.kind for r in self.resources}
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._listed != kinds:
                continue
            self._store.publish(publish)
            self.synced.set()

    # --- one kind ---------------------------------------------------------------------------------------

    async def _reflect(self, res: Resource) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_cap)
        while True:
            try:
                if not await self._list(res):
                    await asyncio.sleep(self.crd_retry)
                    continue
                await self._watch_until_gone(res, backoff)
            except _Gone:
                log.info(
                    "%s: resourceVersion %s expired; relisting",
                    res.kind,
                    self.resource_versions.get(res.kind),
                )
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if isinstance(err, ApiException) and err.status == 410:
                    log.info("%s: list continuation expired; relisting", res.kind)
                    continue
                delay = backoff.next()
                log.warning("%s: list failed (%s); retrying in %.1f s", res.kind, _describe(err), delay)
                await asyncio.sleep(delay)

    async def _list(self, res: Resource) -> bool:
        """List every object of the kind into the store. False when no version of it is served."""
        for version in res.versions:
            try:
                items, resource_version = await self._list_pages(res, version)
            except ApiException as err:
                if err.status == 404:
                    continue
                raise
            break
        else:
            self._not_served(res)
            return False
        if res.kind in self.missing:
            self.missing.discard(res.kind)
            log.info("%s: now served as %s", res.kind, res.api_version(version))
        self.versions[res.kind] = version
        self.resource_versions[res.kind] = resource_version
        self._replace(res, version, items)
        return True

    async def _list_pages(self, res: Resource, version: str) -> tuple[list[dict[str, Any]], str]:
        call = _lister(self.api, res, version)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await call_json(
                call(
                    limit=self.page_size,
                    **({"_continue": token} if token else {}),
                    _preload_content=False,
                    _request_timeout=60,
                )
            )
            items += page.get("items") or []
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    def _not_served(self, res: Resource) -> None:
        if res.kind not in self.missing:
            self.missing.add(res.kind)
            versions = ", ".join(res.api_version(v) for v in res.versions)
            hint = " (are the Gateway API CRDs installed?)" if res.group == GATEWAY_GROUP else ""
            log.warning(
                "%s is not served (%s)%s; the other kinds are unaffected; looking again every %.0f s",
                res.kind,
                versions,
                hint,
                self.crd_retry,
            )
        self.versions.pop(res.kind, None)
        self._replace(res, "", [])

    async def _watch_until_gone(self, res: Resource, backoff: Backoff) -> None:
        """Watch from the last resourceVersion, reconnecting after drops; returns never, raises `_Gone`."""
        while True:
            started = time.monotonic()
            try:
                events = await self._watch(res)
                if events or time.monotonic() - started > 1:
                    backoff.reset()
                    continue  # the server's timeout ended it: resume at once
                await asyncio.sleep(backoff.next())  # ended at once with nothing in it: do not spin
                continue
            except (_Gone, asyncio.CancelledError):
                raise
            except Exception as err:
                if isinstance(err, ApiException) and err.status == 410:
                    raise _Gone() from err
                if isinstance(err, ApiException) and err.status not in (429, 500, 502, 503, 504):
                    raise  # not a transient failure (e.g. 404: the CRD went away): relist
                if time.monotonic() - started > 1:
                    backoff.reset()
                delay = backoff.next()
                log.warning("%s: watch failed (%s); resuming in %.1f s", res.kind, _describe(err), delay)
                await asyncio.sleep(delay)

    async def _watch(self, res: Resource) -> int:
        call = _lister(self.api, res, self.versions[res.kind])
        response = await check(
            raw_response(
                await call(
                    watch=True,
                    resource_version=self.resource_versions[res.kind],
                    allow_watch_bookmarks=True,
                    timeout_seconds=self.watch_timeout,
                    _preload_content=False,
                    _request_timeout=(10, self.watch_timeout + 30),
                )
            )
        )
        events = 0
        try:
            async for line in response.content:
                if line.strip():
                    self._on_event(res, json.loads(line))
                    events += 1
        finally:
            response.close()
        return events

    def _on_event(self, res: Resource, event: dict[str, Any]) -> None:
        kind_of_event, obj = event.get("type"), event.get("object") or {}
        if kind_of_event == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise status_error(int(obj.get("code") or 500), obj)
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if kind_of_event in ("ADDED", "MODIFIED"):
            self._put(res, self.versions[res.kind], obj)
        elif kind_of_event == "DELETED":
            self._delete(_key(res.kind, obj))
        elif kind_of_event != "BOOKMARK":
            log.warning("%s: ignoring watch event of type %r", res.kind, kind_of_event)
        if version:
            self.resource_versions[res.kind] = version

    # --- the store --------------------------------------------------------------------------------------

    def _replace(self, res: Resource, version: str, items: list[dict[str, Any]]) -> None:
        keys = {_key(res.kind, item) for item in items}
        for key in [k for k in self._store.objects if k[0] == res.kind and k not in keys]:
            self._delete(key)
        for key in [k for k in self._errors if k[0] == res.kind and k not in keys]:
            self._delete(key)
        for item in items:
            self._put(res, version, item)
        self._listed.add(res.kind)
        self._changed.set()

    def _put(self, res: Resource, version: str, raw: dict[str, Any]) -> None:
        raw = {**raw, "apiVersion": raw.get("apiVersion") or res.api_version(version), "kind": res.kind}
        key = _key(res.kind, raw)
        if res.kind in ROUTE_KINDS:
            self._routes[key] = raw
        # The API server validated the object against its schema: a field gammaxds does not model is newer
        # than gammaxds, not a typo, so it is ignored here (manifest files are checked strictly).
        loaded = parse_object(raw, context=LENIENT)
        if loaded.errors:
            if key in self._store.objects:
                loaded.errors = [e.kept("previous version") for e in loaded.errors]
            for err in loaded.errors:
                log.warning("invalid object: %s", err)
            self._errors[key] = loaded.errors
            return
        self._errors.pop(key, None)
        for obj in loaded.objects:
            if self._store.objects.get(key) != obj:
                self._store.put(obj)
                self._changed.set()

    def _delete(self, key: Key) -> None:
        self._routes.pop(key, None)
        self._errors.pop(key, None)
        if key in self._store.objects:
            self._store.remove(key)
            self._changed.set()


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}".strip()
    return f"{type(err).__name__}: {err}".rstrip(": ")
