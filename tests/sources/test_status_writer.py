"""Route status written through the fake API server's /status subresource by the real client."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.model import ParentReference
from gammaxds.model.status import Condition, ParentStatus, RouteStatuses
from gammaxds.sources.kubernetes import KubernetesSource
from gammaxds.sources.status import StatusUpdater, StatusWriter
from gammaxds.testing.gamma import until
from gammaxds.translate import translate_status

from .objects import http_route, mesh
from .waiting import WatchedWriter, versions_in

KEY = ("HTTPRoute", "shop", "cart-split")
GRPC_KEY = ("GRPCRoute", "shop", "cart-grpc")
CART = ParentReference(group="", kind="Service", name="cart", port=80)
ISTIO = {
    "parentRef": {"group": "", "kind": "Service", "name": "cart"},
    "controllerName": "istio.io/gateway-controller",
    "conditions": [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "",
            "lastTransitionTime": "2020-01-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def statuses(accepted: str = "True", reason: str = "Accepted", generation: int = 1) -> RouteStatuses:
    conditions = (Condition("Accepted", accepted, reason), Condition("ResolvedRefs", "True", "ResolvedRefs"))  # type: ignore[arg-type]
    return RouteStatuses({KEY: [ParentStatus(CART, conditions, generation)]})


def route(kube: FakeKube) -> dict[str, Any]:
    obj = kube.get(*KEY)
    assert obj is not None
    return obj


def ours(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in obj.get("status", {}).get("parents", []) if p["controllerName"] == "gammaxds.io/mesh"]


async def test_status_is_written_once_and_a_second_pass_writes_nothing(
    kube: FakeKube, api: client.ApiClient
) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    writer = StatusWriter(api, clock=Clock())
    assert await writer.write(statuses(), {KEY: route(kube)})
    [entry] = ours(route(kube))
    assert entry["parentRef"] == {"group": "", "kind": "Service", "name": "cart", "port": 80}
    assert [
        (c["type"], c["status"], c["reason"], c["observedGeneration"], c["lastTransitionTime"])
        for c in entry["conditions"]
    ] == [
        ("Accepted", "True", "Accepted", 1, "2024-05-01T12:00:00Z"),
        ("ResolvedRefs", "True", "ResolvedRefs", 1, "2024-05-01T12:00:00Z"),
    ]
    assert kube.status_writes == 1 and writer.writes == 1
    requests = len(kube.requests)
    assert await writer.write(statuses(), {KEY: route(kube)})
    assert kube.status_writes == 1 and len(kube.requests) == requests  # no call at all


async def test_another_controllers_entry_is_preserved(kube: FakeKube, api: client.ApiClient) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    kube.set_status(*KEY, {"parents": [ISTIO]})
    await StatusWriter(api).write(statuses(), {KEY: route(kube)})
    parents = route(kube)["status"]["parents"]
    assert parents[0] == ISTIO and len(parents) == 2
    await StatusWriter(api).write(RouteStatuses(), {KEY: route(kube)})  # no Service parent any more
    assert route(kube)["status"]["parents"] == [ISTIO]


async def test_transition_time_moves_only_when_a_condition_changes(
    kube: FakeKube, api: client.ApiClient
) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    clock = Clock()
    writer = StatusWriter(api, clock=clock)
    await writer.write(statuses(generation=1), {KEY: route(kube)})
    clock.now += timedelta(minutes=5)
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2", "/v2"))  # a spec change: generation 2
    assert route(kube)["metadata"]["generation"] == 2
    await writer.write(statuses(generation=2), {KEY: route(kube)})
    [entry] = ours(route(kube))
    assert {(c["observedGeneration"], c["lastTransitionTime"]) for c in entry["conditions"]} == {
        (2, "2024-05-01T12:00:00Z")
    }
    clock.now += timedelta(minutes=5)
    await writer.write(statuses("False", "BackendNotFound", 2), {KEY: route(kube)})
    accepted, resolved = ours(route(kube))[0]["conditions"]
    assert (accepted["reason"], accepted["lastTransitionTime"]) == ("BackendNotFound", "2024-05-01T12:10:00Z")
    assert resolved["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert kube.status_writes == 3


async def test_conflict_is_retried_on_a_fresh_read(kube: FakeKube, api: client.ApiClient) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    kube.inject_conflicts = 2  # another client updates the route just before each of our next two writes
    writer = StatusWriter(api)
    assert await writer.write(statuses(), {KEY: route(kube)})
    assert kube.conflicts == 2 and kube.status_writes == 1
    assert route(kube)["metadata"]["labels"]["touched-by"].startswith("other-")  # their change survives
    assert len(ours(route(kube))) == 1


async def test_a_stale_copy_conflicts_then_finds_nothing_to_do(kube: FakeKube, api: client.ApiClient) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    stale = route(kube)
    writer = StatusWriter(api)
    await writer.write(statuses(), {KEY: stale})
    await writer.write(statuses(), {KEY: stale})  # 409, re-read: already right
    assert kube.conflicts == 1 and kube.status_writes == 1


async def test_conflicts_are_bounded(kube: FakeKube, api: client.ApiClient) -> None:
    kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
    kube.inject_conflicts = 100
    assert not await StatusWriter(api, attempts=3).write(statuses(), {KEY: route(kube)})
    assert kube.conflicts == 3 and kube.status_writes == 0


async def test_updater_keeps_status_of_a_watched_cluster_in_step(
    kube: FakeKube, api: client.ApiClient
) -> None:
    """Source → translator's statuses → writer, end to end; our own writes do not cause more writes."""
    for obj in mesh():
        kube.apply(obj)
    source = KubernetesSource(api)
    writer = WatchedWriter(api)
    updater = StatusUpdater(writer, translate_status, source.route_objects, interval=0.05)
    tasks = [asyncio.create_task(source.run(updater.update)), asyncio.create_task(updater.run())]
    try:
        await until(lambda: len(ours(route(kube))) == 1, "the route's status")
        accepted = ours(route(kube))[0]["conditions"][0]
        assert (accepted["type"], accepted["status"]) == ("Accepted", "True")
        # Our writes come back through the watch; a pass over the routes as they are after them writes
        # nothing more.
        await until(lambda: kube.status_writes == 2, "both routes' status")
        await writer.pass_over({KEY, GRPC_KEY}, versions_in(kube))
        assert kube.status_writes == 2  # the HTTPRoute and the GRPCRoute, once each
        kube.apply(http_route("shop", "cart-split", "cart", "nowhere"))  # its backend does not exist
        await until(
            lambda: ours(route(kube))[0]["conditions"][0]["observedGeneration"] == 2,
            "the new generation's status",
        )
        resolved = {c["type"]: c for c in ours(route(kube))[0]["conditions"]}["ResolvedRefs"]
        assert resolved["status"] == "False"
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
