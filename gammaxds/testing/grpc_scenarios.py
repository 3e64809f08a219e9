"""The GRPCRoute scenarios that both gRPC end-to-end suites run: `tests/e2e/proxy/test_grpc_proxy.py` (calls
through proxy-mode sidecars, named by `:authority`) and `tests/e2e/mesh/test_grpc_transparent.py` (calls to
cluster IPs captured by a client pod's sidecar in network namespaces).

What is held here is what does not depend on the capture mode: the Services and EndpointSlices of the
scenario mesh, the GRPCRoute / HTTPRoute documents each scenario applies, and the outcomes each must show.
Both suites import it, so the two modes are held to the same routes and the same expectations, and a scenario
changed here changes for both. How a change is published, how a call is sent, and the checks only one mode
can make stay in each suite.

Services in `shop` (gRPC port 9000, appProtocol kubernetes.io/h2c, unless said), by cluster IP index (each
suite maps an index to an address) and serving pod (g0-g4: gRPC echo servers, `gammaxds.testing.grpc_echo`):
    greeter     10   g0   the parent of the routes under test
    greeter-vN  1N   gN   (N = 1..4) the backends
    empty       15   -    no endpoints at all
    poly        16   g4   ports 8001 h2c, 8003 grpc, 8004 http, 8006 (no appProtocol)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .gamma import backend, endpoint_slice, grpc_method, grpc_route, http_route, parent, service, service_port

SHOP, WEB = "shop", "web"
PORT = 9000
PODS = ["g0", "g1", "g2", "g3", "g4"]
H2C = "kubernetes.io/h2c"
SAY_HELLO = "/echo.Greeter/SayHello"
# poly's ports: (name, port, appProtocol)
POLY_PORTS: tuple[tuple[str, int, str | None], ...] = (
    ("h2c", 8001, "h2c"),
    ("grpc", 8003, "grpc"),
    ("http", 8004, "http"),
    ("plain", 8006, None),
)


# -- Services ----------------------------------------------------------------------------------------------


def grpc_port(
    name: str, port: int = PORT, app_protocol: str | None = H2C, target_port: int | None = None
) -> dict[str, Any]:
    """A Service port (appProtocol kubernetes.io/h2c unless said; none with `app_protocol=None`)."""
    extra = {"appProtocol": app_protocol} if app_protocol else {}
    return service_port(name, port, target_port, **extra)


def services(
    cluster_ip: Callable[[int], str], address: Callable[[str], str], target_port: int
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The Services of the module docstring with their EndpointSlices, and {Service name: cluster IP}.

    `cluster_ip(index)` is the cluster IP of a Service's index, `address(pod)` the endpoint address of a pod,
    and `target_port` the port every pod serves on (each Service port's targetPort)."""
    one = [grpc_port("grpc", target_port=target_port)]
    poly = [grpc_port(name, port, app, target_port) for name, port, app in POLY_PORTS]
    table: list[tuple[str, int, list[str], list[dict[str, Any]]]] = [
        ("greeter", 10, ["g0"], one),
        *[(f"greeter-v{n}", 10 + n, [f"g{n}"], one) for n in range(1, 5)],
        ("empty", 15, [], one),
        ("poly", 16, ["g4"], poly),
    ]
    docs: list[dict[str, Any]] = []
    ips: dict[str, str] = {}
    for name, index, pods, ports in table:
        ips[name] = cluster_ip(index)
        docs.append(service(name, SHOP, ips[name], ports))
        addresses = [address(pod) for pod in pods]
        docs.append(
            endpoint_slice(f"{name}-1", SHOP, name, addresses, {p["name"]: target_port for p in ports})
        )
    return docs, ips


# -- route builders ----------------------------------------------------------------------------------------


def on_greeter(*rules: dict[str, Any], name: str = "rpc") -> dict[str, Any]:
    """A producer GRPCRoute on greeter:9000."""
    return grpc_route(name, SHOP, [parent("greeter", port=PORT)], list(rules))


def to(*backends: dict[str, Any], matches: Sequence[dict[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """A route rule sending to `backends` (with `matches`, and any further rule field such as filters)."""
    rule: dict[str, Any] = {"backendRefs": list(backends), **extra}
    if matches:
        rule["matches"] = list(matches)
    return rule


def v(n: int, **extra: Any) -> dict[str, Any]:
    """A backendRef to greeter-vN:9000 (served by pod gN)."""
    return backend(f"greeter-v{n}", port=PORT, **extra)


def header(name: str, value: str, regex: bool = False) -> dict[str, Any]:
    """A header match (Exact, or RegularExpression with `regex`)."""
    return {"type": "RegularExpression" if regex else "Exact", "name": name, "value": value}


def request_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": ops}


def response_mod(**ops: Any) -> dict[str, Any]:
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": ops}


# -- matches -----------------------------------------------------------------------------------------------


def matches_route() -> dict[str, Any]:
    """GRPCRoute `rpc`: Exact service and method → g1, RegularExpression service and method → g2, a method
    alone → g3, headers alone (Exact, or RegularExpression) → g4."""
    return on_greeter(
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


# Under `matches_route`: (method path, request metadata, the one outcome: serving pod or status code name).
MATCH_CASES: tuple[tuple[str, dict[str, str], str], ...] = (
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
)


# -- weights -----------------------------------------------------------------------------------------------


def weighted_route() -> dict[str, Any]:
    """GRPCRoute `rpc`: greeter-v1 weight 80, greeter-v2 weight 20, greeter-v3 weight 0."""
    return on_greeter(to(v(1, weight=80), v(2, weight=20), v(3, weight=0)))


# -- header modifiers --------------------------------------------------------------------------------------


def header_modifier_route() -> dict[str, Any]:
    """GRPCRoute `rpc`, one rule to greeter-v1 and greeter-v2: request and response header modifiers on the
    rule, and on each backend (which set x-backend; v2's also removes x-keep and sets x-backend-resp)."""
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
    return on_greeter(rule)


# Under `header_modifier_route`: the metadata a client sends, the request and response keys it tallies, and
# every tally key (code, pod, x-set, x-added, x-drop, x-keep, x-backend | response: x-resp, x-backend-resp).
HEADERS_SENT: Mapping[str, str] = {"x-set": "client", "x-added": "client", "x-drop": "1", "x-keep": "1"}
HEADER_KEYS = ("x-set", "x-added", "x-drop", "x-keep", "x-backend")
RESPONSE_HEADER_KEYS = ("x-resp", "x-backend-resp")
HEADER_OUTCOMES = frozenset(
    {
        ("OK", "g1", "rule", "client, rule", None, "1", "v1", "rule", None),
        ("OK", "g2", "rule", "client, rule", None, None, "v2", "rule", "v2"),
    }
)


# -- GRPCRoute over HTTPRoute ------------------------------------------------------------------------------


def http_route_on_greeter() -> dict[str, Any]:
    """HTTPRoute `http-on-grpc` on greeter:9000 to greeter-v2, older than any GRPCRoute (age never beats the
    kind)."""
    older = "2020-01-01T00:00:00Z"
    return http_route("http-on-grpc", SHOP, [parent("greeter", port=PORT)], [to(v(2))], created=older)


def grpc_route_on_greeter() -> dict[str, Any]:
    """GRPCRoute `rpc` on greeter:9000 to greeter-v1: it wins over `http_route_on_greeter`."""
    return on_greeter(to(v(1)))


def route_conditions(
    status: Mapping[str, Any], kind: str, namespace: str, name: str
) -> dict[str, tuple[str, str]]:
    """{condition type: (status, reason)} of a route's first parent in the control plane's `/debug/status`."""
    routes = status["objects"]
    (entry,) = [r for r in routes if (r["kind"], r["namespace"], r["name"]) == (kind, namespace, name)]
    return {c["type"]: (c["status"], c["reason"]) for c in entry["status"]["parents"][0]["conditions"]}


# -- the upstream's HTTP version ---------------------------------------------------------------------------

# poly's ports whose upstream is HTTP/2 for a gRPC client: h2c, grpc; none: the client's own protocol
HTTP2_PORTS = (8001, 8003, 8006)
# The same calls from an HTTP/1.1 client: (poly's port, the outcomes), and the protocol of the upstream
# connection the sidecar opens for them (on 8006, the gRPC calls' HTTP/2 connections stay counted).
HTTP1_CLIENT_OUTCOMES: tuple[tuple[int, frozenset[str]], ...] = (
    (8001, frozenset({"g4"})),
    (8003, frozenset({"g4"})),
    (8006, frozenset({"UNAVAILABLE"})),
    (8004, frozenset({"UNAVAILABLE"})),
)
HTTP1_CLIENT_UPSTREAMS = ((8001, "http2"), (8003, "http2"), (8006, "http1"), (8004, "http1"))


def upstream_connections(stats: Mapping[str, str], port: int) -> dict[str, int]:
    """{"http1": n, "http2": n}: connections the sidecar opened to poly:PORT's endpoints, by protocol, from
    its Envoy's stats ({name: value}, as the admin's `/stats` lists them)."""
    cluster = f"cluster.outbound|{port}||poly.{SHOP}.svc.cluster.local."
    return {proto: int(stats.get(f"{cluster}upstream_cx_{proto}_total", 0)) for proto in ("http1", "http2")}


# -- grpc-status of the sidecar's own answers ------------------------------------------------------------


def error_route() -> dict[str, Any]:
    """GRPCRoute `rpc` with a rule per way the sidecar answers itself, selected by service: echo.Missing (an
    invalid backend), echo.Half (one valid, one invalid), echo.Empty (no endpoints), echo.Zero (only weight
    0), echo.Ext (an unsupported filter); echo.Greeter to greeter-v1."""
    ext = {"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "Filter", "name": "f"}}
    return on_greeter(
        to(backend("nosuch", PORT), matches=[grpc_method("echo.Missing")]),
        to(v(1), backend("nosuch", PORT), matches=[grpc_method("echo.Half")]),
        to(backend("empty", PORT), matches=[grpc_method("echo.Empty")]),
        to(v(1, weight=0), matches=[grpc_method("echo.Zero")]),
        to(v(1), matches=[grpc_method("echo.Ext")], filters=[ext]),
        to(v(1), matches=[grpc_method("echo.Greeter")]),
    )


# Under `error_route`: {method path: the set of outcomes}.
ERROR_OUTCOMES: Mapping[str, frozenset[str]] = {
    "/echo.Greeter/SayHello": frozenset({"g1"}),
    "/echo.Other/X": frozenset({"UNIMPLEMENTED"}),  # no rule matches
    "/echo.Missing/X": frozenset({"UNAVAILABLE"}),  # every backend invalid: a direct 503
    "/echo.Half/X": frozenset({"g1", "UNAVAILABLE"}),  # the invalid half's share: cluster not found, 503
    "/echo.Empty/X": frozenset({"UNAVAILABLE"}),  # a Service without endpoints: no healthy upstream, 503
    "/echo.Zero/X": frozenset({"UNAVAILABLE"}),  # every backend has weight 0
    "/echo.Ext/X": frozenset({"UNKNOWN"}),  # unsupported filter: 500, which gRPC maps to UNKNOWN
}

# Under `error_route`: {method path: (status code name, its grpc-message)}. The sidecar's answer says why, in
# grpc-message (Envoy's local reply body) and in the trailer `x-gammaxds-reason`.
_RULE = f"GRPCRoute {SHOP}/rpc rules"
ERROR_DETAILS: Mapping[str, tuple[str, str]] = {
    "/echo.Other/X": ("UNIMPLEMENTED", f"no route of {SHOP}/greeter:{PORT} matched"),
    "/echo.Missing/X": ("UNAVAILABLE", f"{_RULE}[0]: backendRef Service {SHOP}/nosuch not found"),
    "/echo.Half/X": ("UNAVAILABLE", f"{_RULE}[1]: backendRef Service {SHOP}/nosuch not found"),
    "/echo.Empty/X": ("UNAVAILABLE", f"no ready endpoints for Service {SHOP}/empty port {PORT}"),
    "/echo.Zero/X": ("UNAVAILABLE", f"{_RULE}[3]: every backendRef has weight 0"),
    "/echo.Ext/X": ("UNKNOWN", f"{_RULE}[4]: ExtensionRef example.io/Filter f not supported"),
}


def unexplained(method: str, first: Mapping[str, Mapping[str, Any]]) -> tuple[str, Any, Any] | None:
    """None when the first answers of `method` under `error_route` (`Tally.first`: by status code name) say why
    as `ERROR_DETAILS` has it, in grpc-message and in `x-gammaxds-reason`; else (code, grpc-message,
    x-gammaxds-reason) as found. None for a method without an entry (a backend serves it)."""
    if method not in ERROR_DETAILS:
        return None
    code, details = ERROR_DETAILS[method]
    answer = first.get(code, {})
    reason = answer.get("response_metadata", {}).get("x-gammaxds-reason")
    return None if answer.get("details") == details == reason else (code, answer.get("details"), reason)
