"""Route status conditions (docs/gamma.md, "Status"), from the bindings and the rules' decisions: the problems the
Envoy routes were rendered with are the ones the status reports (`decisions.py`)."""

from __future__ import annotations

from ..model import GRPCRoute, HTTPRoute, Route, World
from ..model.status import Condition, ParentStatus, RouteStatuses
from .decisions import Decide, decide
from .ir import RuleDecision
from .mesh.binding import Bindings, ParentResult


def _accepted(result: ParentResult, notes: list[str]) -> Condition:
    if result.reason == "Accepted":
        message = "; ".join([result.message or "attached to the Service", *notes])
        return Condition("Accepted", "True", "Accepted", message)
    return Condition("Accepted", "False", result.reason, result.message)


def _conditions(decisions: list[RuleDecision]) -> tuple[Condition, list[Condition], list[str]]:
    """ResolvedRefs, PartiallyInvalid (if any) and the notes for the Accepted message, of a route's rules."""
    problems = [p for d in decisions for p in d.problems]
    unresolved = [p for p in problems if p.condition == "ResolvedRefs"]
    if unresolved:
        reason = "InvalidKind" if any(p.reason == "InvalidKind" for p in unresolved) else unresolved[0].reason
        resolved = Condition("ResolvedRefs", "False", reason, "; ".join(p.message for p in unresolved))
    else:
        resolved = Condition("ResolvedRefs", "True", "ResolvedRefs", "all backend references resolved")
    unsupported = [p.message for p in problems if p.condition == "PartiallyInvalid"]
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
    return resolved, partial, [n for d in decisions for n in d.notes]


def route_statuses(world: World, bindings: Bindings, decider: Decide | None = None) -> RouteStatuses:
    """`decider` gives a rule's decision (the translation's, shared with its routes); by default decided here."""
    choose: Decide = decider or (lambda route, i: decide(world, route, i))
    out = RouteStatuses()
    for key, results in bindings.parents.items():
        kind, ns, name = key
        route: Route | None = (world.http_routes if kind == "HTTPRoute" else world.grpc_routes).get(
            (ns, name)
        )
        assert isinstance(route, HTTPRoute | GRPCRoute)
        decisions = [choose(route, i) for i in range(len(route.spec.rules))]
        resolved, partial, notes = _conditions(decisions)
        out.routes[key] = [
            ParentStatus(r.ref, (_accepted(r, notes), resolved, *partial), route.metadata.generation)
            for r in results
        ]
    return out
