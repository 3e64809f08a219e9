"""The Envoy routes of one Service port for one group of routes (producer, or one namespace's consumers).

Where a rule makes the sidecar answer itself (500 or 503), the route says why, in a body and the
`x-gammaxds-reason` header (see `replies`): the reason names the route and rule, then the problem, in the words
of the route's status."""

from __future__ import annotations

from collections.abc import Sequence

from ..model import GRPCRoute, HTTPRoute, Route, World, duration_ms
from ..model.gateway import GRPCRouteMatch, HTTPBackendRef, HTTPRouteFilter, HTTPRouteMatch
from .backends import INVALID_BACKEND_CLUSTER, Backend, resolve_backend
from .filters import (
    apply_url_rewrite,
    cors_policy,
    header_mutations,
    mirror_policy,
    redirect_action,
    session_policy,
    unsupported_filters,
)
from .matches import grpc_match, http_match
from .names import CORS_FILTER, STATEFUL_SESSION_FILTER, route_entry_name
from .precedence import RuleMatch, ordered_rule_matches
from .protos import base_pb2, packed
from .protos import duration_ms as pb_duration
from .protos import route_components_pb2 as rc
from .replies import metadata, reason_header

_DISABLED = pb_duration(0)  # GAMMA: no timeout unless the route sets one, as if the mesh were not there


def _answer(out: rc.Route, status: int, reason: str) -> rc.Route:
    """`out` answers every request itself with `status`, saying why in the body and the reason header (a direct
    response carries no response flag, so the connection manager's local reply mappers do not see it)."""
    out.direct_response.CopyFrom(
        rc.DirectResponseAction(status=status, body=base_pb2.DataSource(inline_string=reason))
    )
    out.response_headers_to_add.append(reason_header(reason))
    return out


def _rule_label(route: Route, rule: int) -> str:
    return f"{route.kind} {route.namespace}/{route.name} rules[{rule}]"


def _unavailable(route: Route) -> int:
    """The status for traffic no valid backend can take: 500 for HTTPRoute; 503 for GRPCRoute, whose spec asks for
    gRPC `UNAVAILABLE` — Envoy turns a local 503 into grpc-status 14 (UNAVAILABLE), a 500 into 2 (UNKNOWN)."""
    return 503 if isinstance(route, GRPCRoute) else 500


def _apply_headers(
    target: rc.Route | rc.WeightedCluster.ClusterWeight, filters: Sequence[HTTPRouteFilter]
) -> None:
    for f in filters:
        if f.request_header_modifier:
            add, remove = header_mutations(f.request_header_modifier)
            target.request_headers_to_add.extend(add)
            target.request_headers_to_remove.extend(remove)
        if f.response_header_modifier:
            add, remove = header_mutations(f.response_header_modifier)
            target.response_headers_to_add.extend(add)
            target.response_headers_to_remove.extend(remove)


Share = tuple[Backend, int, Sequence[HTTPRouteFilter]]


def _shares(
    world: World, route: Route, backend_refs: Sequence[HTTPBackendRef]
) -> tuple[list[Share], list[Share]]:
    """The backendRefs that get traffic (weight above 0), valid and invalid."""
    valid: list[Share] = []
    invalid: list[Share] = []
    for ref in backend_refs:
        if ref.weight == 0:
            continue
        backend = resolve_backend(world, ref, route.namespace)
        (valid if backend.valid else invalid).append((backend, ref.weight, ref.filters))
    return valid, invalid


def _problems(invalid: Sequence[Share]) -> str:
    return "; ".join(backend.problem for backend, _w, _f in invalid)


def _no_backend_reason(backend_refs: Sequence[HTTPBackendRef], invalid: Sequence[Share]) -> str:
    """Why no backend takes a rule's traffic."""
    if invalid:
        return _problems(invalid)
    if backend_refs:
        return "every backendRef has weight 0"
    return "no backendRefs"


def _backend_action(route: Route, weighted: Sequence[Share], invalid: Sequence[Share]) -> rc.RouteAction:
    """Weighted backends; invalid ones keep their share and answer it with 500 (gRPC: 503)."""
    invalid_weight = sum(weight for _b, weight, _f in invalid)
    not_found = (
        rc.RouteAction.SERVICE_UNAVAILABLE
        if _unavailable(route) == 503
        else rc.RouteAction.INTERNAL_SERVER_ERROR
    )
    action = rc.RouteAction(cluster_not_found_response_code=not_found, timeout=_DISABLED)
    if len(weighted) == 1 and not invalid_weight and not weighted[0][2]:
        action.cluster = weighted[0][0].cluster
        return action
    for backend, weight, filters in weighted:
        cw = action.weighted_clusters.clusters.add(name=backend.cluster)
        cw.weight.value = weight
        _apply_headers(cw, filters)
    if invalid_weight:
        cw = action.weighted_clusters.clusters.add(name=INVALID_BACKEND_CLUSTER)
        cw.weight.value = invalid_weight
    return action


def _apply_policies(
    world: World, action: rc.RouteAction, route: Route, rm: RuleMatch, filters: Sequence[HTTPRouteFilter]
) -> None:
    match = rm.match if isinstance(rm.match, HTTPRouteMatch) else None
    for f in filters:
        if f.url_rewrite:
            apply_url_rewrite(action, f.url_rewrite.hostname, f.url_rewrite.path, match)
        if f.request_mirror:
            mirror = resolve_backend(world, f.request_mirror.backend_ref, route.namespace)
            if mirror.valid:
                action.request_mirror_policies.append(mirror_policy(mirror.cluster, f.request_mirror))
    if isinstance(route, HTTPRoute):
        rule = route.spec.rules[rm.rule_index]
        if rule.timeouts and rule.timeouts.request:
            action.timeout.CopyFrom(pb_duration(duration_ms(rule.timeouts.request)))
        retry = rule.retry
        per_try = rule.timeouts.backend_request if rule.timeouts else None
        if retry or per_try:
            policy = action.retry_policy
            if retry and retry.codes:
                # the spec: SHOULD also retry on connection errors when a retry stanza is configured
                policy.retry_on = "connect-failure,refused-stream,reset,retriable-status-codes"
                policy.retriable_status_codes.extend(retry.codes)
            elif retry:
                policy.retry_on = "5xx"
            policy.num_retries.value = (
                (retry.attempts if retry and retry.attempts is not None else 1) if retry else 0
            )
            if retry and retry.backoff and duration_ms(retry.backoff) > 0:
                # backoff is a minimum wait; Envoy refuses a zero base interval, and any wait satisfies `0s`
                policy.retry_back_off.base_interval.CopyFrom(pb_duration(duration_ms(retry.backoff)))
            if per_try:
                policy.per_try_timeout.CopyFrom(pb_duration(duration_ms(per_try)))


def rule_route(world: World, rm: RuleMatch, service_port: int) -> rc.Route:
    """One Envoy route per rule and match: redirect, backends, or the sidecar's own answer saying why."""
    route = rm.route
    if isinstance(route, GRPCRoute):
        grule = route.spec.rules[rm.rule_index]
        match = grpc_match(rm.match if isinstance(rm.match, GRPCRouteMatch) else None)
        filters: Sequence[HTTPRouteFilter] = grule.filters
        backend_refs: Sequence[HTTPBackendRef] = grule.backend_refs  # type: ignore[assignment]
    else:
        rule = route.spec.rules[rm.rule_index]
        assert isinstance(rm.match, HTTPRouteMatch)
        match = http_match(rm.match)
        filters, backend_refs = rule.filters, rule.backend_refs
    out = rc.Route(
        name=route_entry_name(route.kind, route.namespace, route.name, rm.rule_index, rm.match_index),
        match=match,
    )
    label = _rule_label(route, rm.rule_index)
    unsupported = unsupported_filters(filters, [b.filters for b in backend_refs])
    if unsupported:  # never skip a filter silently: the reply and the status name it
        return _answer(out, 500, f"{label}: {'; '.join(unsupported)} not supported")
    _apply_headers(out, filters)
    for f in filters:
        if f.cors:
            out.typed_per_filter_config[CORS_FILTER].CopyFrom(packed(cors_policy(f.cors)))
        if f.request_redirect:
            out.redirect.CopyFrom(
                redirect_action(
                    f.request_redirect,
                    rm.match if isinstance(rm.match, HTTPRouteMatch) else None,
                    service_port,
                )
            )
            return out
    valid, invalid = _shares(world, route, backend_refs)
    if not valid:
        return _answer(out, _unavailable(route), f"{label}: {_no_backend_reason(backend_refs, invalid)}")
    action = _backend_action(route, valid, invalid)
    if invalid:  # the invalid share's answer (cluster not found) reads this: see `replies`
        out.metadata.CopyFrom(metadata(invalid_backends=f"{label}: {_problems(invalid)}"))
    _apply_policies(world, action, route, rm, filters)
    out.route.CopyFrom(action)
    sp = route.spec.rules[rm.rule_index].session_persistence
    if sp is not None:
        out.typed_per_filter_config[STATEFUL_SESSION_FILTER].CopyFrom(packed(session_policy(sp)))
    return out


def build_routes(world: World, routes: Sequence[Route], service_port: int) -> list[rc.Route]:
    """All rules of all routes of a group, merged in precedence order. Nothing matches → Envoy's 404."""
    return [rule_route(world, rm, service_port) for rm in ordered_rule_matches(list(routes))]


def passthrough_route(cluster: str) -> rc.Route:
    """No route attached: the request goes to the Service's own endpoints, as if the mesh were not there."""
    return rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=cluster, timeout=_DISABLED),
    )
