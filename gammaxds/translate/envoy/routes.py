"""The Envoy routes of one Service port for one group of routes (producer, or one namespace's consumers).

Where a rule makes the sidecar answer itself (500 or 503), the route says why, in a body and the
`x-gammaxds-reason` header (see `replies`): the reason names the route and rule, then the problem, in the words
of the route's status."""

from __future__ import annotations

from collections.abc import Sequence

from ...model import GRPCRoute, Route, duration_ms
from ...model.gateway import GRPCRouteMatch, HTTPHeaderFilter, HTTPRouteMatch
from ..backends import INVALID_BACKEND_CLUSTER
from ..decisions import Decide
from ..ir import Answer, Forward, Policies, Redirect, RuleDecision
from ..precedence import RuleMatch, ordered_rule_matches
from .filters import (
    apply_url_rewrite,
    cors_policy,
    header_mutations,
    mirror_policy,
    redirect_action,
    session_policy,
)
from .matches import grpc_match, http_match
from .names import CORS_FILTER, STATEFUL_SESSION_FILTER, route_entry_name
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


def _apply_headers(
    target: rc.Route | rc.WeightedCluster.ClusterWeight,
    request: Sequence[HTTPHeaderFilter],
    response: Sequence[HTTPHeaderFilter],
) -> None:
    for mods in request:
        add, remove = header_mutations(mods)
        target.request_headers_to_add.extend(add)
        target.request_headers_to_remove.extend(remove)
    for mods in response:
        add, remove = header_mutations(mods)
        target.response_headers_to_add.extend(add)
        target.response_headers_to_remove.extend(remove)


def _forward(forward: Forward) -> rc.RouteAction:
    """Weighted backends; invalid ones keep their share and answer it with 500 (gRPC: 503)."""
    valid, invalid = forward.valid, forward.invalid
    invalid_weight = sum(s.weight for s in invalid)
    not_found = (
        rc.RouteAction.SERVICE_UNAVAILABLE
        if forward.unresolved_status == 503
        else rc.RouteAction.INTERNAL_SERVER_ERROR
    )
    action = rc.RouteAction(cluster_not_found_response_code=not_found, timeout=_DISABLED)
    if len(valid) == 1 and not invalid_weight and not valid[0].filters:
        action.cluster = valid[0].cluster or ""
        return action
    for share in valid:
        cw = action.weighted_clusters.clusters.add(name=share.cluster)
        cw.weight.value = share.weight
        _apply_headers(
            cw,
            [f.request_header_modifier for f in share.filters if f.request_header_modifier],
            [f.response_header_modifier for f in share.filters if f.response_header_modifier],
        )
    if invalid_weight:
        cw = action.weighted_clusters.clusters.add(name=INVALID_BACKEND_CLUSTER)
        cw.weight.value = invalid_weight
    return action


def _apply_policies(action: rc.RouteAction, policies: Policies, match: HTTPRouteMatch | None) -> None:
    if policies.url_rewrite is not None:
        apply_url_rewrite(action, policies.url_rewrite.hostname, policies.url_rewrite.path, match)
    for mirror in policies.mirrors:
        action.request_mirror_policies.append(mirror_policy(mirror.cluster, mirror.mirror))
    if policies.timeout_ms is not None:
        action.timeout.CopyFrom(pb_duration(policies.timeout_ms))
    retry, per_try = policies.retry, policies.per_try_timeout_ms
    if retry or per_try is not None:
        policy = action.retry_policy
        if retry and retry.codes:
            # the spec: SHOULD also retry on connection errors when a retry stanza is configured
            policy.retry_on = "connect-failure,refused-stream,reset,retriable-status-codes"
            policy.retriable_status_codes.extend(retry.codes)
        elif retry:
            policy.retry_on = "5xx"
        policy.num_retries.value = (retry.attempts if retry.attempts is not None else 1) if retry else 0
        if retry and retry.backoff and duration_ms(retry.backoff) > 0:
            # backoff is a minimum wait; Envoy refuses a zero base interval, and any wait satisfies `0s`
            policy.retry_back_off.base_interval.CopyFrom(pb_duration(duration_ms(retry.backoff)))
        if per_try is not None:
            policy.per_try_timeout.CopyFrom(pb_duration(per_try))


def rule_route(decision: RuleDecision, rm: RuleMatch, service_port: int) -> rc.Route:
    """One Envoy route per rule and match, rendered from the rule's decision: redirect, backends, or the
    sidecar's own answer saying why."""
    route = rm.route
    http = rm.match if isinstance(rm.match, HTTPRouteMatch) else None
    if isinstance(route, GRPCRoute):
        match = grpc_match(rm.match if isinstance(rm.match, GRPCRouteMatch) else None)
    else:
        assert http is not None
        match = http_match(http)
    out = rc.Route(
        name=route_entry_name(route.kind, route.namespace, route.name, rm.rule_index, rm.match_index),
        match=match,
    )
    action, policies = decision.action, decision.policies
    if isinstance(action, Answer) and action.unsupported:
        return _answer(out, action.status, action.reason)
    _apply_headers(out, policies.request_headers, policies.response_headers)
    if policies.cors is not None:
        out.typed_per_filter_config[CORS_FILTER].CopyFrom(packed(cors_policy(policies.cors)))
    if isinstance(action, Redirect):
        out.redirect.CopyFrom(redirect_action(action.redirect, http, service_port))
        return out
    if isinstance(action, Answer):
        return _answer(out, action.status, action.reason)
    envoy_action = _forward(action)
    if action.invalid:  # the invalid share's answer (cluster not found) reads this: see `replies`
        problems = "; ".join(s.problem for s in action.invalid)
        out.metadata.CopyFrom(metadata(invalid_backends=f"{decision.label}: {problems}"))
    _apply_policies(envoy_action, policies, http)
    out.route.CopyFrom(envoy_action)
    if policies.session is not None:
        out.typed_per_filter_config[STATEFUL_SESSION_FILTER].CopyFrom(
            packed(session_policy(policies.session))
        )
    return out


def build_routes(decide: Decide, routes: Sequence[Route], service_port: int) -> list[rc.Route]:
    """All rules of all routes of a group, merged in precedence order. Nothing matches → Envoy's 404."""
    return [
        rule_route(decide(rm.route, rm.rule_index), rm, service_port)
        for rm in ordered_rule_matches(list(routes))
    ]


def passthrough_route(cluster: str) -> rc.Route:
    """No route attached: the request goes to the Service's own endpoints, as if the mesh were not there."""
    return rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=cluster, timeout=_DISABLED),
    )
