"""Real gRPC calls through transparent capture: a grpcio client in a client pod dials a Service's cluster IP and
port, iptables hands the connection to the pod's Envoy sidecar (fed by `gammaxds serve` in its own pod), which
routes it with GRPCRoutes to gRPC echo servers (`gammaxds.testing.grpc_echo`) in their own pods.

One mesh for the module: the control plane watching a manifests directory, five backend pods g0-g4 (each a gRPC
echo server on port 9000, answering with its pod name), and one client pod in namespace `web` with its sidecar
and a long-lived call session (`grpc_echo session`). The client sends `:authority` as a client resolving the
Service's DNS name would (`greeter.shop:9000`); in transparent mode only the dialled address selects routes.
Each test writes its routes to one manifest file, probes with calls until they are in force (10 s at most), and
removes them afterwards, waiting until the sidecar holds no route but the Services' defaults again.

Services in `shop` (gRPC port 9000 → 9000, appProtocol kubernetes.io/h2c, unless said):
    greeter     10.96.0.10  g0   the parent of the routes under test
    greeter-vN  10.96.0.1N  gN   (N = 1..4) the backends
    empty       10.96.0.15  -    no endpoints at all
    poly        10.96.0.16  g4   ports 8001 h2c, 8003 grpc, 8004 http, 8006 (no appProtocol), all → 9000
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from gammaxds.testing.gamma import (
    ControlPlane,
    backend,
    endpoint_slice,
    envoy_stats,
    eventually,
    grpc_method,
    grpc_route,
    http_route,
    parent,
    route_entries,
    service,
    service_port,
    start_control_plane,
    start_sidecar,
)
from gammaxds.testing.grpc_echo import PodCaller, Tally, serve_in_pod
from gammaxds.testing.mesh import Mesh, Pod, envoy_binary

pytestmark = [
    pytest.mark.usefixtures("mesh_supported"),
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy executable next to the Python interpreter"),
]

SHOP, WEB = "shop", "web"
PORT = 9000
PODS = ["g0", "g1", "g2", "g3", "g4"]
H2C = "kubernetes.io/h2c"
WITHIN = 10.0  # a written change must be in force within this many seconds
SAY_HELLO = "/echo.Greeter/SayHello"
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
        routes = self.cp.status()["routes"]
        (entry,) = [r for r in routes if (r["kind"], r["namespace"], r["name"]) == (kind, namespace, name)]
        return {c["type"]: (c["status"], c["reason"]) for c in entry["parents"][0]["conditions"]}


def grpc_port(name: str, port: int = PORT, app_protocol: str | None = H2C) -> dict[str, Any]:
    extra = {"appProtocol": app_protocol} if app_protocol else {}
    return service_port(name, port, PORT, **extra)


def services(mesh: Mesh, pods: Mapping[str, Pod]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The module's Services and EndpointSlices (see the module docstring), and their cluster IPs."""
    docs: list[dict[str, Any]] = []
    ips: dict[str, str] = {}
    poly = [
        grpc_port("h2c", 8001, "h2c"),
        grpc_port("grpc", 8003, "grpc"),
        grpc_port("http", 8004, "http"),
        grpc_port("plain", 8006, None),
    ]
    table: list[tuple[str, int, list[str], list[dict[str, Any]]]] = [
        ("greeter", 10, ["g0"], [grpc_port("grpc")]),
        *[(f"greeter-v{n}", 10 + n, [f"g{n}"], [grpc_port("grpc")]) for n in range(1, 5)],
        ("empty", 15, [], [grpc_port("grpc")]),
        ("poly", 16, ["g4"], poly),
    ]
    for name, index, backends, ports in table:
        ips[name] = mesh.service_ip(index)
        docs.append(service(name, SHOP, ips[name], ports))
        addresses = [pods[p].ip for p in backends]
        docs.append(endpoint_slice(f"{name}-1", SHOP, name, addresses, {p["name"]: PORT for p in ports}))
    return docs, ips


@pytest.fixture(scope="module")
def env(mesh_supported: None) -> Iterator[Env]:
    with Mesh() as mesh:
        try:
            cp = start_control_plane(mesh.add_pod("xds"))
            pods = {name: mesh.add_pod(name) for name in PODS}
            procs = {name: serve_in_pod(pod, "echo", PORT, wait=False) for name, pod in pods.items()}
            for name, pod in pods.items():
                pod.wait_listening(PORT, procs[name], 15)
            docs, ips = services(mesh, pods)
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


def test_grpcroute_matches_service_method_and_headers(routes: Env) -> None:
    env = routes
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
    env.write(route, probe=lambda: env.answers("greeter") == {"g1"}, what="GRPCRoute rpc in force")
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
    failures = []
    for method, metadata, expected in cases:
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
    route = on_greeter(to(v(1, weight=80), v(2, weight=20), v(3, weight=0)))
    env.write(route, probe=lambda: env.answers("greeter", n=30) == {"g1", "g2"}, what="the split in force")
    tally = env.call("greeter", n=1000)  # one process in the client pod, one channel
    print(f"\ngRPC weighted split 80/20/0 through capture, 1000 calls: {tally.codes} {tally.pods}")
    assert tally.codes == {"OK": 1000}, tally.codes
    assert set(tally.pods) == {"g1", "g2"}, tally.pods  # weight 0 (g3): no call at all
    assert 750 <= tally.pods["g1"] <= 850, tally.pods  # 80% ± 5 percentage points


# -- header modifiers --------------------------------------------------------------------------------------------


def request_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": ops}


def response_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": ops}


def test_header_modifiers_at_rule_and_backend_level(routes: Env) -> None:
    env = routes
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
    env.write(
        on_greeter(rule), probe=lambda: env.answers("greeter", n=20) == {"g1", "g2"}, what="header route"
    )
    sent = {"x-set": "client", "x-added": "client", "x-drop": "1", "x-keep": "1"}
    keys = ["x-set", "x-added", "x-drop", "x-keep", "x-backend"]
    tally = env.call("greeter", n=40, metadata=sent, keys=keys, response_keys=["x-resp", "x-backend-resp"])
    # (code, pod, x-set, x-added, x-drop, x-keep, x-backend | response: x-resp, x-backend-resp)
    assert set(tally.counts) == {
        ("OK", "g1", "rule", "client, rule", None, "1", "v1", "rule", None),
        ("OK", "g2", "rule", "client, rule", None, None, "v2", "rule", "v2"),
    }, tally


# -- GRPCRoute over HTTPRoute ------------------------------------------------------------------------------------


def test_grpcroute_wins_over_an_httproute_on_the_same_service_port(routes: Env) -> None:
    env = routes
    older = "2020-01-01T00:00:00Z"  # older than the GRPCRoute: age never beats the kind
    http = http_route("http-on-grpc", SHOP, [parent("greeter", port=PORT)], [to(v(2))], created=older)
    # Alone, the HTTPRoute routes gRPC calls (they are HTTP/2 POSTs): the control for what follows.
    env.write(http, probe=lambda: env.answers("greeter") == {"g2"}, what="HTTPRoute alone")
    assert env.conditions("HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("True", "Accepted")
    env.write(
        http, on_greeter(to(v(1))), probe=lambda: env.answers("greeter") == {"g1"}, what="GRPCRoute wins"
    )
    assert env.answers("greeter", "/any.Service/Any", n=20) == {"g1"}
    eventually(
        lambda: env.conditions("HTTPRoute", SHOP, "http-on-grpc")["Accepted"] == ("False", "Conflicted"),
        WITHIN,
        what="HTTPRoute Conflicted",
    )
    assert env.conditions("GRPCRoute", SHOP, "rpc")["Accepted"] == ("True", "Accepted")


# -- the upstream's HTTP version ---------------------------------------------------------------------------------


def upstream_connections(env: Env, port: int) -> dict[str, int]:
    """{"http1": n, "http2": n}: connections the sidecar opened to poly:PORT's endpoints, by protocol."""
    cluster = f"cluster.outbound|{port}||poly.{SHOP}.svc.cluster.local."
    stats = envoy_stats(env.client, "upstream_cx_http")
    return {proto: int(stats.get(f"{cluster}upstream_cx_{proto}_total", 0)) for proto in ("http1", "http2")}


def test_upstream_speaks_http2_when_app_protocol_says_h2c_or_grpc(routes: Env) -> None:
    """The echo server speaks only HTTP/2 cleartext: a call it answers proves the sidecar spoke HTTP/2 to it.
    A gRPC client speaks HTTP/2 itself, which a port without appProtocol passes on; so the same call is also
    sent over HTTP/1.1: h2c and grpc ports still reach the server (HTTP/2 upstream, from appProtocol), a port
    without appProtocol does not (the client's HTTP/1.1), nor does `appProtocol: http`, whatever the client."""
    env = routes
    for port in (8001, 8003, 8006):  # h2c, grpc; none: the client's own protocol, HTTP/2 for gRPC
        assert env.answers("poly", port=port) == {"g4"}, port
        used = upstream_connections(env, port)
        assert used["http2"] >= 1 and used["http1"] == 0, (port, used)
    tally = env.call("poly", port=8004, n=3)
    print(f"\ngRPC through an HTTP/1.1 upstream: {tally.codes} {tally.first}")
    assert tally.answers() == {"UNAVAILABLE"}, tally
    # the same calls from an HTTP/1.1 client
    for port, expected in ((8001, {"g4"}), (8003, {"g4"}), (8006, {"UNAVAILABLE"}), (8004, {"UNAVAILABLE"})):
        tally = env.call("poly", port=port, n=2, http1=True)
        assert tally.answers() == expected, (port, tally)
    for port, proto in ((8001, "http2"), (8003, "http2"), (8006, "http1"), (8004, "http1")):
        used = upstream_connections(env, port)
        other = "http1" if proto == "http2" else "http2"
        assert used[proto] >= 1 and (port == 8006 or used[other] == 0), (port, used)


# -- grpc-status of the sidecar's own answers ----------------------------------------------------------------


def test_grpc_status_of_the_sidecars_own_answers(routes: Env) -> None:
    """What a gRPC client really gets when Envoy answers: no rule → 404 → UNIMPLEMENTED; an invalid backend →
    503 for GRPCRoute (the translator's choice, for the spec's UNAVAILABLE) → UNAVAILABLE; no ready endpoint →
    503 → UNAVAILABLE; only weight-0 backends → UNAVAILABLE; an unsupported filter → 500 → UNKNOWN."""
    env = routes
    ext = {"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "Filter", "name": "f"}}
    route = on_greeter(
        to(backend("nosuch", PORT), matches=[grpc_method("echo.Missing")]),
        to(v(1), backend("nosuch", PORT), matches=[grpc_method("echo.Half")]),
        to(backend("empty", PORT), matches=[grpc_method("echo.Empty")]),
        to(v(1, weight=0), matches=[grpc_method("echo.Zero")]),
        to(v(1), matches=[grpc_method("echo.Ext")], filters=[ext]),
        to(v(1), matches=[grpc_method("echo.Greeter")]),
    )
    env.write(
        route,
        probe=lambda: env.answers("greeter", "/echo.Missing/X") == {"UNAVAILABLE"},
        what="error route in force",
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
        tally = env.call("greeter", method, n=40 if len(outcomes) > 1 else 3)
        assert tally.answers() == outcomes, (method, tally)
        seen[method] = {code: first.get("details") for code, first in tally.first.items()}
    print(f"\ngrpc-status of the sidecar's answers (code: grpc-message): {seen}")
    assert seen["/echo.Empty/X"]["UNAVAILABLE"] == "no healthy upstream", seen
    # Without any route, a Service with no endpoints: the same 503.
    assert env.answers("empty") == {"UNAVAILABLE"}
    # Transparent only (proxy mode names Services, it never dials their addresses): a cluster IP on a port its
    # Service lacks is closed by the sidecar at once; no sidecar answer, the connection fails.
    tally = env.call("greeter", port=9999, n=2, timeout=3.0)
    assert tally.answers() == {"UNAVAILABLE"}, tally
    print(f"a port greeter lacks: {tally.first}")
