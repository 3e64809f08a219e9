"""The Kubernetes source against a real HTTP API server (fakekube) through the real kubernetes_asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.model import World
from gammaxds.sources.kubernetes import KubernetesSource
from gammaxds.testing.gamma import until

from .conftest import Published
from .objects import endpoint_slice, grpc_route, http_route, mesh, namespace, reference_grant, service


@contextlib.asynccontextmanager
async def running(source: KubernetesSource, published: Published) -> AsyncIterator[KubernetesSource]:
    task = asyncio.create_task(source.run(published))
    try:
        await asyncio.wait_for(source.synced.wait(), 5)
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def fast(api: client.ApiClient, **kwargs: Any) -> KubernetesSource:
    """A source with test-sized retry pacing."""
    return KubernetesSource(api, backoff_initial=0.05, backoff_cap=0.5, crd_retry=0.2, **kwargs)


def keys(world: World) -> set[tuple[str, str, str]]:
    return set(world.objects)


MESH_KEYS = {
    ("Namespace", "", "shop"),
    ("Namespace", "", "web"),
    ("Service", "shop", "cart"),
    ("Service", "shop", "cart-v2"),
    ("EndpointSlice", "shop", "cart-abc"),
    ("EndpointSlice", "shop", "cart-v2-abc"),
    ("HTTPRoute", "shop", "cart-split"),
    ("GRPCRoute", "shop", "cart-grpc"),
    ("ReferenceGrant", "shop", "from-web"),
}


async def test_initial_sync_publishes_every_kind_then_sets_synced(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published) as source:
        assert len(published.worlds) == 1  # one World for the whole initial list, published before `synced`
        assert keys(published.world) == MESH_KEYS
        assert source.errors == []
        assert source.versions == {
            "Namespace": "v1",
            "Service": "v1",
            "EndpointSlice": "v1",
            "HTTPRoute": "v1",
            "GRPCRoute": "v1",
            "ReferenceGrant": "v1",
        }
        svc = published.world.services[("shop", "cart")]
        assert svc.cluster_ip == "10.96.0.10"
        assert [s.name for s in published.world.slices_by_service[("shop", "cart")]] == ["cart-abc"]


async def test_synced_waits_until_the_api_server_answers(
    kube: FakeKube, api: client.ApiClient, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gammaxds.sources.kubernetes")
    await kube.go_down()
    source = fast(api)
    task = asyncio.create_task(source.run(published))

    def failed_lists(kind: str) -> int:
        return sum(1 for r in caplog.records if r.getMessage().startswith(f"{kind}: list failed"))

    # Every kind has tried, been refused and tried again: still nothing published, not synced.
    await until(
        lambda: all(failed_lists(r.kind) >= 2 for r in source.resources), "two refused lists per kind"
    )
    assert not source.synced.is_set() and published.worlds == []
    await kube.come_up()
    await asyncio.wait_for(source.synced.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "Namespace": (
        namespace("extra"),
        {**namespace("extra"), "metadata": {"name": "extra", "labels": {"a": "b"}}},
    ),
    "Service": (service("shop", "new"), service("shop", "new", port=8080)),
    "EndpointSlice": (
        endpoint_slice("shop", "new-1", "cart", "10.0.0.9"),
        endpoint_slice("shop", "new-1", "cart"),
    ),
    "HTTPRoute": (
        http_route("shop", "new", "cart", "cart-v2"),
        http_route("shop", "new", "cart", "cart-v2", "/v2"),
    ),
    "GRPCRoute": (
        grpc_route("shop", "new", "cart", "cart-v2"),
        grpc_route("shop", "new", "cart", "cart-v2", "x.Y"),
    ),
    "ReferenceGrant": (reference_grant("shop", "new", "web"), reference_grant("shop", "new", "other")),
}


@pytest.mark.parametrize("kind", sorted(CHANGES))
async def test_added_modified_deleted_update_the_world(
    kind: str, kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    added, modified = CHANGES[kind]
    ns = "" if kind == "Namespace" else "shop"
    key = (kind, ns, added["metadata"]["name"])
    async with running(fast(api), published):
        kube.apply(added)
        world = await published.until(lambda w: key in w.objects)
        first = world.objects[key]
        kube.apply(modified)
        world = await published.until(lambda w: w.objects.get(key) not in (None, first))
        assert (
            world.objects[key].metadata.resource_version
            == kube.get(kind, ns, key[2])["metadata"]["resourceVersion"]
        )
        assert world.objects[key] != first
        kube.delete(kind, ns, key[2])
        world = await published.until(lambda w: key not in w.objects)
        assert keys(world) == MESH_KEYS


async def test_bookmark_advances_resource_version_and_reconnect_resumes_from_it(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published) as source:
        await kube.until(lambda: kube.watch_count() == 6, "six watches")  # bookmarks go to open watches only
        for i in range(3):  # changes to other kinds move the global resourceVersion past the routes'
            kube.apply(service("shop", f"s{i}"))
        await published.until(lambda w: ("Service", "shop", "s2") in w.objects)
        assert source.resource_versions["HTTPRoute"] != str(kube.resource_version)
        kube.bookmark()
        await until(
            lambda: source.resource_versions["HTTPRoute"] == str(kube.resource_version),
            "the bookmark to apply",
        )
        bookmarked = str(kube.resource_version)
        lists = len(kube.list_requests("httproutes"))
        watches = len(kube.watch_requests("httproutes"))
        kube.drop_watches()
        await kube.until(lambda: len(kube.watch_requests("httproutes")) > watches, "the watch to resume")
        resumed = kube.watch_requests("httproutes")[-1]
        assert resumed.query["resourceVersion"] == bookmarked
        assert resumed.query["allowWatchBookmarks"] in ("true", "True")
        assert len(kube.list_requests("httproutes")) == lists  # no relist


async def test_dropped_watch_resumes_without_losing_events(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published):
        await kube.until(lambda: kube.watch_count() == 6, "six watches")
        lists = len(kube.requests)
        kube.drop_watches()
        # While every watch is down: one event of each type.
        kube.apply(service("shop", "late"))
        kube.delete("EndpointSlice", "shop", "cart-v2-abc")
        kube.apply(http_route("shop", "cart-split", "cart", "cart-v2", "/moved"))
        world = await published.until(
            lambda w: (
                ("Service", "shop", "late") in w.objects
                and ("EndpointSlice", "shop", "cart-v2-abc") not in w.objects
                and _path(w, "cart-split") == "/moved"
            )
        )
        assert keys(world) == MESH_KEYS - {("EndpointSlice", "shop", "cart-v2-abc")} | {
            ("Service", "shop", "late")
        }
        relisted = [r for r in kube.requests[lists:] if r.method == "GET" and "watch" not in r.query]
        assert relisted == []


@pytest.mark.parametrize("gone_as", ["event", "http"])
async def test_gone_relists_and_the_world_is_right(
    gone_as: str, kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    kube.gone_as = gone_as  # type: ignore[assignment]
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published):
        await kube.until(lambda: kube.watch_count() == 6, "six watches")
        lists = len(kube.list_requests("services"))
        kube.drop_watches()
        kube.apply(service("shop", "late"))
        kube.delete("Service", "shop", "cart-v2")
        kube.compact()  # the events above are gone from history: resuming must fail with 410
        world = await published.until(
            lambda w: (
                ("Service", "shop", "late") in w.objects and ("Service", "shop", "cart-v2") not in w.objects
            )
        )
        assert keys(world) == MESH_KEYS - {("Service", "shop", "cart-v2")} | {("Service", "shop", "late")}
        assert len(kube.list_requests("services")) == lists + 1
        # ... and then watches again from the new list's resourceVersion.
        await kube.until(
            lambda: int(kube.watch_requests("services")[-1].query["resourceVersion"]) >= kube.compacted,
            "a watch from the new list",
        )


async def test_api_server_down_for_five_seconds_then_caught_up(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published):
        await kube.go_down()
        kube.apply(service("shop", "while-down"))
        kube.delete("HTTPRoute", "shop", "cart-split")
        # The outage under test, not a wait for anything: long enough for every reflector's retry delay to
        # reach its cap (0.5 s here) many times over.
        await asyncio.sleep(5)
        assert ("Service", "shop", "while-down") not in published.world.objects
        await kube.come_up()
        # The bound is the behaviour's: at the cap a reflector retries within 0.5 s, then resumes its watch
        # and replays what it missed; 3 s is that with headroom.
        world = await published.until(
            lambda w: (
                ("Service", "shop", "while-down") in w.objects
                and ("HTTPRoute", "shop", "cart-split") not in w.objects
            ),
            timeout=3,
        )
        kube.apply(service("shop", "after"))  # and the watches are live again
        await published.until(lambda w: ("Service", "shop", "after") in w.objects)
        assert ("GRPCRoute", "shop", "cart-grpc") in world.objects


async def test_missing_gateway_api_is_reported_once_and_core_kinds_work(
    kube: FakeKube, api: client.ApiClient, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    kube.uninstall_gateway_api()
    for obj in mesh():
        if not obj["apiVersion"].startswith("gateway"):
            kube.apply(obj)
    caplog.set_level(logging.INFO, "gammaxds.sources.kubernetes")
    async with running(fast(api), published) as source:
        assert source.missing == {"HTTPRoute", "GRPCRoute", "ReferenceGrant"}
        kube.apply(service("shop", "new"))
        kube.apply(endpoint_slice("shop", "new-1", "new", "10.0.0.7"))
        await published.until(lambda w: ("EndpointSlice", "shop", "new-1") in w.objects)
        # Five rediscovery rounds (every 0.2 s here) of each missing kind, each asking for both its versions.
        await kube.until(
            lambda: all(
                len(kube.list_requests(p)) >= 10 for p in ("httproutes", "grpcroutes", "referencegrants")
            ),
            "five rediscovery rounds",
        )
        reports = [r for r in caplog.records if "not served" in r.getMessage()]
        assert sorted(r.getMessage().split()[0] for r in reports) == [
            "GRPCRoute",
            "HTTPRoute",
            "ReferenceGrant",
        ]
        assert len(kube.list_requests("httproutes")) > 3  # it did look again
        # Installing the CRDs later is noticed without a restart.
        kube.serve("httproutes", ("v1", "v1beta1"))
        kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
        await published.until(lambda w: ("HTTPRoute", "shop", "cart-split") in w.objects)
        assert "HTTPRoute" not in source.missing


async def test_httproute_falls_back_to_v1beta1(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    kube.serve("httproutes", ("v1beta1",))
    kube.serve("referencegrants", ("v1beta1",))
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published) as source:
        assert source.versions["HTTPRoute"] == "v1beta1" and source.versions["ReferenceGrant"] == "v1beta1"
        route = published.world.http_routes[("shop", "cart-split")]
        assert route.api_version == "gateway.networking.k8s.io/v1beta1"
        kube.apply(http_route("shop", "cart-split", "cart", "cart-v2", "/beta"))
        await published.until(lambda w: _path(w, "cart-split") == "/beta")


async def test_lists_are_paginated(kube: FakeKube, api: client.ApiClient, published: Published) -> None:
    for i in range(7):
        kube.apply(service("shop", f"svc-{i}"))
    async with running(fast(api, page_size=3), published):
        assert len(published.world.services) == 7
        pages = kube.list_requests("services")
        assert [r.query.get("limit") for r in pages] == ["3", "3", "3"]
        assert "continue" in pages[1].query


async def test_invalid_object_keeps_its_last_valid_version(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api), published) as source:
        bad = http_route("shop", "cart-split", "cart", "cart-v2", "/bad")
        del bad["spec"]["rules"][0]["backendRefs"][0]["port"]  # a Service backend needs a port
        kube.apply(bad)
        await until(lambda: source.errors != [], "the invalid route to be reported")
        assert source.errors[0].name == "cart-split" and "port" in source.errors[0].reason
        assert source.errors[0].in_force == "previous version"  # what /debug/status says
        assert _path(published.world, "cart-split") == "/"
        kube.apply(service("shop", "unrelated"))  # other changes still flow
        await published.until(lambda w: ("Service", "shop", "unrelated") in w.objects)
        assert _path(published.world, "cart-split") == "/"
        kube.apply(http_route("shop", "cart-split", "cart", "cart-v2", "/fixed"))
        await published.until(lambda w: _path(w, "cart-split") == "/fixed")
        assert source.errors == []


async def test_fields_newer_than_gammaxds_are_ignored_not_refused(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    """The API server has checked objects against the installed schema, so an unknown field there is one gammaxds
    does not model (a newer API version), not a typo: manifests are refused for it, cluster objects are not."""
    for obj in mesh():
        kube.apply(obj)
    newer = http_route("shop", "cart-split", "cart", "cart-v2", "/newer")
    newer["spec"]["rules"][0]["futureField"] = {"enabled": True}
    newer["spec"]["parentRefs"][0]["futureRefField"] = "x"
    kube.apply(newer)
    async with running(fast(api), published) as source:
        await published.until(lambda w: _path(w, "cart-split") == "/newer")
        assert source.errors == []


def _path(world: World, route: str) -> str | None:
    r = world.http_routes.get(("shop", route))
    if r is None:
        return None
    path = r.spec.rules[0].matches[0].path
    return path.value if path else None


async def test_watch_ended_by_the_server_timeout_resumes_without_relist(
    kube: FakeKube, api: client.ApiClient, published: Published
) -> None:
    for obj in mesh():
        kube.apply(obj)
    async with running(fast(api, watch_timeout=1), published):
        lists = len(kube.list_requests("services"))
        # The server ends the first watch after its timeoutSeconds (1 s); the source watches again.
        await kube.until(lambda: len(kube.watch_requests("services")) >= 2, "a second watch")
        kube.apply(service("shop", "later"))
        await published.until(lambda w: ("Service", "shop", "later") in w.objects)
        assert len(kube.list_requests("services")) == lists
