"""The decisions between the Gateway API and Envoy: what each route rule does, and what is wrong with it.

A front end (the mesh's today: `decisions.py`; a Gateway's next) turns route rules into `RuleDecision`s once;
the Envoy routes are rendered from them (`routes.py`) and the route status is computed from their `problems`
(`statuses.py`), so what a sidecar does and what the status says cannot disagree. `references` are the
Services a decision depends on: the translator's memo keys on them, so a new filter that names a Service needs
declaring here only.

Plain frozen data: no protobuf, nothing Envoy-specific. `ir_report` prints it for the `ir.yaml` goldens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..model.gateway import (
    HTTPCORSFilter,
    HTTPHeaderFilter,
    HTTPRequestMirrorFilter,
    HTTPRequestRedirectFilter,
    HTTPRouteFilter,
    HTTPRouteRetry,
    HTTPURLRewriteFilter,
    SessionPersistence,
)

RouteKey = tuple[str, str, str]  # kind, namespace, name
ServiceKey = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class Problem:
    """Something wrong with a rule, as the route's status reports it."""

    condition: Literal["ResolvedRefs", "PartiallyInvalid"]
    reason: str  # BackendNotFound | InvalidKind (ResolvedRefs); UnsupportedValue (PartiallyInvalid)
    message: str


@dataclass(frozen=True)
class Share:
    """One backendRef with a weight above 0. `cluster` is None when it does not resolve: its share of the
    traffic is then answered by the sidecar (500; 503 for GRPCRoute), saying `problem`."""

    backend: str  # "ns/name:port", as the reference names it
    weight: int
    cluster: str | None
    problem: str = ""
    service: ServiceKey = ("", "")  # the namespace and name the reference names
    port: int | None = None
    filters: tuple[HTTPRouteFilter, ...] = ()  # the backendRef's own (header changes for its share)


@dataclass(frozen=True)
class Forward:
    """To weighted backends; `unresolved_status` answers the share of those that do not resolve."""

    shares: tuple[Share, ...]
    unresolved_status: int

    @property
    def valid(self) -> tuple[Share, ...]:
        return tuple(s for s in self.shares if s.cluster is not None)

    @property
    def invalid(self) -> tuple[Share, ...]:
        return tuple(s for s in self.shares if s.cluster is None)


@dataclass(frozen=True)
class Redirect:
    redirect: HTTPRequestRedirectFilter


@dataclass(frozen=True)
class Answer:
    """The sidecar answers every request of the rule itself, saying why. `unsupported`: because of a filter
    gammaxds does not implement, so none of the rule's other filters applies either."""

    status: int
    reason: str
    unsupported: bool = False


Action = Forward | Redirect | Answer


@dataclass(frozen=True)
class Mirror:
    cluster: str
    mirror: HTTPRequestMirrorFilter


@dataclass(frozen=True)
class Policies:
    """What the rule changes on the way, beside where it sends the request."""

    request_headers: tuple[HTTPHeaderFilter, ...] = ()
    response_headers: tuple[HTTPHeaderFilter, ...] = ()
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    mirrors: tuple[Mirror, ...] = ()
    timeout_ms: int | None = None
    per_try_timeout_ms: int | None = None
    retry: HTTPRouteRetry | None = None
    session: SessionPersistence | None = None


@dataclass(frozen=True)
class RuleDecision:
    """What one rule of one route does, for every Service port it is attached to."""

    route: RouteKey
    rule: int
    action: Action
    policies: Policies
    references: tuple[ServiceKey, ...]  # every Service a backendRef or mirror of the rule names
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()  # accepted settings that have no effect, said in the Accepted message

    @property
    def label(self) -> str:
        kind, ns, name = self.route
        return f"{kind} {ns}/{name} rules[{self.rule}]"


def _action_report(action: Action) -> Any:
    match action:
        case Forward(shares=shares, unresolved_status=status):
            out: dict[str, Any] = {
                "forward": [
                    f"{s.backend} weight {s.weight}" + ("" if s.cluster else f" -> {status}: {s.problem}")
                    for s in shares
                ]
            }
            return out
        case Redirect(redirect=r):
            return {"redirect": r.model_dump(by_alias=True, exclude_none=True)}
        case Answer(status=status, reason=reason, unsupported=_):
            return {"answer": f"{status}: {reason}"}
    raise TypeError(action)


def _policies_report(p: Policies) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.request_headers:
        out["requestHeaders"] = [
            h.model_dump(by_alias=True, exclude_defaults=True) for h in p.request_headers
        ]
    if p.response_headers:
        out["responseHeaders"] = [
            h.model_dump(by_alias=True, exclude_defaults=True) for h in p.response_headers
        ]
    if p.url_rewrite is not None:
        out["urlRewrite"] = p.url_rewrite.model_dump(by_alias=True, exclude_none=True)
    if p.cors is not None:
        out["cors"] = p.cors.model_dump(by_alias=True, exclude_defaults=True)
    if p.mirrors:
        out["mirrors"] = [m.cluster for m in p.mirrors]
    for name in ("timeout_ms", "per_try_timeout_ms"):
        if getattr(p, name) is not None:
            out[name.replace("_ms", "Ms").replace("per_try_timeout", "perTryTimeout")] = getattr(p, name)
    if p.retry is not None:
        out["retry"] = p.retry.model_dump(by_alias=True, exclude_none=True)
    if p.session is not None:
        out["session"] = p.session.model_dump(by_alias=True, exclude_none=True)
    return out


def decision_report(d: RuleDecision) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": d.label, **_action_report(d.action)}
    policies = _policies_report(d.policies)
    if policies:
        out["policies"] = policies
    if d.problems:
        out["problems"] = [f"{p.condition} {p.reason}: {p.message}" for p in d.problems]
    if d.notes:
        out["notes"] = list(d.notes)
    return out


def ir_report(translation: Any) -> dict[str, Any]:
    """The IR of a translation as plain data (the `ir.yaml` goldens): every rule's decision, and per Service
    port and route group (the namespace whose routes they are) the rules in precedence order."""
    from .envoy.names import route_entry_name
    from .precedence import ordered_rule_matches

    world = translation.world
    routes = [*world.http_routes.values(), *world.grpc_routes.values()]
    rules = [
        decision_report(translation.decision(r, i))
        for r in sorted(routes, key=lambda r: (r.kind, r.namespace, r.name))
        if (r.kind, r.namespace, r.name) in translation.bindings.parents
        for i in range(len(r.spec.rules))
    ]
    ports: dict[str, dict[str, list[str]]] = {}
    for (ns, name, port), groups in sorted(translation.bindings.by_port.items()):
        ports[f"{ns}/{name}:{port}"] = {
            group: [
                route_entry_name(
                    rm.route.kind, rm.route.namespace, rm.route.name, rm.rule_index, rm.match_index
                )
                for rm in ordered_rule_matches(list(members))
            ]
            for group, members in sorted(groups.items())
        }
    return {"rules": rules, "ports": ports}
