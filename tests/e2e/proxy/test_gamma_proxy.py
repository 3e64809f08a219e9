"""GAMMA through real Envoy sidecars in proxy mode, configured by the real pipeline: model objects → World →
ControlPlane (translator, debounced SnapshotCache) → ADS server → Envoy, SotW and delta.

One control plane, eight echo backends (127.0.20.1-8, pod names b1-b8) and four sidecars (namespaces `shop`
and `web`, each once with SotW and once with delta ADS) serve the whole module; each test publishes the World
it needs and waits until every sidecar has ACKed it before it sends requests. Run with `-s` to see figures.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from gamma_harness import (
    Backends,
    Doc,
    Pipeline,
    Reply,
    Sidecar,
    eventually,
    start_sidecars,
    stop_sidecars,
    write_manifests,
)

from gammaxds.model import World, parse_text
from gammaxds.testing.gamma import backend, endpoint_slice, http_route, parent, service, service_port

SHOP, WEB = "shop", "web"
MODES = {"sotw": False, "delta": True}
FLEET = 4  # sidecars of the module: (shop, web) x (sotw, delta)

# -- manifests --------------------------------------------------------------------------------------------


@dataclass
class Mesh:
    pipeline: Pipeline
    backends: Backends
    sidecars: dict[tuple[str, str], Sidecar]  # (mode, namespace) → sidecar

    def svc(self, name: str, ip: int, pods: Sequence[str], namespace: str = SHOP) -> list[Doc]:
        """A Service `name` (cluster IP 10.96.0.<ip>, port 80 `http`) and its EndpointSlice listing `pods`."""
        port = self.backends.port
        return [
            service(name, namespace, f"10.96.0.{ip}", [service_port("http", 80, port)]),
            endpoint_slice(
                f"{name}-1", namespace, name, [self.backends.address(p) for p in pods], {"http": port}
            ),
        ]

    def base(self) -> list[Doc]:
        """shop/api (pod b1) with a producer route: `/v2` → api-v2 (b3), everything else → api-v1 (b2);
        shop/plain (b4) without routes."""
        return [
            *self.svc("api", 10, ["b1"]),
            *self.svc("api-v1", 11, ["b2"]),
            *self.svc("api-v2", 12, ["b3"]),
            *self.svc("plain", 13, ["b4"]),
            http_route(
                "api",
                SHOP,
                [parent("api")],
                [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                        "backendRefs": [backend("api-v2")],
                    },
                    {"backendRefs": [backend("api-v1")]},
                ],
            ),
        ]

    def apply(self, docs: Sequence[Doc]) -> float:
        """Publish a World made of `docs`; wait until every sidecar ACKed it; seconds publish → all ACKed."""
        world = self.pipeline.publish(docs)
        return self.pipeline.wait_synced(world, FLEET)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Mesh]:
    failed_before = request.session.testsfailed
    backends = Backends(8)
    pipeline = Pipeline()
    sidecars: list[Sidecar] = []
    try:
        mesh = Mesh(pipeline, backends, {})
        pipeline.publish(mesh.base())
        workdir = tmp_path_factory.mktemp("gamma-proxy")
        specs = [(f"{ns}-{mode}", ns, delta) for mode, delta in MODES.items() for ns in (SHOP, WEB)]
        sidecars = start_sidecars(pipeline, specs, workdir)
        mesh.sidecars = {(s.name.split("-")[1], s.namespace): s for s in sidecars}
        mesh.apply(mesh.base())
        yield mesh
    finally:
        stop_sidecars(sidecars, show_logs=request.session.testsfailed > failed_before)
        pipeline.close()
        backends.shutdown()


@dataclass
class Pair:
    """The two sidecars of one ADS mode: a client in the Services' namespace and one in another."""

    mode: str
    shop: Sidecar
    web: Sidecar


@pytest.fixture(params=list(MODES))
def pair(mesh: Mesh, request: pytest.FixtureRequest) -> Pair:
    mode = request.param
    return Pair(mode, mesh.sidecars[(mode, SHOP)], mesh.sidecars[(mode, WEB)])


def answers(sidecar: Sidecar, host: str, path: str = "/", count: int = 12) -> set[Any]:
    """The set of answers (pod name, or the status when Envoy answered itself) for `count` requests."""
    out: set[Any] = set()
    for _ in range(count):
        reply = sidecar.get(host, path)
        out.add(reply.pod or reply.status)
    return out


def tally(sidecar: Sidecar, host: str, path: str = "/", count: int = 1000) -> dict[Any, int]:
    """How many of `count` requests each answer got (pod name, or the status when Envoy answered)."""
    out: dict[Any, int] = {}
    for _ in range(count):
        reply = sidecar.get(host, path)
        key = reply.pod or reply.status
        out[key] = out.get(key, 0) + 1
    return out


# -- routing ----------------------------------------------------------------------------------------------


def test_service_without_route_passes_through_to_its_endpoints(mesh: Mesh, pair: Pair) -> None:
    mesh.apply(mesh.base())
    same_namespace = [
        "plain",
        "plain:80",
        "plain.shop",
        "plain.shop.svc",
        "plain.shop.svc.cluster.local:80",
        "10.96.0.13",
        "10.96.0.13:80",
    ]
    for host in same_namespace:
        assert answers(pair.shop, host) == {"b4"}, host
    for host in same_namespace[2:]:
        assert answers(pair.web, host) == {"b4"}, host
    # The short name is only the client's own namespace's: from `web`, `plain` names no Service.
    assert pair.web.get("plain").status == 404
    reply = pair.shop.get("plain.shop", "/some/path?q=1")
    assert reply.body["path"] == "/some/path?q=1" and reply.body["host"] == "plain.shop"


def test_producer_route_splits_by_path_for_every_namespace(mesh: Mesh, pair: Pair) -> None:
    mesh.apply(mesh.base())
    for sidecar, host in (
        (pair.shop, "api"),
        (pair.shop, "api.shop.svc.cluster.local"),
        (pair.web, "api.shop"),
    ):
        assert answers(sidecar, host, "/") == {"b2"}, host
        assert answers(sidecar, host, "/v2") == {"b3"}, host
        assert answers(sidecar, host, "/v2/items") == {"b3"}, host
        assert answers(sidecar, host, "/v2x") == {"b2"}, host  # PathPrefix is element-wise
    # The route's own Service endpoint (b1) is never reached through the route.
    assert answers(pair.shop, "api-v1") == {"b2"}


def test_consumer_route_applies_only_to_its_namespace(mesh: Mesh, pair: Pair) -> None:
    consumer = http_route(
        "api-for-web", WEB, [parent("api", SHOP)], [{"backendRefs": [backend("plain", namespace=SHOP)]}]
    )
    mesh.apply([*mesh.base(), consumer])
    # web: only its consumer route (never merged with the producer's rules), even for /v2.
    assert answers(pair.web, "api.shop", "/") == {"b4"}
    assert answers(pair.web, "api.shop", "/v2") == {"b4"}
    # shop: still the producer route.
    assert answers(pair.shop, "api", "/") == {"b2"}
    assert answers(pair.shop, "api", "/v2") == {"b3"}
    # Removing the consumer route gives web the producer route back.
    mesh.apply(mesh.base())
    assert answers(pair.web, "api.shop", "/") == {"b2"}
    assert answers(pair.web, "api.shop", "/v2") == {"b3"}


def test_route_bound_to_one_service_port(mesh: Mesh, pair: Pair) -> None:
    """`NAME.NS:PORT` selects the Service port; a route with `parentRef.port` applies to that port only."""
    port = mesh.backends.port
    multi = [
        service(
            "multi", SHOP, "10.96.0.23", [service_port("http", 80, port), service_port("alt", 8080, port)]
        ),
        endpoint_slice("multi-1", SHOP, "multi", [mesh.backends.address("b6")], {"http": port, "alt": port}),
        http_route("multi-alt", SHOP, [parent("multi", port=8080)], [{"backendRefs": [backend("api-v1")]}]),
    ]
    mesh.apply([*mesh.base(), *multi])
    for sidecar, host in ((pair.shop, "multi"), (pair.web, "multi.shop"), (pair.web, "10.96.0.23")):
        assert answers(sidecar, f"{host}:8080") == {"b2"}, host  # routed
        assert answers(sidecar, host) == {"b6"}, host  # port 80: no route, its own endpoints
        assert answers(sidecar, f"{host}:80") == {"b6"}, host
        assert answers(sidecar, f"{host}:9090", count=2) == {404}, host  # no such Service port


def test_404_when_routes_exist_but_none_matches_and_for_unknown_hosts(mesh: Mesh, pair: Pair) -> None:
    strict = http_route(
        "strict",
        SHOP,
        [parent("strict")],
        [{"matches": [{"path": {"type": "Exact", "value": "/only"}}], "backendRefs": [backend("strict")]}],
    )
    mesh.apply([*mesh.base(), *mesh.svc("strict", 14, ["b5"]), strict])
    assert answers(pair.shop, "strict", "/only") == {"b5"}
    assert answers(pair.web, "strict.shop", "/only") == {"b5"}
    for path in ("/", "/other", "/only/", "/onlyx"):
        assert answers(pair.shop, "strict", path) == {404}, path
        assert answers(pair.web, "strict.shop", path) == {404}, path
    for host in ("nosuch", "nosuch.shop", "api.shop:8080", "10.96.0.99", "api.web", "example.com"):
        assert answers(pair.shop, host, count=2) == {404}, host
        assert answers(pair.web, host, count=2) == {404}, host


def test_invalid_backend_answers_500_for_its_share(mesh: Mesh, pair: Pair) -> None:
    broken = http_route(
        "broken",
        SHOP,
        [parent("broken")],
        [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/all"}}],
                "backendRefs": [backend("missing")],
            },
            {"backendRefs": [backend("plain", weight=1), backend("missing", weight=1)]},
        ],
    )
    mesh.apply([*mesh.base(), *mesh.svc("broken", 15, ["b5"]), broken])
    assert answers(pair.shop, "broken", "/all") == {500}
    assert answers(pair.web, "broken.shop", "/all/x") == {500}
    # Half the weight is invalid: its share gets 500, the valid half reaches plain (b4): 50/50 within ±5
    # points over 1,000 requests.
    counts = tally(pair.shop, "broken", "/", count=1000)
    assert set(counts) == {"b4", 500} and abs(counts[500] - 500) <= 50, counts
    status = mesh.pipeline.call(mesh.pipeline.plane.status)
    (entry,) = [r for r in status["objects"] if r["name"] == "broken"]
    resolved = {c["type"]: c for c in entry["status"]["parents"][0]["conditions"]}["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound"), resolved


def test_weighted_split_80_20(mesh: Mesh, pair: Pair) -> None:
    split = http_route(
        "split",
        SHOP,
        [parent("split")],
        [{"backendRefs": [backend("api-v1", weight=80), backend("api-v2", weight=20)]}],
    )
    mesh.apply([*mesh.base(), *mesh.svc("split", 16, ["b6"]), split])
    counts = tally(pair.shop, "split", count=500)
    for pod, n in tally(pair.web, "split.shop", count=500).items():
        counts[pod] = counts.get(pod, 0) + n
    print(f"\nweighted split 80/20 ({pair.mode}), 1000 requests: {counts}")
    assert set(counts) == {"b2", "b3"}, counts
    assert 750 <= counts["b2"] <= 850, counts  # 80% ± 5 percentage points


def test_session_persistence_keeps_a_client_on_one_endpoint(mesh: Mesh, pair: Pair) -> None:
    """sessionPersistence: the first answer sets a cookie (or the client echoes a header) naming the endpoint;
    requests carrying it reach that endpoint, requests without it are load-balanced over all endpoints."""
    rules = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/cookie"}}],
            "backendRefs": [backend("sticky")],
            "sessionPersistence": {"sessionName": "sticky"},
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/header"}}],
            "backendRefs": [backend("sticky")],
            "sessionPersistence": {"type": "Header", "sessionName": "x-sticky"},
        },
    ]
    route = http_route("sticky", SHOP, [parent("sticky")], rules)
    mesh.apply([*mesh.base(), *mesh.svc("sticky", 17, ["b5", "b6", "b7"]), route])
    sidecar = pair.shop
    assert answers(sidecar, "sticky", "/cookie", count=30) == {"b5", "b6", "b7"}  # no session: balanced
    first = sidecar.get("sticky", "/cookie")
    cookie = first.headers.get("set-cookie", "").split(";")[0]
    assert cookie.startswith("sticky="), first.headers
    pods = {sidecar.get("sticky", "/cookie", {"cookie": cookie}).pod for _ in range(20)}
    assert pods == {first.pod}, pods
    first = sidecar.get("sticky", "/header")
    token = first.headers.get("x-sticky")
    assert token, first.headers
    pods = {sidecar.get("sticky", "/header", {"x-sticky": token}).pod for _ in range(20)}
    assert pods == {first.pod}, pods


def test_header_modifiers_at_backend_and_client(mesh: Mesh, pair: Pair) -> None:
    def request_mod(**ops: Any) -> dict[str, Any]:
        return {"type": "RequestHeaderModifier", "requestHeaderModifier": ops}

    def response_mod(**ops: Any) -> dict[str, Any]:
        return {"type": "ResponseHeaderModifier", "responseHeaderModifier": ops}

    rule = {
        "filters": [
            request_mod(
                set=[{"name": "x-set", "value": "rule"}],
                add=[{"name": "x-added", "value": "rule"}],
                remove=["x-drop"],
            ),
            response_mod(
                set=[{"name": "x-resp-set", "value": "rule"}],
                add=[{"name": "x-resp-added", "value": "rule"}],
                remove=["x-served-by"],
            ),
        ],
        "backendRefs": [
            backend("api-v1", filters=[request_mod(set=[{"name": "x-backend", "value": "v1"}])]),
            backend(
                "api-v2",
                filters=[
                    request_mod(set=[{"name": "x-backend", "value": "v2"}]),
                    response_mod(set=[{"name": "x-backend-resp", "value": "v2"}]),
                ],
            ),
        ],
    }
    mesh.apply([*mesh.base(), *mesh.svc("hdr", 17, ["b7"]), http_route("hdr", SHOP, [parent("hdr")], [rule])])
    seen_pods: set[str] = set()
    for sidecar, host in ((pair.shop, "hdr"), (pair.web, "hdr.shop")):
        for _ in range(30):
            reply: Reply = sidecar.get(host, headers={"x-set": "client", "x-drop": "1", "x-keep": "1"})
            assert reply.status == 200, reply
            pod = reply.pod
            assert pod in ("b2", "b3"), reply
            seen_pods.add(pod)
            seen = reply.seen
            # request, rule level
            assert seen.get("x-set") == "rule" and seen.get("x-added") == "rule", seen
            assert "x-drop" not in seen and seen.get("x-keep") == "1", seen
            # request, backendRef level: each backend gets its own
            assert seen.get("x-backend") == {"b2": "v1", "b3": "v2"}[pod], (pod, seen)
            # response, at the client
            headers = reply.headers
            assert headers.get("x-resp-set") == "rule" and headers.get("x-resp-added") == "rule", headers
            assert "x-served-by" not in headers, headers
            assert headers.get("x-backend-resp") == ("v2" if pod == "b3" else None), (pod, headers)
    assert seen_pods == {"b2", "b3"}


def test_sidecar_as_http_proxy_with_absolute_form_uris(mesh: Mesh, pair: Pair) -> None:
    """SPEC: applications may use the sidecar as `HTTP_PROXY` (absolute-form request targets)."""
    mesh.apply(mesh.base())
    for sidecar, url, pod in (
        (pair.shop, "http://api/v2/x?q=1", "b3"),
        (pair.shop, "http://api.shop.svc.cluster.local:80/", "b2"),
        (pair.web, "http://api.shop/v2", "b3"),
        (pair.web, "http://10.96.0.13/", "b4"),
    ):
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{sidecar.port}"})
        )
        with opener.open(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["pod"] == pod, (url, body)
        assert body["path"] == "/" + url.split("/", 3)[3], body  # origin-form at the backend
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open("http://nosuch.shop/", timeout=5)
    assert err.value.code == 404


def test_regex_too_complex_for_envoy_is_refused_and_the_rest_of_the_mesh_updates(mesh: Mesh) -> None:
    """A regex RE2 compiles but Envoy refuses (program size over 100) would NACK the sidecar's whole route
    table; the model refuses that one route, naming the field, and everything else still updates."""
    sidecar = mesh.sidecars[("delta", SHOP)]
    mesh.apply(mesh.base())
    regex = "/items/[a-z0-9]{1,40}"  # valid RE2, program size 130
    rx = http_route(
        "rx",
        SHOP,
        [parent("rx")],
        [
            {
                "matches": [{"path": {"type": "RegularExpression", "value": regex}}],
                "backendRefs": [backend("rx")],
            }
        ],
    )
    moved = http_route("api", SHOP, [parent("api")], [{"backendRefs": [backend("api-v2")]}])  # api: b2 → b3
    docs = [d for d in mesh.base() if not (d["kind"] == "HTTPRoute" and d["metadata"]["name"] == "api")]
    loaded = parse_text(yaml.safe_dump_all([*docs, moved, *mesh.svc("rx", 21, ["b5"]), rx], sort_keys=False))
    assert [(e.kind, e.name, e.field) for e in loaded.errors] == [
        ("HTTPRoute", "rx", "spec.rules[0].matches[0].path")
    ]
    assert "too complex for Envoy" in loaded.errors[0].reason
    try:
        world = World.of(loaded.objects)
        mesh.pipeline.call(lambda: mesh.pipeline.plane.publish(world))
        eventually(lambda: answers(sidecar, "api", "/") == {"b3"}, 2, what="api moved to api-v2 (b3)")
        assert answers(sidecar, "rx", "/items/abc") == {"b5"}  # no route: the Service's own endpoints
    finally:
        mesh.apply(mesh.base())


def test_endpoint_conditions_ready_and_terminating(mesh: Mesh, pair: Pair) -> None:
    """docs/gamma.md: ready serves; serving+terminating only when nothing is ready; not ready and not serving never."""
    port = mesh.backends.port

    def slice_docs(endpoints: list[dict[str, Any]]) -> list[Doc]:
        return [
            service("cond", SHOP, "10.96.0.22", [service_port("http", 80, port)]),
            endpoint_slice("cond-1", SHOP, "cond", endpoints, {"http": port}),
        ]

    def ep(pod: str, **conditions: bool) -> dict[str, Any]:
        return {"addresses": [mesh.backends.address(pod)], "conditions": conditions}

    draining = ep("b6", ready=False, serving=True, terminating=True)
    dead = ep("b7", ready=False, serving=False)
    mesh.apply([*mesh.base(), *slice_docs([ep("b5"), draining, dead])])
    assert answers(pair.shop, "cond", count=20) == {"b5"}
    mesh.apply([*mesh.base(), *slice_docs([draining, dead])])
    assert answers(pair.shop, "cond", count=20) == {"b6"}
    mesh.apply([*mesh.base(), *slice_docs([dead])])
    assert answers(pair.shop, "cond", count=5) == {503}


# -- endpoints, removals ----------------------------------------------------------------------------------


def test_endpoints_follow_scaling(mesh: Mesh, pair: Pair) -> None:
    """How fast is `make bench`'s figure; here, every step is routed by, exactly, in both namespaces."""
    figures = []
    for pods in (["b5"], ["b5", "b6", "b7"], [], ["b7", "b8"]):
        expected: set[Any] = set(pods) or {503}
        world = mesh.pipeline.publish([*mesh.base(), *mesh.svc("scale", 18, pods)])
        eventually(
            lambda e=expected: answers(pair.shop, "scale", count=12) == e,
            5,
            interval=0.005,
            what=f"exactly {sorted(map(str, expected))}",
        )
        took = time.monotonic() - mesh.pipeline.published_at[id(world)]
        acked = mesh.pipeline.wait_synced(world, FLEET)
        figures.append((len(pods), round(took, 3), round(acked, 3)))
        # Settled: every request lands on exactly the expected set, for both namespaces.
        assert answers(pair.shop, "scale", count=30) == expected
        assert answers(pair.web, "scale.shop", count=30) == expected
    print(f"\nscaling ({pair.mode}): (endpoints, s publish→traffic, s publish→all ACKed): {figures}")


def test_removed_service_disappears_from_envoy(mesh: Mesh, pair: Pair) -> None:
    cluster = "outbound|80||gone.shop.svc.cluster.local"
    mesh.apply([*mesh.base(), *mesh.svc("gone", 19, ["b6"])])
    assert cluster in pair.shop.clusters() and cluster in pair.web.clusters()
    assert answers(pair.shop, "gone") == {"b6"}
    mesh.apply(mesh.base())
    for sidecar in (pair.shop, pair.web):
        eventually(lambda s=sidecar: cluster not in s.clusters(), 2, interval=0.02, what=f"{cluster} gone")
        assert "outbound|80||api.shop.svc.cluster.local" in sidecar.clusters()
    assert answers(pair.shop, "gone") == {404}
    assert answers(pair.web, "gone.shop") == {404}


# -- the files source ---------------------------------------------------------------------------------------


def test_live_edit_of_a_manifest_file_moves_traffic_within_a_second(
    mesh: Mesh, pair: Pair, tmp_path: Path
) -> None:
    def route(target: str) -> list[Doc]:
        return [http_route("live", SHOP, [parent("live")], [{"backendRefs": [backend(target)]}])]

    base, routes = tmp_path / "base.yaml", tmp_path / "routes" / "live.yaml"
    routes.parent.mkdir()
    write_manifests(base, [*mesh.base(), *mesh.svc("live", 20, ["b8"])])
    write_manifests(routes, route("api-v1"))
    mesh.pipeline.start_manifests([tmp_path])
    try:
        eventually(lambda: answers(pair.shop, "live") == {"b2"}, 5, what="live → api-v1 (b2)")
        eventually(lambda: answers(pair.web, "live.shop") == {"b2"}, 5, what="live → api-v1 (b2) from web")
        latencies = []
        for target, pod in (("api-v2", "b3"), ("plain", "b4"), ("api-v1", "b2")):
            started = time.monotonic()
            write_manifests(routes, route(target))
            eventually(lambda p=pod: pair.shop.get("live").pod == p, 5, interval=0.005, what=f"live → {pod}")
            latencies.append(round(time.monotonic() - started, 3))
            eventually(lambda p=pod: answers(pair.web, "live.shop") == {p}, 2, what=f"web: live → {pod}")
        print(f"\nlive edit ({pair.mode}): file rewritten → traffic moved, seconds: {latencies}")
        assert max(latencies) < 1.0, latencies
        # A broken edit is reported and skipped: the route's last good version stays in force.
        write_manifests(routes, [{**route("plain")[0], "spec": {"parentRefs": "not a list"}}])
        time.sleep(1.0)  # > two polls (0.25 s each) + debounce: the source has read it by now
        assert answers(pair.shop, "live") == {"b2"}
        assert any("live" in str(e) for e in mesh.pipeline.plane.source.errors)
        # Deleting the route file: the Service falls back to its own endpoints (b8).
        started = time.monotonic()
        routes.unlink()
        eventually(lambda: pair.shop.get("live").pod == "b8", 5, interval=0.005, what="live → b8")
        print(f"live edit ({pair.mode}): route file deleted → passthrough, {time.monotonic() - started:.3f}s")
    finally:
        mesh.pipeline.stop_manifests()


# -- publish → ACK, 1 and 10 sidecars -----------------------------------------------------------------------


def test_publish_to_all_acked_for_1_and_10_sidecars(tmp_path: Path) -> None:
    """A fresh control plane: the time from `publish` to every connected sidecar having ACKed all four
    types of its new view (including the cache's 0.1 s debounce), measured on the control plane's loop."""
    backends_port = 9  # endpoints are never dialled here: only config is measured

    def world(step: int) -> list[Doc]:
        pods = [f"127.0.21.{i}" for i in range(1, 2 + step % 3)]  # EDS changes
        prefix = f"/v{step}"  # RDS changes
        return [
            service("api", SHOP, "10.96.0.10", [service_port("http", 80, backends_port)]),
            endpoint_slice("api-1", SHOP, "api", pods, {"http": backends_port}),
            service("api-v2", SHOP, "10.96.0.11", [service_port("http", 80, backends_port)]),
            endpoint_slice("api-v2-1", SHOP, "api-v2", pods[:1], {"http": backends_port}),
            http_route(
                "api",
                SHOP,
                [parent("api")],
                [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                        "backendRefs": [backend("api-v2")],
                    },
                    {"backendRefs": [backend("api")]},
                ],
            ),
        ]

    pipeline = Pipeline()
    sidecars: list[Sidecar] = []
    results: dict[int, list[float]] = {}
    step = 0

    def measure(count: int, rounds: int = 6) -> None:
        nonlocal step
        times = []
        for _ in range(rounds):
            step += 1
            published = pipeline.publish(world(step))
            times.append(pipeline.wait_synced(published, count, timeout=10))
            time.sleep(0.05)
        results[count] = times

    try:
        pipeline.publish(world(0))
        sidecars += start_sidecars(pipeline, [("solo", SHOP, True)], tmp_path, log_level="warning")
        pipeline.wait_streams(1)
        measure(1)
        more = [(f"fleet-{i}", (SHOP, WEB)[i % 2], bool(i % 2)) for i in range(2, 11)]
        sidecars += start_sidecars(pipeline, more, tmp_path, log_level="warning")
        pipeline.wait_streams(10)
        measure(10)
        proxies = pipeline.proxies()
        assert len(proxies) == 10 and {p["protocol"] for p in proxies} == {"sotw", "delta"}
        assert all(t["synced"] and not t["error"] for p in proxies for t in p["types"].values()), proxies
    finally:
        stop_sidecars(sidecars, show_logs=False)
        pipeline.close()
    for count, times in results.items():
        ms = sorted(round(t * 1000, 1) for t in times)
        print(
            f"\npublish → all {count} sidecars ACKed (ms, debounce 100 ms included): {ms}, "
            f"median {statistics.median(ms):.1f}"
        )
        assert max(times) < 2.0, (count, times)
