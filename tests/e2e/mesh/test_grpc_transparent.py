"""Real gRPC calls through transparent capture: a grpcio client in a client pod dials a Service's cluster IP and
port, iptables hands the connection to the pod's Envoy sidecar (fed by `gammaxds serve` in its own pod), which
routes it with GRPCRoutes to gRPC echo servers (`gammaxds.testing.grpc_echo`) in their own pods.

One mesh for the module: the control plane watching a manifests directory, five backend pods g0-g4 (each a gRPC
echo server on port 9000, answering with its pod name), and one client pod in namespace `web` with its sidecar
and a long-lived call session (`grpc_echo session`). The client sends `:authority` as a client resolving the
Service's DNS name would (`greeter.shop:9000`); in transparent mode only the dialled address selects routes.
Each test writes its routes to one manifest file, probes with calls until they are in force (10 s at most), and
removes them afterwards, waiting until the sidecar holds no route but the Services' defaults again.

The Services (listed there), the routes of each scenario and their expected outcomes come from
`gammaxds.testing.grpc_scenarios`, shared with the proxy-mode suite; here Service index N has the mesh's
Service address N (`Mesh.service_ip`), and every Service port targets port 9000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from gammaxds.testing import grpc_scenarios as scenario
from gammaxds.testing.gamma import (
    ControlPlane,
    envoy_stats,
    eventually,
    route_entries,
    start_control_plane,
    start_sidecar,
)
from gammaxds.testing.grpc_echo import PodCaller, Tally, serve_in_pod
from gammaxds.testing.grpc_scenarios import PODS, PORT, SAY_HELLO, SHOP, WEB
from gammaxds.testing.mesh import Mesh, Pod, envoy_binary

pytestmark = [
    pytest.mark.usefixtures("mesh_supported"),
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy executable next to the Python interpreter"),
]

WITHIN = 10.0  # a written change must be in force within this many seconds
ROUTES = "grpc-routes"  # the manifest file (without .yaml) each test writes its routes to
SERVICE_PORTS = (
    10  # route configurations: greeter, greeter-v1..4, empty (9000 each), poly 8001/8003/8004/8006
)


@dataclass
class Env:
    mesh: Mesh
    cp: ControlPlane
    client: Pod  # in namespace web
    caller: PodCaller
    ips: dict[str, str]  # Service name → cluster IP

    def call(
        self,
        svc: str,
        method: str = SAY_HELLO,
        n: int = 1,
        port: int = PORT,
        metadata: Mapping[str, str] | None = None,
        keys: Sequence[str] = (),
        response_keys: Sequence[str] = (),
        authority: str | None = None,
        timeout: float = 5.0,
        http1: bool = False,
    ) -> Tally:
        """`n` calls from the client pod to Service `svc`'s cluster IP and `port` (captured by the sidecar);
        with `http1`, each call over HTTP/1.1 (`grpc_echo.http1_call`)."""
        return self.caller.call(
            f"{self.ips[svc]}:{port}",
            method,
            n,
            authority or f"{svc}.{SHOP}:{port}",
            metadata,
            keys,
            response_keys,
            timeout,
            http1,
        )

    def answers(self, svc: str, method: str = SAY_HELLO, n: int = 3, **kw: Any) -> set[str]:
        """The set of outcomes (serving pod, or status code name) of `n` calls."""
        return self.call(svc, method, n, **kw).answers()

    def write(self, *docs: dict[str, Any], probe: Callable[[], Any], what: str) -> None:
        """Write the routes file; wait until `probe()` is truthy."""
        self.cp.write(ROUTES, docs)
        eventually(probe, WITHIN, what=what)

    def conditions(self, kind: str, namespace: str, name: str) -> dict[str, tuple[str, str]]:
        """The route's conditions (its first parent) from the control plane's `/debug/status`."""
        return scenario.route_conditions(self.cp.status(), kind, namespace, name)


@pytest.fixture(scope="module")
def env(mesh_supported: None) -> Iterator[Env]:
    with Mesh() as mesh:
        try:
            cp = start_control_plane(mesh.add_pod("xds"))
            pods = {name: mesh.add_pod(name) for name in PODS}
            procs = {name: serve_in_pod(pod, "echo", PORT, wait=False) for name, pod in pods.items()}
            for name, pod in pods.items():
                pod.wait_listening(PORT, procs[name], 15)
            docs, ips = scenario.services(mesh.service_ip, lambda pod: pods[pod].ip, PORT)
            cp.write("services", docs)
            client = mesh.add_pod("client")
            start_sidecar(client, WEB, cp.xds_address)
            built = Env(mesh, cp, client, PodCaller(client), ips)
            # the sidecar's first fetch may precede the manifests: wait until every Service answers
            eventually(
                lambda: (
                    all(built.answers(f"greeter-v{n}") == {f"g{n}"} for n in range(1, 5))
                    and built.answers("greeter") == {"g0"}
                ),
                WITHIN,
                what="Services reachable",
            )
            yield built
        finally:
            print(mesh.logs())  # pytest shows it only when a test of the module failed


def at_baseline(env: Env) -> bool:
    """The sidecar holds a route configuration for each Service port, each with only `default`."""
    entries = route_entries(env.client)
    return len(entries) >= SERVICE_PORTS and all(names == ["default"] for names in entries.values())


@pytest.fixture
def routes(env: Env) -> Iterator[Env]:
    """The env, at no routes before the test; the test's routes removed (and the removal in force) after it."""
    eventually(lambda: at_baseline(env), WITHIN, what="sidecar at no routes before the test")
    try:
        yield env
    finally:
        env.cp.remove(ROUTES)
        eventually(lambda: at_baseline(env), WITHIN, what="sidecar back at no routes")


# -- matches -----------------------------------------------------------------------------------------------------


def test_grpcroute_matches_service_method_and_headers(routes: Env) -> None:
    env = routes
    env.write(
        scenario.matches_route(),
        probe=lambda: env.answers("greeter") == {"g1"},
        what="GRPCRoute rpc in force",
    )
    failures = []
    for method, metadata, expected in scenario.MATCH_CASES:
        tally = env.call("greeter", method, n=2, metadata=metadata)
        if tally.answers() != {expected}:
            failures.append(f"{method} {metadata}: expected {expected}, got {tally}")
        elif expected.startswith("g") and tally.first["OK"]["method"] != method:
            failures.append(f"{method}: the server saw {tally.first['OK']['method']}")
    assert not failures, "\n".join(failures)
    # The dialled address selects the routes, whatever the authority says: greeter's routes, though the
    # authority names a Service without routes; and a route-less Service's own endpoint, though it names greeter.
    assert env.answers("greeter", authority=f"greeter-v3.{SHOP}:{PORT}") == {"g1"}
    assert env.answers("greeter-v3", authority=f"greeter.{SHOP}:{PORT}") == {"g3"}


# -- weights -----------------------------------------------------------------------------------------------------


def test_weighted_split_80_20_and_a_weight_zero_backend(routes: Env) -> None:
    env = routes
    route = scenario.weighted_route()
    env.write(route, probe=lambda: env.answers("greeter", n=30) == {"g1", "g2"}, what="the split in force")
    tally = env.call("greeter", n=1000)  # one process in the client pod, one channel
    print(f"\ngRPC weighted split 80/20/0 through capture, 1000 calls: {tally.codes} {tally.pods}")
    assert tally.codes == {"OK": 1000}, tally.codes
    assert set(tally.pods) == {"g1", "g2"}, tally.pods  # weight 0 (g3): no call at all
    assert 750 <= tally.pods["g1"] <= 850, tally.pods  # 80% ± 5 percentage points


# -- header modifiers --------------------------------------------------------------------------------------------


def test_header_modifiers_at_rule_and_backend_level(routes: Env) -> None:
    env = routes
    route = scenario.header_modifier_route()
    env.write(route, probe=lambda: env.answers("greeter", n=20) == {"g1", "g2"}, what="header route")
    tally = env.call(
        "greeter",
        n=40,
        metadata=scenario.HEADERS_SENT,
        keys=scenario.HEADER_KEYS,
        response_keys=scenario.RESPONSE_HEADER_KEYS,
    )
    assert set(tally.counts) == scenario.HEADER_OUTCOMES, tally


# -- GRPCRoute over HTTPRoute ------------------------------------------------------------------------------------


def test_grpcroute_wins_over_an_httproute_on_the_same_service_port(routes: Env) -> None:
    env = routes
    http = scenario.http_route_on_greeter()
    # Alone, the HTTPRoute routes gRPC calls (they are HTTP/2 POSTs): the control for what follows.
    env.write(http, probe=lambda: env.answers("greeter") == {"g2"}, what="HTTPRoute alone")
    assert env.conditions("HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("True", "Accepted")
    env.write(
        http,
        scenario.grpc_route_on_greeter(),
        probe=lambda: env.answers("greeter") == {"g1"},
        what="GRPCRoute wins",
    )
    assert env.answers("greeter", "/any.Service/Any", n=20) == {"g1"}
    eventually(
        lambda: env.conditions("HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("False", "Conflicted"),
        WITHIN,
        what="HTTPRoute Conflicted",
    )
    assert env.conditions("GRPCRoute", SHOP, "rpc")["Accepted"] == ("True", "Accepted")


# -- the upstream's HTTP version ---------------------------------------------------------------------------------


def upstreams(env: Env, port: int) -> dict[str, int]:
    """`grpc_scenarios.upstream_connections` of the client pod's sidecar now."""
    return scenario.upstream_connections(envoy_stats(env.client, "upstream_cx_http"), port)


def test_upstream_speaks_http2_when_app_protocol_says_h2c_or_grpc(routes: Env) -> None:
    """The echo server speaks only HTTP/2 cleartext: a call it answers proves the sidecar spoke HTTP/2 to it.
    A gRPC client speaks HTTP/2 itself, which a port without appProtocol passes on; so the same call is also
    sent over HTTP/1.1: h2c and grpc ports still reach the server (HTTP/2 upstream, from appProtocol), a port
    without appProtocol does not (the client's HTTP/1.1), nor does `appProtocol: http`, whatever the client."""
    env = routes
    for port in scenario.HTTP2_PORTS:
        assert env.answers("poly", port=port) == {"g4"}, port
        used = upstreams(env, port)
        assert used["http2"] >= 1 and used["http1"] == 0, (port, used)
    tally = env.call("poly", port=8004, n=3)
    print(f"\ngRPC through an HTTP/1.1 upstream: {tally.codes} {tally.first}")
    assert tally.answers() == {"UNAVAILABLE"}, tally
    # the same calls from an HTTP/1.1 client
    for port, expected in scenario.HTTP1_CLIENT_OUTCOMES:
        tally = env.call("poly", port=port, n=2, http1=True)
        assert tally.answers() == expected, (port, tally)
    for port, proto in scenario.HTTP1_CLIENT_UPSTREAMS:
        used = upstreams(env, port)
        other = "http1" if proto == "http2" else "http2"
        assert used[proto] >= 1 and (port == 8006 or used[other] == 0), (port, used)


# -- grpc-status of the sidecar's own answers ----------------------------------------------------------------


def test_grpc_status_of_the_sidecars_own_answers(routes: Env) -> None:
    """What a gRPC client really gets when Envoy answers: no rule → 404 → UNIMPLEMENTED; an invalid backend →
    503 for GRPCRoute (the translator's choice, for the spec's UNAVAILABLE) → UNAVAILABLE; no ready endpoint →
    503 → UNAVAILABLE; only weight-0 backends → UNAVAILABLE; an unsupported filter → 500 → UNKNOWN."""
    env = routes
    env.write(
        scenario.error_route(),
        probe=lambda: env.answers("greeter", "/echo.Missing/X") == {"UNAVAILABLE"},
        what="error route in force",
    )
    seen: dict[str, dict[str, Any]] = {}
    for method, outcomes in scenario.ERROR_OUTCOMES.items():
        tally = env.call("greeter", method, n=40 if len(outcomes) > 1 else 3)
        assert tally.answers() == outcomes, (method, tally)
        seen[method] = {code: first.get("details") for code, first in tally.first.items()}
    print(f"\ngrpc-status of the sidecar's answers (code: grpc-message): {seen}")
    for method, (code, details) in scenario.ERROR_DETAILS.items():  # each answer of the sidecar's says why
        assert seen[method].get(code) == details, (method, seen)
    # Without any route, a Service with no endpoints: the same 503.
    assert env.answers("empty") == {"UNAVAILABLE"}
    # Transparent only (proxy mode names Services, it never dials their addresses): a cluster IP on a port its
    # Service lacks is closed by the sidecar at once; no sidecar answer, the connection fails.
    tally = env.call("greeter", port=9999, n=2, timeout=3.0)
    assert tally.answers() == {"UNAVAILABLE"}, tally
    print(f"a port greeter lacks: {tally.first}")
