"""A deterministic synthetic mesh: S Services in N namespaces, for benchmarks and tests.

Each Service has 2 ports (`http` 80 → 8080, `grpc` 9090 with appProtocol h2c) and E endpoints across 3 zones in
1-2 EndpointSlices (some not ready, some serving while terminating). Half of the Services have a producer
route with 3-5 rules (path/header/query/method matches, weighted backends, header modifiers, rewrites,
timeouts); 10% of namespaces hold consumer routes for Services elsewhere.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from gammaxds.model import Object, World, parse_object

ZONES = ("zone-a", "zone-b", "zone-c")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
POD_CIDR = ipaddress.ip_network("10.128.0.0/9")


@dataclass(frozen=True)
class MeshSpec:
    services: int = 100
    namespaces: int = 10
    endpoints: int = 10
    seed: int = 1


def _service(ns: str, name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "clusterIP": ip,
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "grpc", "port": 9090, "targetPort": 9090, "appProtocol": "kubernetes.io/h2c"},
            ],
        },
    }


def endpoint_slice(
    ns: str, service: str, index: int, addresses: list[str], rng: random.Random
) -> dict[str, Any]:
    endpoints = []
    for i, addr in enumerate(addresses):
        roll = rng.random()
        conditions = (
            {"ready": True} if roll < 0.9 else {"ready": False, "serving": roll < 0.95, "terminating": True}
        )
        endpoints.append(
            {"addresses": [addr], "conditions": conditions, "zone": ZONES[i % 3], "nodeName": f"node-{i % 7}"}
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{index}",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9090}],
        "endpoints": endpoints,
    }


def _rule(rng: random.Random, ns: str, peers: list[str], i: int) -> dict[str, Any]:
    match: dict[str, Any] = {
        "path": {"type": rng.choice(["PathPrefix", "Exact"]), "value": f"/api/v{i}/{rng.randrange(100)}"}
    }
    if rng.random() < 0.5:
        match["headers"] = [{"name": "x-user", "value": f"user-{rng.randrange(10)}"}]
    if rng.random() < 0.3:
        match["queryParams"] = [{"name": "debug", "value": "1"}]
    if rng.random() < 0.3:
        match["method"] = rng.choice(["GET", "POST"])
    backends = [
        {"name": rng.choice(peers), "namespace": ns, "port": 80, "weight": rng.randrange(0, 100)}
        for _ in range(rng.randint(1, 3))
    ]
    rule: dict[str, Any] = {"matches": [match], "backendRefs": backends}
    roll = rng.random()
    if roll < 0.4:
        rule["filters"] = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-route", "value": str(i)}]},
            }
        ]
    elif roll < 0.6:
        rule["filters"] = [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/"}},
            }
        ]
    if rng.random() < 0.3:
        rule["timeouts"] = {"request": f"{rng.randint(1, 30)}s"}
    return rule


def route(
    ns: str, name: str, parent: tuple[str, str], peers: list[str], rng: random.Random
) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [
                {"group": "", "kind": "Service", "name": parent[1], "namespace": parent[0], "port": 80}
            ],
            "rules": [_rule(rng, parent[0], peers, i) for i in range(rng.randint(3, 5))],
        },
    }


def generate_raw(spec: MeshSpec) -> list[dict[str, Any]]:
    rng = random.Random(spec.seed)
    namespaces = [f"ns-{i}" for i in range(spec.namespaces)]
    raw: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    services: list[tuple[str, str]] = []
    pods = iter(POD_CIDR.hosts())
    for i in range(spec.services):
        ns = namespaces[i % spec.namespaces]
        name = f"svc-{i}"
        services.append((ns, name))
        raw.append(_service(ns, name, str(SERVICE_CIDR.network_address + 10 + i)))
        addresses = [str(next(pods)) for _ in range(spec.endpoints)]
        cut = len(addresses) // 2 if rng.random() < 0.5 else len(addresses)
        raw.append(endpoint_slice(ns, name, 0, addresses[:cut], rng))
        if cut < len(addresses):
            raw.append(endpoint_slice(ns, name, 1, addresses[cut:], rng))
    by_ns: dict[str, list[str]] = {}
    for ns, name in services:
        by_ns.setdefault(ns, []).append(name)
    for i, (ns, name) in enumerate(services):
        if i % 2 == 0:
            raw.append(route(ns, f"{name}-route", (ns, name), by_ns[ns], rng))
    for ns in namespaces[: max(1, spec.namespaces // 10)]:
        for j, target in enumerate(rng.sample(services, min(5, len(services)))):
            if target[0] != ns:
                raw.append(route(ns, f"consumer-{j}", target, by_ns[target[0]], rng))
    return raw


def generate(spec: MeshSpec) -> list[Object]:
    objects: list[Object] = []
    for item in generate_raw(spec):
        loaded = parse_object(item)
        assert not loaded.errors, loaded.errors
        objects += loaded.objects
    return objects


def world(spec: MeshSpec) -> World:
    return World.of(generate(spec))
