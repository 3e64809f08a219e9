"""Writing route status to Kubernetes: our `status.parents[]` entries, and nothing else.

Other controllers' entries are kept as they are; ours are replaced by what the translator computed, with
`lastTransitionTime` moved only when a condition's status, reason or message changes. A route whose status is
already right is not written at all, so a pass over an unchanged World makes no API calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..model import Route, World
from ..model.gateway import GATEWAY_GROUP
from ..model.status import DEFAULT_CONTROLLER, RouteKey, RouteStatuses
from .kubeclient import Backoff, call_json

log = logging.getLogger(__name__)

PLURALS = {"HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes"}
# RBAC on `<plural>/status`: the writer sends merge patches; get and update complete the usual status grant.
STATUS_VERBS = ("get", "patch", "update")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref_key(ref: Mapping[str, Any]) -> tuple[Any, ...]:
    """A parentRef with the API's defaults applied, so equal references compare equal."""
    return (
        ref.get("group", GATEWAY_GROUP),
        ref.get("kind", "Gateway"),
        ref.get("namespace"),
        ref.get("name"),
        ref.get("sectionName"),
        ref.get("port"),
    )


def route_status(
    old: Mapping[str, Any] | None,
    ours: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    controller_name: str = DEFAULT_CONTROLLER,
    generation: int = 0,
) -> dict[str, Any]:
    """The route's next `status`: `old` with our entries replaced by `ours` (entries without times).

    Entries of other controllers keep their place and content; ours follow them in the computed order. A
    condition keeps its previous `lastTransitionTime` when its status, reason and message are unchanged;
    otherwise it gets `now`. `generation` fills in `observedGeneration` where an entry has none.
    """
    old_parents = list((old or {}).get("parents") or [])
    others = [p for p in old_parents if p.get("controllerName") != controller_name]
    previous = {
        _ref_key(p.get("parentRef") or {}): p
        for p in old_parents
        if p.get("controllerName") == controller_name
    }
    stamp = rfc3339(now)
    mine = []
    for entry in ours:
        before = {
            c.get("type"): c for c in (previous.get(_ref_key(entry["parentRef"])) or {}).get("conditions", [])
        }
        conditions = []
        for cond in entry["conditions"]:
            was = before.get(cond["type"])
            unchanged = was is not None and all(
                was.get(k) == cond.get(k) for k in ("status", "reason", "message")
            )
            conditions.append(
                {
                    **cond,
                    "observedGeneration": cond.get("observedGeneration") or generation,
                    "lastTransitionTime": was.get("lastTransitionTime", stamp)
                    if was and unchanged
                    else stamp,
                }
            )
        mine.append({**entry, "controllerName": controller_name, "conditions": conditions})
    return {**(old or {}), "parents": others + mine}


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return {**(old or {}), "parents": (old or {}).get("parents") or []} != new


class StatusWriter:
    """Writes computed route statuses through the `/status` subresource, with optimistic concurrency.

    Each write is a JSON merge patch carrying the `metadata.resourceVersion` it was computed from; on
    `409 Conflict` the route is read again and the status recomputed, up to `attempts` times.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        controller_name: str = DEFAULT_CONTROLLER,
        attempts: int = 5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.controller_name = controller_name
        self.attempts = attempts
        self.clock = clock
        self.writes = 0

    async def write(self, statuses: RouteStatuses, routes: Mapping[RouteKey, Mapping[str, Any]]) -> bool:
        """Bring the status of every route in `routes` (raw objects as last seen) in line with `statuses`.

        Routes absent from `statuses` lose our entries. True when every route was handled.
        """
        ok = True
        for key, obj in sorted(routes.items()):
            ours = [p.to_dict(self.controller_name) for p in statuses.routes.get(key, [])]
            try:
                await self._write(key, obj, ours)
            except ApiException as err:
                if err.status == 404:
                    continue  # deleted since we saw it: nothing to write
                ok = False
                log.warning("cannot write status of %s %s/%s: HTTP %s %s", *key, err.status, err.reason)
            except Exception as err:
                ok = False
                log.warning("cannot write status of %s %s/%s: %s", *key, err)
        return ok

    async def _write(self, key: RouteKey, obj: Mapping[str, Any], ours: list[dict[str, Any]]) -> bool:
        kind, namespace, name = key
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        for _attempt in range(self.attempts):
            meta = obj.get("metadata") or {}
            new = route_status(
                obj.get("status"),
                ours,
                now=self.clock(),
                controller_name=self.controller_name,
                generation=int(meta.get("generation") or 0),
            )
            if not status_changed(obj.get("status"), new):
                return False
            patch = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": {"parents": new["parents"]},
            }
            try:
                await call_json(
                    self.custom.patch_namespaced_custom_object_status(
                        group,
                        version,
                        namespace,
                        PLURALS[kind],
                        name,
                        patch,
                        # Accepted at run time (it picks the patch type); missing from the stubs.
                        _content_type="application/merge-patch+json",  # type: ignore[call-arg]
                        _preload_content=False,
                    )
                )
            except ApiException as err:
                if err.status != 409:
                    raise
                log.debug("status of %s %s/%s changed under us; reading it again", *key)
                obj = await call_json(
                    self.custom.get_namespaced_custom_object(
                        group, version, namespace, PLURALS[kind], name, _preload_content=False
                    )
                )
                continue
            self.writes += 1
            return True
        raise ApiException(status=409, reason=f"still conflicting after {self.attempts} attempts")


class StatusUpdater:
    """Keeps route status in step with the latest World; run it only on the leader.

    `update(world)` is cheap and never blocks (call it from the source's publish); `run()` writes from the
    newest World at most once per `interval`, so a burst of changes costs one pass. Only routes whose
    cluster copy has the generation the World holds are written, so status always describes the spec it
    was computed from.
    """

    def __init__(
        self,
        writer: StatusWriter,
        compute: Callable[[World], RouteStatuses],
        routes: Callable[[], Mapping[RouteKey, Mapping[str, Any]]],
        *,
        interval: float = 1.0,
    ) -> None:
        self.writer = writer
        self.compute = compute
        self.routes = routes
        self.interval = interval
        self._world: World | None = None
        self._dirty = asyncio.Event()

    def update(self, world: World) -> None:
        self._world = world
        self._dirty.set()

    async def run(self) -> None:
        backoff = Backoff(self.interval, 30.0)
        if self._world is not None:
            self._dirty.set()  # a new leader writes the current state at once
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            world = self._world
            assert world is not None
            statuses = self.compute(world)
            in_world: dict[RouteKey, Route] = {("HTTPRoute", *k): r for k, r in world.http_routes.items()}
            in_world |= {("GRPCRoute", *k): r for k, r in world.grpc_routes.items()}
            routes = {
                key: obj
                for key, obj in self.routes().items()
                if (model := in_world.get(key)) is not None
                and model.metadata.generation == int((obj.get("metadata") or {}).get("generation") or 0)
            }
            if await self.writer.write(statuses, routes):
                backoff.reset()
                await asyncio.sleep(self.interval)
            else:
                self._dirty.set()  # try again
                await asyncio.sleep(backoff.next())
