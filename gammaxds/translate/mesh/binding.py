"""Which routes attach to which Service port, for which clients: GAMMA's parentRef rules.

A parentRef `{group: "", kind: Service}` binds a route to one port (`port` / `sectionName`) or to all ports of a
Service with a cluster IP. A route in the Service's namespace is a *producer* route and applies to every client;
a route elsewhere is a *consumer* route and applies only to clients in its own namespace.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ...model import GRPCRoute, HTTPRoute, Route, World
from ...model.gateway import ParentReference
from ..services import is_http, parent_problem

PortKey = tuple[str, str, int]  # service namespace, service name, port number


@dataclass(frozen=True)
class ParentResult:
    """How one parentRef resolved: the ports it attached to, or why it did not."""

    ref: ParentReference
    ports: tuple[PortKey, ...] = ()
    reason: str = "Accepted"  # NoMatchingParent | UnsupportedValue | Conflicted
    message: str = ""


@dataclass
class Bindings:
    """Routes by Service port and by route namespace, plus each route's parent results for status."""

    by_port: dict[PortKey, dict[str, list[Route]]] = field(default_factory=dict)
    parents: dict[tuple[str, str, str], list[ParentResult]] = field(default_factory=dict)

    def routes_for(self, port: PortKey, client_namespace: str) -> tuple[str, list[Route]]:
        """GAMMA's selection: the client namespace's consumer routes if it has any, else the producer routes."""
        groups = self.by_port.get(port, {})
        service_ns = port[0]
        if client_namespace != service_ns and groups.get(client_namespace):
            return client_namespace, groups[client_namespace]
        return service_ns, groups.get(service_ns, [])

    def consumer_namespaces(self) -> set[str]:
        return {ns for (svc_ns, _n, _p), groups in self.by_port.items() for ns in groups if ns != svc_ns}


def _resolve_parent(world: World, route: Route, ref: ParentReference) -> ParentResult:
    namespace = ref.namespace or route.namespace
    service = world.services.get((namespace, ref.name))
    if service is None:
        return ParentResult(
            ref, reason="NoMatchingParent", message=f"Service {namespace}/{ref.name} not found"
        )
    problem = parent_problem(service)
    if problem:
        return ParentResult(ref, reason="UnsupportedValue", message=problem)
    ports = [p for p in service.spec.ports if is_http(p)]
    if ref.port is not None:
        ports = [p for p in ports if p.port == ref.port]
        if not ports:
            return ParentResult(
                ref,
                reason="NoMatchingParent",
                message=f"Service {namespace}/{ref.name} has no HTTP port {ref.port}",
            )
    if ref.section_name is not None:
        ports = [p for p in ports if p.name == ref.section_name]
        if not ports:
            msg = f"Service {namespace}/{ref.name} has no HTTP port named {ref.section_name!r}"
            return ParentResult(ref, reason="NoMatchingParent", message=msg)
    if not ports:
        return ParentResult(
            ref, reason="NoMatchingParent", message=f"Service {namespace}/{ref.name} has no HTTP port"
        )
    return ParentResult(ref, tuple((namespace, ref.name, p.port) for p in ports))


def bind_routes(world: World) -> Bindings:
    """Resolve every Service parentRef of every route, then apply GRPCRoute-over-HTTPRoute conflict resolution."""
    out = Bindings()
    candidates: dict[PortKey, dict[str, list[Route]]] = defaultdict(lambda: defaultdict(list))
    routes: list[Route] = [*world.grpc_routes.values(), *world.http_routes.values()]
    for route in routes:
        results = []
        for ref in route.spec.parent_refs:
            if not ref.is_service:
                continue  # a Gateway parent is not ours: no status, no config
            result = _resolve_parent(world, route, ref)
            results.append(result)
            for port in result.ports:
                if route not in candidates[port][route.namespace]:
                    candidates[port][route.namespace].append(route)
        if results:
            out.parents[(route.kind, route.namespace, route.name)] = results

    conflicted: set[tuple[str, str, PortKey]] = set()
    for port, groups in candidates.items():
        for ns, group in groups.items():
            if any(isinstance(r, GRPCRoute) for r in group) and any(isinstance(r, HTTPRoute) for r in group):
                conflicted |= {(ns, r.name, port) for r in group if isinstance(r, HTTPRoute)}
                group[:] = [r for r in group if isinstance(r, GRPCRoute)]
    out.by_port = {port: {ns: g for ns, g in groups.items() if g} for port, groups in candidates.items()}

    for (kind, ns, name), results in out.parents.items():
        if kind != "HTTPRoute":
            continue
        for i, result in enumerate(results):
            lost = [p for p in result.ports if (ns, name, p) in conflicted]
            if lost and len(lost) == len(result.ports):
                ports = ", ".join(str(p[2]) for p in lost)
                msg = f"a GRPCRoute in namespace {ns} is attached to the same Service port ({ports}); GRPCRoute wins"
                results[i] = ParentResult(result.ref, (), "Conflicted", msg)
            elif lost:
                kept = tuple(p for p in result.ports if p not in lost)
                msg = f"not attached to port(s) {', '.join(str(p[2]) for p in lost)}: a GRPCRoute there wins"
                results[i] = ParentResult(result.ref, kept, "Accepted", msg)
    return out
