"""Real gRPC calls through real proxy-mode Envoy sidecars configured by the real gammaxds pipeline: GRPCRoute
matches, weights, header modifiers, GRPCRoute over HTTPRoute, HTTP/2 upstreams and the grpc-status of the
sidecar's own answers.

One control plane, five gRPC echo servers (`gammaxds.testing.grpc_echo`, pods g0-g4 on 127.0.20.1-5) and two
sidecars serve the module: one in the Services' namespace `shop` (delta ADS), one in `web` (SotW). A client dials
a sidecar's outbound listener with `:authority` naming the Service (`greeter:9000` from shop, `greeter.shop:9000`
from web). Each test publishes the World it needs, waits until both sidecars ACKed it, then probes with calls
until the change is in force (10 s at most) before asserting.

The Services (listed there), the routes of each scenario and their expected outcomes come from
`gammaxds.testing.grpc_scenarios`, shared with the transparent suite; here Service index N has cluster IP
10.96.1.N.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from gamma_harness import Doc, Pipeline, Sidecar, eventually, start_sidecars, stop_sidecars

from gammaxds.testing import grpc_scenarios as scenario
from gammaxds.testing.envoy_process import ENVOY_BINARY
from gammaxds.testing.gamma import backend, http_route, parent
from gammaxds.testing.grpc_echo import Caller, Tally, start_server
from gammaxds.testing.grpc_scenarios import PODS, PORT, SAY_HELLO, SHOP, WEB, to
from gammaxds.translate.envoy.replies import NO_SERVICE_REASON

pytestmark = pytest.mark.skipif(not ENVOY_BINARY.exists(), reason="no envoy executable beside the Python")

WITHIN = 10.0  # a published change must be in force within this many seconds


# -- gRPC echo backends on distinct loopback addresses -------------------------------------------------------


class Backends:
    """One `grpc_echo` server per pod at 127.0.20.1..N, all on one port: an EndpointSlice lists them by address,
    and each reply names its pod, so a test sees which endpoint served every call."""

    def __init__(self, pods: Sequence[str]) -> None:
        self.addresses = {pod: f"127.0.20.{i}" for i, pod in enumerate(pods, start=1)}
        self.servers: list[Any] = []
        for _attempt in range(20):
            try:
                first, self.port = start_server(pods[0], "echo", self.addresses[pods[0]], 0)
                self.servers = [first]
                for pod in pods[1:]:
                    self.servers.append(start_server(pod, "echo", self.addresses[pod], self.port)[0])
                return
            except OSError:  # taken on one of the addresses: release the others, try another port
                self.shutdown()
        raise RuntimeError("no port free on every 127.0.20.x address")

    def shutdown(self) -> None:
        for server in self.servers:
            server.stop(None)
        self.servers = []


# -- the mesh -------------------------------------------------------------------------------------------------


def base(backends: Backends) -> list[Doc]:
    """The Services of the scenarios (`grpc_scenarios.services`) at 10.96.1.N, served by `backends`; no
    routes."""
    docs, _ips = scenario.services(
        lambda index: f"10.96.1.{index}", backends.addresses.__getitem__, backends.port
    )
    return docs


@dataclass
class Mesh:
    pipeline: Pipeline
    backends: Backends
    shop: Sidecar
    web: Sidecar
    caller: Caller

    def base(self) -> list[Doc]:
        return base(self.backends)

    def apply(self, docs: Sequence[Doc], probe: Callable[[], Any], what: str) -> None:
        """Publish a World of `docs`, wait until both sidecars ACKed it, then until `probe()` is truthy."""
        world = self.pipeline.publish(docs)
        self.pipeline.wait_synced(world, 2)
        eventually(probe, WITHIN, interval=0.02, what=what)

    def call(
        self,
        sidecar: Sidecar,
        svc: str,
        method: str = SAY_HELLO,
        n: int = 1,
        port: int = PORT,
        metadata: Mapping[str, str] | None = None,
        keys: Sequence[str] = (),
        response_keys: Sequence[str] = (),
        authority: str | None = None,
        http1: bool = False,
    ) -> Tally:
        """`n` calls through `sidecar` to Service `svc` of shop, named as its namespace's client names it
        (with `http1`, each call over HTTP/1.1: `grpc_echo.http1_call`)."""
        host = svc if sidecar.namespace == SHOP else f"{svc}.{SHOP}"
        return self.caller.call(
            f"127.0.0.1:{sidecar.port}",
            method,
            n,
            authority or f"{host}:{port}",
            metadata,
            keys,
            response_keys,
            http1=http1,
        )

    def answers(self, svc: str, method: str = SAY_HELLO, n: int = 3, **kw: Any) -> dict[str, set[str]]:
        """{client namespace: the set of outcomes (serving pod, or status code name)} for `n` calls from each."""
        return {s.namespace: self.call(s, svc, method, n, **kw).answers() for s in (self.shop, self.web)}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Mesh]:
    failed_before = request.session.testsfailed
    backends = Backends(PODS)
    pipeline = Pipeline()
    sidecars: list[Sidecar] = []
    caller = Caller()
    try:
        pipeline.publish(base(backends))  # the sidecars' first fetch gets the Services
        specs = [("grpc-shop-delta", SHOP, True), ("grpc-web-sotw", WEB, False)]
        sidecars = start_sidecars(pipeline, specs, tmp_path_factory.mktemp("grpc-proxy"), log_level="warning")
        mesh = Mesh(pipeline, backends, sidecars[0], sidecars[1], caller)
        mesh.apply(mesh.base(), lambda: mesh.answers("greeter") == {SHOP: {"g0"}, WEB: {"g0"}}, "greeter up")
        yield mesh
    finally:
        caller.close()
        stop_sidecars(sidecars, show_logs=request.session.testsfailed > failed_before)
        pipeline.close()
        backends.shutdown()


# -- matches -----------------------------------------------------------------------------------------------------


def test_grpcroute_matches_service_method_and_headers(mesh: Mesh) -> None:
    mesh.apply(
        [*mesh.base(), scenario.matches_route()],
        lambda: mesh.answers("greeter") == {SHOP: {"g1"}, WEB: {"g1"}},
        "GRPCRoute rpc in force",
    )
    for method, metadata, expected in scenario.MATCH_CASES:
        for sidecar in (mesh.shop, mesh.web):
            tally = mesh.call(sidecar, "greeter", method, n=2, metadata=metadata)
            assert tally.answers() == {expected}, (sidecar.namespace, method, metadata, tally)
            if expected.startswith("g"):  # the server saw the path exactly as the client sent it
                assert tally.first["OK"]["method"] == method, tally.first


# -- weights -----------------------------------------------------------------------------------------------------


def test_weighted_split_80_20_and_a_weight_zero_backend(mesh: Mesh) -> None:
    mesh.apply(
        [*mesh.base(), scenario.weighted_route()],
        lambda: all(s <= {"g1", "g2"} for s in mesh.answers("greeter", n=20).values()),
        "the split in force",
    )
    pods: dict[str | None, int] = {}
    for sidecar in (mesh.shop, mesh.web):
        for pod, count in mesh.call(sidecar, "greeter", n=500).pods.items():
            pods[pod] = pods.get(pod, 0) + count
    print(f"\ngRPC weighted split 80/20/0, 1000 calls: {pods}")
    assert set(pods) == {"g1", "g2"}, pods  # weight 0 (g3): no call at all; every call served
    assert 750 <= pods["g1"] <= 850, pods  # 80% ± 5 percentage points


# -- header modifiers --------------------------------------------------------------------------------------------


def test_header_modifiers_at_rule_and_backend_level(mesh: Mesh) -> None:
    mesh.apply(
        [*mesh.base(), scenario.header_modifier_route()],
        lambda: all(s == {"g1", "g2"} for s in mesh.answers("greeter", n=20).values()),
        "header route in force",
    )
    for sidecar in (mesh.shop, mesh.web):
        tally = mesh.call(
            sidecar,
            "greeter",
            n=40,
            metadata=scenario.HEADERS_SENT,
            keys=scenario.HEADER_KEYS,
            response_keys=scenario.RESPONSE_HEADER_KEYS,
        )
        assert set(tally.counts) == scenario.HEADER_OUTCOMES, (sidecar.namespace, tally)


# -- GRPCRoute over HTTPRoute ------------------------------------------------------------------------------------


def conditions(mesh: Mesh, kind: str, namespace: str, name: str) -> dict[str, tuple[str, str]]:
    return scenario.route_conditions(mesh.pipeline.call(mesh.pipeline.plane.status), kind, namespace, name)


def test_grpcroute_wins_over_an_httproute_on_the_same_service_port(mesh: Mesh) -> None:
    http = scenario.http_route_on_greeter()
    # Alone, the HTTPRoute routes gRPC calls (they are HTTP/2 POSTs): the control for what follows.
    mesh.apply(
        [*mesh.base(), http],
        lambda: mesh.answers("greeter") == {SHOP: {"g2"}, WEB: {"g2"}},
        "HTTPRoute alone",
    )
    assert conditions(mesh, "HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("True", "Accepted")
    grpc = scenario.grpc_route_on_greeter()
    mesh.apply(
        [*mesh.base(), http, grpc],
        lambda: mesh.answers("greeter") == {SHOP: {"g1"}, WEB: {"g1"}},
        "GRPCRoute wins",
    )
    assert mesh.answers("greeter", "/any.Service/Any", n=20) == {SHOP: {"g1"}, WEB: {"g1"}}
    assert conditions(mesh, "HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("False", "Conflicted")
    assert conditions(mesh, "GRPCRoute", SHOP, "rpc")["Accepted"] == ("True", "Accepted")
    # A consumer HTTPRoute (namespace web) is in another group: never in conflict with the producer GRPCRoute;
    # web's clients follow their consumer route, shop's the GRPCRoute.
    consumer = http_route(
        "mine", WEB, [parent("greeter", SHOP, port=PORT)], [to(backend("greeter-v3", PORT, namespace=SHOP))]
    )
    mesh.apply(
        [*mesh.base(), http, grpc, consumer],
        lambda: mesh.answers("greeter") == {SHOP: {"g1"}, WEB: {"g3"}},
        "consumer HTTPRoute for web",
    )
    assert conditions(mesh, "HTTPRoute", WEB, "mine")["Accepted"] == ("True", "Accepted")


# -- the upstream's HTTP version ---------------------------------------------------------------------------------


def upstreams(sidecar: Sidecar, port: int) -> dict[str, int]:
    """`grpc_scenarios.upstream_connections` of the sidecar's Envoy now."""
    text = sidecar.envoy.admin("/stats?filter=upstream_cx_http")
    return scenario.upstream_connections(
        dict(line.split(": ", 1) for line in text.splitlines() if ": " in line), port
    )


def test_upstream_speaks_http2_when_app_protocol_says_h2c_or_grpc(mesh: Mesh) -> None:
    """The echo server speaks only HTTP/2 cleartext: a call it answers proves the sidecar spoke HTTP/2 to it.
    A gRPC client speaks HTTP/2 itself, which a port without appProtocol passes on; so the same call is also
    sent over HTTP/1.1: h2c and grpc ports still reach the server (HTTP/2 upstream, from appProtocol), a port
    without appProtocol does not (the client's HTTP/1.1), nor does `appProtocol: http`, whatever the client."""
    mesh.apply(mesh.base(), lambda: mesh.answers("poly", port=8001) == {SHOP: {"g4"}, WEB: {"g4"}}, "poly")
    for port in scenario.HTTP2_PORTS:
        assert mesh.answers("poly", port=port) == {SHOP: {"g4"}, WEB: {"g4"}}, port
    for sidecar in (mesh.shop, mesh.web):
        for port in scenario.HTTP2_PORTS:
            used = upstreams(sidecar, port)
            assert used["http2"] >= 1 and used["http1"] == 0, (sidecar.namespace, port, used)
        tally = mesh.call(sidecar, "poly", port=8004, n=3)
        print(f"\ngRPC through an HTTP/1.1 upstream ({sidecar.namespace}): {tally.codes} {tally.first}")
        assert tally.answers() == {"UNAVAILABLE"}, tally
        # the same calls from an HTTP/1.1 client
        for port, expected in scenario.HTTP1_CLIENT_OUTCOMES:
            tally = mesh.call(sidecar, "poly", port=port, n=2, http1=True)
            assert tally.answers() == expected, (sidecar.namespace, port, tally)
        for port, proto in scenario.HTTP1_CLIENT_UPSTREAMS:
            used = upstreams(sidecar, port)
            other = "http1" if proto == "http2" else "http2"
            assert used[proto] >= 1 and (port == 8006 or used[other] == 0), (sidecar.namespace, port, used)


# -- grpc-status of the sidecar's own answers ----------------------------------------------------------------


def test_grpc_status_of_the_sidecars_own_answers(mesh: Mesh) -> None:
    """What a gRPC client really gets when Envoy answers: no rule → 404 → UNIMPLEMENTED; an invalid backend →
    503 for GRPCRoute (the translator's choice, for the spec's UNAVAILABLE) → UNAVAILABLE; no ready endpoint →
    503 → UNAVAILABLE; only weight-0 backends → UNAVAILABLE; an unsupported filter → 500 → UNKNOWN. Each
    says why in grpc-message and the `x-gammaxds-reason` trailer."""
    mesh.apply(
        [*mesh.base(), scenario.error_route()],
        lambda: mesh.answers("greeter", "/echo.Missing/X") == {SHOP: {"UNAVAILABLE"}, WEB: {"UNAVAILABLE"}},
        "error route in force",
    )
    seen: dict[str, dict[str, Any]] = {}
    for method, outcomes in scenario.ERROR_OUTCOMES.items():
        for sidecar in (mesh.shop, mesh.web):
            tally = mesh.call(sidecar, "greeter", method, n=40 if len(outcomes) > 1 else 3)
            assert tally.answers() == outcomes, (sidecar.namespace, method, tally)
            seen[method] = {code: first.get("details") for code, first in tally.first.items()}
            # Every answer of the sidecar's own says why: grpc-message and the x-gammaxds-reason trailer.
            assert scenario.unexplained(method, tally.first) is None, (sidecar.namespace, tally.first)
    print(f"\ngrpc-status of the sidecar's answers (code: grpc-message): {seen}")
    # Proxy mode only (transparent capture dials an address, never a name): an authority naming no Service.
    for sidecar in (mesh.shop, mesh.web):
        for tally in (
            mesh.call(sidecar, "greeter", authority=f"nosuch.{SHOP}:{PORT}", n=2),
            mesh.call(sidecar, "greeter", port=9999, n=2),  # a port the Service lacks
        ):
            assert tally.answers() == {"UNIMPLEMENTED"}, tally
            assert tally.first["UNIMPLEMENTED"]["details"] == NO_SERVICE_REASON, tally.first
