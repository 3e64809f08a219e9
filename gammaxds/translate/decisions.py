"""The mesh front end's decisions: each route rule → `ir.RuleDecision` (what it does, what it references, what
is wrong with it), made once and read by both the Envoy routes (`routes.py`) and the route status
(`statuses.py`). Where a rule's backends or filters are judged, it is here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..model import GRPCRoute, HTTPRoute, Route, World, duration_ms
from ..model.gateway import BackendObjectReference, HTTPBackendRef, HTTPRouteFilter
from .backends import Backend, resolve_backend
from .envoy.filters import unsupported_filters
from .ir import Answer, Forward, Mirror, Policies, Problem, Redirect, RuleDecision, ServiceKey, Share


def unavailable_status(route: Route) -> int:
    """The status for traffic no valid backend can take: 500 for HTTPRoute; 503 for GRPCRoute, whose spec asks for
    gRPC `UNAVAILABLE` — Envoy turns a local 503 into grpc-status 14 (UNAVAILABLE), a 500 into 2 (UNKNOWN)."""
    return 503 if isinstance(route, GRPCRoute) else 500


def _rule_parts(route: Route, index: int) -> tuple[Sequence[HTTPRouteFilter], Sequence[HTTPBackendRef]]:
    rule = route.spec.rules[index]
    return rule.filters, rule.backend_refs  # type: ignore[return-value]  # GRPC filters and refs are subtypes


def _notes(route: Route, index: int) -> tuple[str, ...]:
    """Settings that are accepted but have no effect, so the status says so rather than stay silent."""
    sp = route.spec.rules[index].session_persistence
    out = []
    if sp is not None:
        if sp.idle_timeout:
            out.append(
                f"rules[{index}]: sessionPersistence.idleTimeout is not supported (sessions end by absoluteTimeout only)"
            )
        if sum(1 for b in route.spec.rules[index].backend_refs if b.weight) > 1:
            out.append(
                f"rules[{index}]: sessionPersistence keeps a client on one endpoint of a backend; with several "
                "backendRefs the backend is still chosen by weight on each request"
            )
    return tuple(out)


def _policies(
    route: Route, index: int, filters: Sequence[HTTPRouteFilter], resolved: Mapping[int, Backend]
) -> Policies:
    """`resolved`: the rule's references already resolved, by `id` of the reference."""
    mirrors = []
    for f in filters:
        if f.request_mirror:
            mirror = resolved[id(f.request_mirror.backend_ref)]
            if mirror.valid:
                mirrors.append(Mirror(mirror.cluster, f.request_mirror))
    timeout = per_try = retry = None
    if isinstance(route, HTTPRoute):
        rule = route.spec.rules[index]
        if rule.timeouts and rule.timeouts.request:
            timeout = duration_ms(rule.timeouts.request)
        if rule.timeouts and rule.timeouts.backend_request:
            per_try = duration_ms(rule.timeouts.backend_request)
        retry = rule.retry
    cors = [f.cors for f in filters if f.cors]
    rewrite = [f.url_rewrite for f in filters if f.url_rewrite]
    return Policies(
        request_headers=tuple(f.request_header_modifier for f in filters if f.request_header_modifier),
        response_headers=tuple(f.response_header_modifier for f in filters if f.response_header_modifier),
        url_rewrite=rewrite[0] if rewrite else None,
        cors=cors[-1] if cors else None,
        mirrors=tuple(mirrors),
        timeout_ms=timeout,
        per_try_timeout_ms=per_try,
        retry=retry,
        session=route.spec.rules[index].session_persistence,
    )


def _ref_text(ref: BackendObjectReference, route: Route) -> str:
    return f"{ref.namespace or route.namespace}/{ref.name}:{ref.port}"


def _refs(route: Route, index: int) -> list[BackendObjectReference]:
    filters, backend_refs = _rule_parts(route, index)
    return [*backend_refs, *(f.request_mirror.backend_ref for f in filters if f.request_mirror)]


def _keys(route: Route, refs: Sequence[BackendObjectReference]) -> tuple[ServiceKey, ...]:
    return tuple((ref.namespace or route.namespace, ref.name) for ref in refs)


def rule_references(route: Route, index: int) -> tuple[ServiceKey, ...]:
    """The Services rule `index` of `route` names (backendRefs, then mirrors), resolved or not: its decision
    depends on these and on the route alone, which is what the translator's memo keys it on."""
    return _keys(route, _refs(route, index))


def decide(world: World, route: Route, index: int) -> RuleDecision:
    """The decision for rule `index` of `route`, in the World's current Services (only those of
    `rule_references` are looked at)."""
    filters, backend_refs = _rule_parts(route, index)
    key = (route.kind, route.namespace, route.name)
    refs = _refs(route, index)
    references = _keys(route, refs)
    resolved = {id(ref): resolve_backend(world, ref, route.namespace) for ref in refs}
    problems = []
    for ref in refs:
        backend = resolved[id(ref)]
        if not backend.valid:
            problems.append(Problem("ResolvedRefs", backend.reason, backend.problem))
    unsupported = unsupported_filters(filters, [b.filters for b in backend_refs])
    problems += [Problem("PartiallyInvalid", "UnsupportedValue", f"rules[{index}]: {u}") for u in unsupported]
    label = f"{route.kind} {route.namespace}/{route.name} rules[{index}]"
    policies = _policies(route, index, filters, resolved)
    action: Answer | Redirect | Forward
    redirect = next((f.request_redirect for f in filters if f.request_redirect), None)
    if unsupported:  # never skip a filter silently: the reply and the status name it
        action = Answer(500, f"{label}: {'; '.join(unsupported)} not supported", unsupported=True)
    elif redirect is not None:
        action = Redirect(redirect)
    else:
        shares = []
        for ref in backend_refs:
            if ref.weight == 0:
                continue
            backend = resolved[id(ref)]
            cluster = backend.cluster if backend.valid else None
            shares.append(
                Share(
                    _ref_text(ref, route),
                    ref.weight,
                    cluster,
                    backend.problem,
                    service=(ref.namespace or route.namespace, ref.name),
                    port=ref.port,
                    filters=tuple(ref.filters),
                )
            )
        invalid = [s for s in shares if s.cluster is None]
        if len(invalid) == len(shares):
            if invalid:
                reason = "; ".join(s.problem for s in invalid)
            else:
                reason = "every backendRef has weight 0" if backend_refs else "no backendRefs"
            action = Answer(unavailable_status(route), f"{label}: {reason}")
        else:
            action = Forward(tuple(shares), unavailable_status(route))
    return RuleDecision(key, index, action, policies, references, tuple(problems), _notes(route, index))


Decide = Callable[[Route, int], RuleDecision]
"""How renderers and status get a rule's decision: `decide` bound to a World, or the translation's memo."""
