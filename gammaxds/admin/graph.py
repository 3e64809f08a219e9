"""Which Service routes to which: the mesh as a graph, for `/debug/graph` and the dashboard.

GAMMA makes the answer depend on who asks. A client in a Service's own namespace, or in any namespace without
consumer routes for it, sees the producer routes; a namespace with consumer routes for a Service port sees
those instead. So the graph has one edge list per view that can differ: `"*"` (the producer routes, what
every namespace without consumer routes sees) and one per consumer namespace, each complete (a consumer
namespace's list holds the producer routes of the ports it has no consumer route for).

An edge is one backendRef of one rule: `{"from", "port", "to", "route", "rule", "weight", "valid"}`, with the
backend resolved exactly as the translator resolves it (`resolve_backend`), so an edge marked invalid is a
share of traffic that gets 500. A backend that names no Service keeps its reference text as `to`.

Pure: a Translation in, plain data out (JSON-ready).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gammaxds.model import World
from gammaxds.model.gateway import BackendObjectReference, GRPCRouteRule, HTTPRouteRule
from gammaxds.translate import Translation
from gammaxds.translate.backends import resolve_backend
from gammaxds.translate.mesh.binding import PortKey

PRODUCER_VIEW = "*"


def _ref_text(ref: BackendObjectReference, namespace: str) -> str:
    where = f"{namespace}/{ref.name}"
    if ref.group == "" and ref.kind == "Service":
        return where
    return f"{ref.group}/{ref.kind} {where}" if ref.group else f"{ref.kind} {where}"


def _services(world: World) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{ns}/{name}",
            "namespace": ns,
            "name": name,
            "type": service.spec.type,
            "clusterIP": service.cluster_ip,
            "ports": [
                {"name": p.name, "port": p.port, "protocol": p.protocol, "appProtocol": p.app_protocol}
                for p in service.spec.ports
            ],
        }
        for (ns, name), service in sorted(world.services.items())
    ]


def _edges(translation: Translation, client: str) -> list[dict[str, Any]]:
    world, bindings = translation.world, translation.bindings
    edges: list[dict[str, Any]] = []
    port: PortKey
    for port in sorted(bindings.by_port):
        service_ns, service_name, number = port
        _, routes = bindings.routes_for(port, service_ns if client == PRODUCER_VIEW else client)
        for route in routes:
            rules: Sequence[HTTPRouteRule | GRPCRouteRule] = route.spec.rules
            for index, rule in enumerate(rules):
                for ref in rule.backend_refs:
                    namespace = ref.namespace or route.namespace
                    backend = resolve_backend(world, ref, route.namespace)
                    edges.append(
                        {
                            "from": f"{service_ns}/{service_name}",
                            "port": number,
                            "to": _ref_text(ref, namespace),
                            "backendPort": ref.port,
                            "route": f"{route.kind} {route.namespace}/{route.name}",
                            "rule": index,
                            "weight": ref.weight,
                            "valid": backend.valid,
                            "problem": backend.problem,
                        }
                    )
    return edges


def mesh_graph(translation: Translation) -> dict[str, Any]:
    """`{"services": [...], "edges": {"*": [...], "<consumer namespace>": [...], ...}}`."""
    clients = [PRODUCER_VIEW, *sorted(translation.consumer_namespaces)]
    return {
        "services": _services(translation.world),
        "edges": {client: _edges(translation, client) for client in clients},
    }
