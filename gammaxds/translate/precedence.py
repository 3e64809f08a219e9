"""Ordering of merged rules across all routes that apply to one Service port (docs/gamma.md, "Precedence").

HTTPRoute: an Exact path first; then a RegularExpression path (ours: regex precedence is implementation-specific;
we put regexes before prefixes, longer patterns first, so a regex is never shadowed by `/`); then the longest
PathPrefix; then having a method; then the most header matches; then the most query matches; then the oldest
route; then `namespace/name`; then rule order; then match order.
GRPCRoute: the longest service, then the longest method, then the most header matches, then as above. Ours
(regex matches are implementation-specific): an Exact service+method (an exact path) first, then
RegularExpression matches (longer service pattern, then longer method pattern, first), then the other Exact
matches by service and method length, then no method match — the same places as Exact, regex and prefix paths
of HTTPRoute, so a regex never shadows an exact method nor is shadowed by a service-wide match. Among Exact
matches this is the spec's order wherever two matches can overlap (the same service, or a method-only match).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model import GRPCRoute, HTTPRoute, Route
from ..model.gateway import GRPCRouteMatch, HTTPRouteMatch
from .envoy.matches import normalized_prefix

_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RuleMatch:
    """One match of one rule of one route: the unit that becomes one Envoy route."""

    route: Route
    rule_index: int
    match_index: int
    match: HTTPRouteMatch | GRPCRouteMatch | None


def _created(route: Route) -> datetime:
    ts = route.metadata.creation_timestamp
    if ts is None:
        return _NEVER
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _http_key(m: HTTPRouteMatch) -> tuple[Any, ...]:
    path = m.path
    if path is None:
        path_rank: tuple[int, int] = (2, -1)
    elif path.type == "Exact":
        path_rank = (0, -len(path.value))
    elif path.type == "RegularExpression":
        path_rank = (1, -len(path.value))
    else:
        path_rank = (2, -len(normalized_prefix(path.value)))
    return (*path_rank, 0 if m.method else 1, -len(m.headers), -len(m.query_params))


def _grpc_key(m: GRPCRouteMatch | None) -> tuple[Any, ...]:
    method = m.method if m else None
    service_len = len(method.service or "") if method else 0
    method_len = len(method.method or "") if method else 0
    if method is None:
        rank = 2
    elif method.type == "RegularExpression":
        rank = 1  # ranked by pattern length only against other regexes: see the module docstring
    else:
        rank = 0 if method.service and method.method else 2
    return (rank, -service_len, -method_len, -len(m.headers) if m else 0)


def precedence_key(rm: RuleMatch) -> tuple[Any, ...]:
    specificity = _http_key(rm.match) if isinstance(rm.match, HTTPRouteMatch) else _grpc_key(rm.match)
    r = rm.route
    return (specificity, _created(r), r.namespace, r.name, rm.rule_index, rm.match_index)


def rule_matches(route: Route) -> list[RuleMatch]:
    out: list[RuleMatch] = []
    if isinstance(route, HTTPRoute):
        for i, rule in enumerate(route.spec.rules):
            matches: list[HTTPRouteMatch] = rule.matches or [HTTPRouteMatch()]
            out += [RuleMatch(route, i, j, m) for j, m in enumerate(matches)]
    elif isinstance(route, GRPCRoute):
        for i, grule in enumerate(route.spec.rules):
            if not grule.matches:
                out.append(RuleMatch(route, i, 0, None))
            out += [RuleMatch(route, i, j, m) for j, m in enumerate(grule.matches)]
    return out


def ordered_rule_matches(routes: list[Route]) -> list[RuleMatch]:
    return sorted((rm for r in routes for rm in rule_matches(r)), key=precedence_key)
