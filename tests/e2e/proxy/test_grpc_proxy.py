"""Real gRPC calls through real proxy-mode Envoy sidecars configured by the real gammaxds pipeline: GRPCRoute
matches, weights, header modifiers, GRPCRoute over HTTPRoute, HTTP/2 upstreams and the grpc-status of the
sidecar's own answers.

One control plane, five gRPC echo servers (`gammaxds.testing.grpc_echo`, pods g0-g4 on 127.0.20.1-5) and two
sidecars serve the module: one in the Services' namespace `shop` (delta ADS), one in `web` (SotW). A client dials
a sidecar's outbound listener with `:authority` naming the Service (`greeter:9000` from shop, `greeter.shop:9000`
from web). Each test publishes the World it needs, waits until both sidecars ACKed it, then probes with calls
until the change is in force (10 s at most) before asserting.

Services in `shop` (gRPC port 9000, appProtocol kubernetes.io/h2c, unless said):
    greeter     10.96.1.10  g0   the parent of the routes under test
    greeter-vN  10.96.1.1N  gN   (N = 1..4) the backends
    empty       10.96.1.15  -    no endpoints at all
    poly        10.96.1.16  g4   ports 8001 h2c, 8003 grpc, 8004 http, 8006 (no appProtocol)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from gamma_harness import Doc, Pipeline, Sidecar, eventually, start_sidecars, stop_sidecars

from gammaxds.testing.envoy_process import ENVOY_BINARY
from gammaxds.testing.gamma import (
    backend,
    endpoint_slice,
    grpc_method,
    grpc_route,
    http_route,
    parent,
    service,
    service_port,
)
from gammaxds.testing.grpc_echo import Caller, Tally, start_server

pytestmark = pytest.mark.skipif(not ENVOY_BINARY.exists(), reason="no envoy executable beside the Python")

SHOP, WEB = "shop", "web"
PORT = 9000
PODS = ["g0", "g1", "g2", "g3", "g4"]
H2C = "kubernetes.io/h2c"
WITHIN = 10.0  # a published change must be in force within this many seconds
SAY_HELLO = "/echo.Greeter/SayHello"


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


def grpc_port(name: str, port: int = PORT, app_protocol: str | None = H2C) -> dict[str, Any]:
    """A Service port (its targetPort is set by `Mesh.svc`)."""
    extra = {"appProtocol": app_protocol} if app_protocol else {}
    return service_port(name, port, **extra)


def svc(
    backends: Backends, name: str, ip: int, pods: Sequence[str], ports: Sequence[dict[str, Any]] = ()
) -> list[Doc]:
    """A Service in shop (cluster IP 10.96.1.<ip>; default one gRPC port 9000) and its EndpointSlice."""
    target = backends.port
    ports = [dict(p, targetPort=target) for p in ports or [grpc_port("grpc")]]
    addresses = [backends.addresses[p] for p in pods]
    return [
        service(name, SHOP, f"10.96.1.{ip}", ports),
        endpoint_slice(f"{name}-1", SHOP, name, addresses, {p["name"]: target for p in ports}),
    ]


def base(backends: Backends) -> list[Doc]:
    """The Services of the module (see the module docstring), no routes."""
    poly = [
        grpc_port("h2c", 8001, "h2c"),
        grpc_port("grpc", 8003, "grpc"),
        grpc_port("http", 8004, "http"),
        grpc_port("plain", 8006, None),
    ]
    return [
        *svc(backends, "greeter", 10, ["g0"]),
        *[doc for n in range(1, 5) for doc in svc(backends, f"greeter-v{n}", 10 + n, [f"g{n}"])],
        *svc(backends, "empty", 15, []),
        *svc(backends, "poly", 16, ["g4"], poly),
    ]


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


def on_greeter(*rules: dict[str, Any], name: str = "rpc") -> dict[str, Any]:
    """A producer GRPCRoute on greeter:9000."""
    return grpc_route(name, SHOP, [parent("greeter", port=PORT)], list(rules))


def to(*backends: dict[str, Any], matches: Sequence[dict[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": list(backends), **extra}
    if matches:
        rule["matches"] = list(matches)
    return rule


def v(n: int, **extra: Any) -> dict[str, Any]:
    """A backendRef to greeter-vN:9000 (served by pod gN)."""
    return backend(f"greeter-v{n}", port=PORT, **extra)


def header(name: str, value: str, regex: bool = False) -> dict[str, Any]:
    return {"type": "RegularExpression" if regex else "Exact", "name": name, "value": value}


# -- matches -----------------------------------------------------------------------------------------------------


def test_grpcroute_matches_service_method_and_headers(mesh: Mesh) -> None:
    route = on_greeter(
        to(v(1), matches=[grpc_method("echo.Greeter", "SayHello")]),
        to(v(2), matches=[grpc_method(r"echo\.(Greeter|Farewell)", "Say.*", regex=True)]),
        to(v(3), matches=[grpc_method(method="Ping")]),
        to(
            v(4),
            matches=[
                grpc_method(headers=[header("X-Canary", "true")]),  # names match case-insensitively
                grpc_method(headers=[header("x-tenant", "team-[0-9]+", regex=True)]),
            ],
        ),
    )
    mesh.apply(
        [*mesh.base(), route],
        lambda: mesh.answers("greeter") == {SHOP: {"g1"}, WEB: {"g1"}},
        "GRPCRoute rpc in force",
    )
    cases: list[tuple[str, dict[str, str], str]] = [
        (SAY_HELLO, {}, "g1"),  # Exact service and method; the regex below matches too, and must not win
        ("/echo.Greeter/SayHi", {}, "g2"),  # RegularExpression method
        ("/echo.Farewell/SayBye", {}, "g2"),  # RegularExpression service, the other alternative
        ("/echo.Greeter/SayHellox", {}, "g2"),  # an Exact method is not a prefix: the regex takes it
        ("/echo.Greeter/Ping", {}, "g3"),  # method only, any service
        ("/other.Thing/Ping", {}, "g3"),
        (SAY_HELLO, {"x-canary": "true"}, "g1"),  # a method match outranks a headers-only match
        ("/other.Thing/Get", {"x-canary": "true"}, "g4"),  # Exact header
        ("/other.Thing/Get", {"x-tenant": "team-42"}, "g4"),  # RegularExpression header
        # no rule matches: the sidecar answers 404, which a gRPC client sees as UNIMPLEMENTED
        ("/echo.Greeter/Hello", {}, "UNIMPLEMENTED"),  # neither SayHello, Say.* nor Ping
        ("/echo.Greeterx/SayHello", {}, "UNIMPLEMENTED"),  # the regex covers the whole service element
        ("/other.Thing/Get", {"x-canary": "TRUE"}, "UNIMPLEMENTED"),  # header values are case-sensitive
        ("/other.Thing/Get", {"x-tenant": "team-42x"}, "UNIMPLEMENTED"),  # the header regex is anchored
        ("/other.Thing/Get", {}, "UNIMPLEMENTED"),
    ]
    for method, metadata, expected in cases:
        for sidecar in (mesh.shop, mesh.web):
            tally = mesh.call(sidecar, "greeter", method, n=2, metadata=metadata)
            assert tally.answers() == {expected}, (sidecar.namespace, method, metadata, tally)
            if expected.startswith("g"):  # the server saw the path exactly as the client sent it
                assert tally.first["OK"]["method"] == method, tally.first


# -- weights -----------------------------------------------------------------------------------------------------


def test_weighted_split_80_20_and_a_weight_zero_backend(mesh: Mesh) -> None:
    route = on_greeter(to(v(1, weight=80), v(2, weight=20), v(3, weight=0)))
    mesh.apply(
        [*mesh.base(), route],
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


def request_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": ops}


def response_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": ops}


def test_header_modifiers_at_rule_and_backend_level(mesh: Mesh) -> None:
    rule = to(
        v(1, filters=[request_mod(set=[{"name": "x-backend", "value": "v1"}])]),
        v(
            2,
            filters=[
                request_mod(set=[{"name": "x-backend", "value": "v2"}], remove=["x-keep"]),
                response_mod(set=[{"name": "x-backend-resp", "value": "v2"}]),
            ],
        ),
        filters=[
            request_mod(
                set=[{"name": "x-set", "value": "rule"}],
                add=[{"name": "x-added", "value": "rule"}],
                remove=["x-drop"],
            ),
            response_mod(add=[{"name": "x-resp", "value": "rule"}]),
        ],
    )
    mesh.apply(
        [*mesh.base(), on_greeter(rule)],
        lambda: all(s == {"g1", "g2"} for s in mesh.answers("greeter", n=20).values()),
        "header route in force",
    )
    sent = {"x-set": "client", "x-added": "client", "x-drop": "1", "x-keep": "1"}
    keys = ["x-set", "x-added", "x-drop", "x-keep", "x-backend"]
    for sidecar in (mesh.shop, mesh.web):
        tally = mesh.call(
            sidecar, "greeter", n=40, metadata=sent, keys=keys, response_keys=["x-resp", "x-backend-resp"]
        )
        # (code, pod, x-set, x-added, x-drop, x-keep, x-backend | response: x-resp, x-backend-resp)
        assert set(tally.counts) == {
            ("OK", "g1", "rule", "client, rule", None, "1", "v1", "rule", None),
            ("OK", "g2", "rule", "client, rule", None, None, "v2", "rule", "v2"),
        }, (sidecar.namespace, tally)


# -- GRPCRoute over HTTPRoute ------------------------------------------------------------------------------------


def route_conditions(mesh: Mesh, kind: str, namespace: str, name: str) -> dict[str, tuple[str, str]]:
    status = mesh.pipeline.call(mesh.pipeline.plane.status)
    (entry,) = [
        r for r in status["routes"] if (r["kind"], r["namespace"], r["name"]) == (kind, namespace, name)
    ]
    return {c["type"]: (c["status"], c["reason"]) for c in entry["parents"][0]["conditions"]}


def test_grpcroute_wins_over_an_httproute_on_the_same_service_port(mesh: Mesh) -> None:
    older = "2020-01-01T00:00:00Z"  # older than the GRPCRoute: age never beats the kind
    http = http_route("http-on-grpc", SHOP, [parent("greeter", port=PORT)], [to(v(2))], created=older)
    # Alone, the HTTPRoute routes gRPC calls (they are HTTP/2 POSTs): the control for what follows.
    mesh.apply(
        [*mesh.base(), http],
        lambda: mesh.answers("greeter") == {SHOP: {"g2"}, WEB: {"g2"}},
        "HTTPRoute alone",
    )
    assert route_conditions(mesh, "HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("True", "Accepted")
    grpc = on_greeter(to(v(1)))
    mesh.apply(
        [*mesh.base(), http, grpc],
        lambda: mesh.answers("greeter") == {SHOP: {"g1"}, WEB: {"g1"}},
        "GRPCRoute wins",
    )
    assert mesh.answers("greeter", "/any.Service/Any", n=20) == {SHOP: {"g1"}, WEB: {"g1"}}
    assert route_conditions(mesh, "HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("False", "Conflicted")
    assert route_conditions(mesh, "GRPCRoute", SHOP, "rpc")["Accepted"] == ("True", "Accepted")
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
    assert route_conditions(mesh, "HTTPRoute", WEB, "mine")["Accepted"] == ("True", "Accepted")


# -- the upstream's HTTP version ---------------------------------------------------------------------------------


def upstream_connections(sidecar: Sidecar, port: int) -> dict[str, int]:
    """{"http1": n, "http2": n}: connections the sidecar opened to poly:PORT's endpoints, by protocol."""
    cluster = f"cluster.outbound|{port}||poly.{SHOP}.svc.cluster.local."
    out = {"http1": 0, "http2": 0}
    for line in sidecar.envoy.admin("/stats?filter=upstream_cx_http").splitlines():
        name, _, value = line.partition(": ")
        for proto in out:
            if name == f"{cluster}upstream_cx_{proto}_total":
                out[proto] = int(value)
    return out


def test_upstream_speaks_http2_when_app_protocol_says_h2c_or_grpc(mesh: Mesh) -> None:
    """The echo server speaks only HTTP/2 cleartext: a call it answers proves the sidecar spoke HTTP/2 to it.
    A gRPC client speaks HTTP/2 itself, which a port without appProtocol passes on; so the same call is also
    sent over HTTP/1.1: h2c and grpc ports still reach the server (HTTP/2 upstream, from appProtocol), a port
    without appProtocol does not (the client's HTTP/1.1), nor does `appProtocol: http`, whatever the client."""
    mesh.apply(mesh.base(), lambda: mesh.answers("poly", port=8001) == {SHOP: {"g4"}, WEB: {"g4"}}, "poly")
    for port in (8001, 8003, 8006):  # h2c, grpc; none: the client's own protocol, HTTP/2 for gRPC
        assert mesh.answers("poly", port=port) == {SHOP: {"g4"}, WEB: {"g4"}}, port
    for sidecar in (mesh.shop, mesh.web):
        for port in (8001, 8003, 8006):
            used = upstream_connections(sidecar, port)
            assert used["http2"] >= 1 and used["http1"] == 0, (sidecar.namespace, port, used)
        tally = mesh.call(sidecar, "poly", port=8004, n=3)
        print(f"\ngRPC through an HTTP/1.1 upstream ({sidecar.namespace}): {tally.codes} {tally.first}")
        assert tally.answers() == {"UNAVAILABLE"}, tally
        # the same calls from an HTTP/1.1 client
        for port, expected in (
            (8001, {"g4"}),
            (8003, {"g4"}),
            (8006, {"UNAVAILABLE"}),
            (8004, {"UNAVAILABLE"}),
        ):
            tally = mesh.call(sidecar, "poly", port=port, n=2, http1=True)
            assert tally.answers() == expected, (sidecar.namespace, port, tally)
        for port, proto in ((8001, "http2"), (8003, "http2"), (8006, "http1"), (8004, "http1")):
            used = upstream_connections(sidecar, port)
            other = "http1" if proto == "http2" else "http2"
            assert used[proto] >= 1 and (port == 8006 or used[other] == 0), (sidecar.namespace, port, used)


# -- grpc-status of the sidecar's own answers ----------------------------------------------------------------


def test_grpc_status_of_the_sidecars_own_answers(mesh: Mesh) -> None:
    """What a gRPC client really gets when Envoy answers: no rule → 404 → UNIMPLEMENTED; an invalid backend →
    503 for GRPCRoute (the translator's choice, for the spec's UNAVAILABLE) → UNAVAILABLE; no ready endpoint →
    503 → UNAVAILABLE; only weight-0 backends → UNAVAILABLE; an unsupported filter → 500 → UNKNOWN."""
    ext = {"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "Filter", "name": "f"}}
    route = on_greeter(
        to(backend("nosuch", PORT), matches=[grpc_method("echo.Missing")]),
        to(v(1), backend("nosuch", PORT), matches=[grpc_method("echo.Half")]),
        to(backend("empty", PORT), matches=[grpc_method("echo.Empty")]),
        to(v(1, weight=0), matches=[grpc_method("echo.Zero")]),
        to(v(1), matches=[grpc_method("echo.Ext")], filters=[ext]),
        to(v(1), matches=[grpc_method("echo.Greeter")]),
    )
    mesh.apply(
        [*mesh.base(), route],
        lambda: mesh.answers("greeter", "/echo.Missing/X") == {SHOP: {"UNAVAILABLE"}, WEB: {"UNAVAILABLE"}},
        "error route in force",
    )
    expected = {
        "/echo.Greeter/SayHello": {"g1"},
        "/echo.Other/X": {"UNIMPLEMENTED"},  # no rule matches
        "/echo.Missing/X": {"UNAVAILABLE"},  # every backend invalid: a direct 503
        "/echo.Half/X": {"g1", "UNAVAILABLE"},  # the invalid half's share: cluster not found, 503
        "/echo.Empty/X": {"UNAVAILABLE"},  # a Service without endpoints: no healthy upstream, 503
        "/echo.Zero/X": {"UNAVAILABLE"},  # every backend has weight 0
        "/echo.Ext/X": {"UNKNOWN"},  # unsupported filter: 500, which gRPC maps to UNKNOWN
    }
    seen: dict[str, dict[str, Any]] = {}
    for method, outcomes in expected.items():
        for sidecar in (mesh.shop, mesh.web):
            tally = mesh.call(sidecar, "greeter", method, n=40 if len(outcomes) > 1 else 3)
            assert tally.answers() == outcomes, (sidecar.namespace, method, tally)
            seen[method] = {code: first.get("details") for code, first in tally.first.items()}
    print(f"\ngrpc-status of the sidecar's answers (code: grpc-message): {seen}")
    # The sidecar's answer for a Service with no endpoints says why; a direct response says nothing.
    assert seen["/echo.Empty/X"]["UNAVAILABLE"] == "no healthy upstream", seen
    # Proxy mode only (transparent capture dials an address, never a name): an authority naming no Service.
    for sidecar in (mesh.shop, mesh.web):
        tally = mesh.call(sidecar, "greeter", authority=f"nosuch.{SHOP}:{PORT}", n=2)
        assert tally.answers() == {"UNIMPLEMENTED"}, tally
        tally = mesh.call(sidecar, "greeter", port=9999, n=2)  # a port the Service lacks
        assert tally.answers() == {"UNIMPLEMENTED"}, tally
