"""Route status conditions (GAMMA.md, "Status"), computed from the same bindings the views use."""

from __future__ import annotations

from ..model import GRPCRoute, HTTPRoute, Route, World
from ..model.status import Condition, ParentStatus, RouteStatuses
from .backends import resolve_backend
from .binding import Bindings, ParentResult
from .filters import unsupported_filters


def _backend_problems(world: World, route: Route) -> list[tuple[str, str]]:
    """(reason, message) for each backendRef or mirror backendRef that does not resolve."""
    refs = []
    for rule in route.spec.rules:
        refs += list(rule.backend_refs)
        refs += [f.request_mirror.backend_ref for f in rule.filters if f.request_mirror]
    problems = []
    for ref in refs:
        b = resolve_backend(world, ref, route.namespace)
        if not b.valid:
            problems.append((b.reason, b.problem))
    return problems


def _unsupported(route: Route) -> list[str]:
    out = []
    for i, rule in enumerate(route.spec.rules):
        out += [
            f"rules[{i}]: {what}"
            for what in unsupported_filters(rule.filters, [b.filters for b in rule.backend_refs])
        ]
    return out


def _ignored(route: Route) -> list[str]:
    """Settings that are accepted but have no effect, so the status says so rather than stay silent."""
    out = []
    for i, rule in enumerate(route.spec.rules):
        sp = rule.session_persistence
        if sp is None:
            continue
        if sp.idle_timeout:
            out.append(
                f"rules[{i}]: sessionPersistence.idleTimeout is not supported (sessions end by absoluteTimeout only)"
            )
        if sum(1 for b in rule.backend_refs if b.weight) > 1:
            out.append(
                f"rules[{i}]: sessionPersistence keeps a client on one endpoint of a backend; with several "
                "backendRefs the backend is still chosen by weight on each request"
            )
    return out


def _accepted(result: ParentResult, ignored: list[str]) -> Condition:
    if result.reason == "Accepted":
        message = "; ".join([result.message or "attached to the Service", *ignored])
        return Condition("Accepted", "True", "Accepted", message)
    return Condition("Accepted", "False", result.reason, result.message)


def route_statuses(world: World, bindings: Bindings) -> RouteStatuses:
    out = RouteStatuses()
    for key, results in bindings.parents.items():
        kind, ns, name = key
        route: Route | None = (world.http_routes if kind == "HTTPRoute" else world.grpc_routes).get(
            (ns, name)
        )
        assert isinstance(route, HTTPRoute | GRPCRoute)
        problems = _backend_problems(world, route)
        if problems:
            reason = "InvalidKind" if any(r == "InvalidKind" for r, _ in problems) else problems[0][0]
            resolved = Condition("ResolvedRefs", "False", reason, "; ".join(m for _, m in problems))
        else:
            resolved = Condition("ResolvedRefs", "True", "ResolvedRefs", "all backend references resolved")
        unsupported = _unsupported(route)
        partial = (
            [
                Condition(
                    "PartiallyInvalid",
                    "True",
                    "UnsupportedValue",
                    "; ".join(unsupported) + " not supported: the rule answers 500",
                )
            ]
            if unsupported
            else []
        )
        out.routes[key] = [
            ParentStatus(
                r.ref, (_accepted(r, _ignored(route)), resolved, *partial), route.metadata.generation
            )
            for r in results
        ]
    return out
