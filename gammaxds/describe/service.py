"""`gammaxds describe service`: why a request to a Service goes where it goes, for clients in one namespace.

Built from the same Translation the sidecars' config comes from (the bindings, the precedence order, the
backend resolution and the endpoint conditions), so what it says is what the sidecars do. Plain data (JSON for
the admin API); `table.py` renders it for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..model import ObjectError, Route, Service, ServicePort
from ..model.gateway import GRPCRouteMatch, HTTPRouteFilter, HTTPRouteMatch
from ..translate.envoy.endpoints import READY, collect_endpoints
from ..translate.ir import Answer, Redirect, Share
from ..translate.precedence import RuleMatch, ordered_rule_matches
from ..translate.services import is_http, parent_problem, port_protocol
from ..translate.translator import Translation


class UnknownService(LookupError):
    """The Service named is not in the World."""


def _match_text(match: HTTPRouteMatch | GRPCRouteMatch | None) -> str:
    if match is None:
        return "any method"
    parts: list[str] = []
    if isinstance(match, HTTPRouteMatch):
        if match.path is not None:
            parts.append(f"{match.path.type} {match.path.value}")
        if match.method:
            parts.append(f"method {match.method}")
        parts += [
            f"query {q.name}{'~' if q.type == 'RegularExpression' else '='}{q.value}"
            for q in match.query_params
        ]
    else:
        m = match.method
        if m is None:
            parts.append("any method")
        else:
            op = "~" if m.type == "RegularExpression" else ""
            parts.append(f"{op}/{m.service or '*'}/{m.method or '*'}")
    parts += [
        f"header {h.name}{'~' if h.type == 'RegularExpression' else '='}{h.value}" for h in match.headers
    ]
    return ", ".join(parts) or "any request"


def _headers_text(what: str, mods: Any) -> str:
    ops = [f"set {h.name}={h.value}" for h in mods.set]
    ops += [f"add {h.name}={h.value}" for h in mods.add]
    ops += [f"remove {name}" for name in mods.remove]
    return f"{what} headers: {', '.join(ops)}"


def _filter_text(f: HTTPRouteFilter) -> str:
    if f.request_header_modifier:
        return _headers_text("request", f.request_header_modifier)
    if f.response_header_modifier:
        return _headers_text("response", f.response_header_modifier)
    if f.request_redirect:
        r = f.request_redirect
        target = "".join(
            [f"{r.scheme}://" if r.scheme else "", r.hostname or "", f":{r.port}" if r.port else ""]
        )
        path = ""
        if r.path is not None:
            path = f" path {r.path.replace_full_path or r.path.replace_prefix_match or ''} ({r.path.type})"
        return f"redirect {r.status_code} to {target or 'the same host'}{path}"
    if f.url_rewrite:
        u = f.url_rewrite
        parts = [f"host {u.hostname}"] if u.hostname else []
        if u.path is not None:
            parts.append(
                f"path {u.path.replace_full_path or u.path.replace_prefix_match or ''} ({u.path.type})"
            )
        return f"rewrite {', '.join(parts)}"
    if f.request_mirror:
        m = f.request_mirror
        ref = m.backend_ref
        share = ""
        if m.percent is not None:
            share = f" ({m.percent}% of requests)"
        elif m.fraction is not None:
            share = f" ({m.fraction.numerator}/{m.fraction.denominator} of requests)"
        return f"mirror to {ref.namespace + '/' if ref.namespace else ''}{ref.name}:{ref.port}{share}"
    if f.cors:
        return f"CORS from {', '.join(f.cors.allow_origins) or 'no origin'}"
    if f.extension_ref:
        return f"ExtensionRef {f.extension_ref.kind} {f.extension_ref.name}"
    return f.type


def _ready(world_slices: Sequence[Any], port: ServicePort) -> dict[str, int]:
    found = collect_endpoints(port, world_slices)
    ready = sum(1 for prio, _zone in found.values() if prio == READY)
    return {"ready": ready, "fallback": len(found) - ready}


def _backend(translation: Translation, share: Share, total: int) -> dict[str, Any]:
    world = translation.world
    namespace, name = share.service
    out: dict[str, Any] = {
        "service": f"{namespace}/{name}",
        "port": share.port,
        "weight": share.weight,
        "share": round(100 * share.weight / total, 1) if total else 0.0,
        "valid": share.cluster is not None,
        "problem": share.problem,
    }
    if share.cluster is not None:
        service = world.services[share.service]
        port = next(p for p in service.spec.ports if p.port == share.port)
        out["endpoints"] = _ready(world.slices_by_service.get(share.service, []), port)
    return out


def _rule(translation: Translation, rm: RuleMatch) -> dict[str, Any]:
    """One rule, as its decision says (the one the sidecars' routes are rendered from)."""
    route = rm.route
    decision = translation.decision(route, rm.rule_index)
    filters: Sequence[HTTPRouteFilter] = route.spec.rules[rm.rule_index].filters
    out: dict[str, Any] = {
        "route": f"{route.kind} {route.namespace}/{route.name}",
        "rule": rm.rule_index,
        "match": _match_text(rm.match),
        "filters": [_filter_text(f) for f in filters if not f.request_redirect],
        "backends": [],
    }
    action = decision.action
    if isinstance(action, Answer):
        out["answer"] = f"{action.status}: {action.reason}"
        return out
    if isinstance(action, Redirect):
        out["answer"] = _filter_text(next(f for f in filters if f.request_redirect))
        return out
    total = sum(s.weight for s in action.shares)
    out["backends"] = [
        {**_backend(translation, s, total), "answered": action.unresolved_status} for s in action.shares
    ]
    for share in action.shares:
        out["filters"] += [f"to {share.backend}: {_filter_text(f)}" for f in share.filters]
    return out


def _port(translation: Translation, service: Service, port: ServicePort, client: str) -> dict[str, Any]:
    world = translation.world
    key = (service.namespace, service.name, port.port)
    protocol = port_protocol(port)
    out: dict[str, Any] = {
        "port": port.port,
        "name": port.name,
        "protocol": "HTTP" if is_http(port) else protocol,
    }
    own = {"service": f"{service.namespace}/{service.name}", "port": port.port}
    own["endpoints"] = _ready(world.slices_by_service.get((service.namespace, service.name), []), port)
    if parent_problem(service) is not None:
        why = "no cluster IP: clients connect to its endpoints directly, routes do not apply"
        if service.spec.type == "ExternalName":
            why = f"ExternalName ({service.spec.external_name}): clients resolve and connect to it directly"
        out.update(routes="none", why=why, rules=[], default="not routed by the sidecar")
        return out
    if protocol is None:
        out.update(routes="none", why=f"{port.protocol} port: not proxied", rules=[], default="not proxied")
        return out
    if not is_http(port):
        out.update(
            routes="none", why="not an HTTP port: connections are forwarded as TCP", rules=[], default=own
        )
        return out
    group_ns, routes = translation.bindings.routes_for(key, client)
    names = [f"{r.kind} {r.namespace}/{r.name}" for r in routes]
    if not routes:
        out.update(routes="none", why="no route attached: requests go to the Service's own endpoints")
        out.update(rules=[], default=own)
        return out
    if group_ns == service.namespace:
        others = sorted(ns for ns in translation.bindings.by_port.get(key, {}) if ns != service.namespace)
        why = "producer routes (in the Service's namespace): they apply to clients in every namespace"
        if others:
            why += f" that has no consumer routes of its own (those that do: {', '.join(others)})"
        role = "producer"
    else:
        why = (
            f"consumer routes of namespace {group_ns}: routes in the client's own namespace replace the "
            "Service's producer routes for clients there"
        )
        role = "consumer"
    out.update(routes=role, why=why, names=names)
    out["rules"] = [_rule(translation, rm) for rm in ordered_rule_matches(list(routes))]
    out["default"] = "404: no route matched"
    return out


def _problems(translation: Translation, service: Service, errors: Iterable[ObjectError]) -> list[str]:
    """Route conditions that are not as they should be, for routes with a parentRef to this Service, and the
    refused inputs that are this Service or one of those routes."""
    world = translation.world
    out: list[str] = []
    problem = parent_problem(service)
    if problem:
        out.append(problem)
    related = {("Service", service.namespace, service.name)}
    routes: list[Route] = [*world.http_routes.values(), *world.grpc_routes.values()]
    for route in routes:
        if not any(
            ref.is_service
            and (ref.namespace or route.namespace) == service.namespace
            and ref.name == service.name
            for ref in route.spec.parent_refs
        ):
            continue
        related.add((route.kind, route.namespace, route.name))
        for parent in translation.statuses.routes.get((route.kind, route.namespace, route.name), []):
            if parent.parent_ref.name != service.name:
                continue
            for c in parent.conditions:
                bad = c.status == "False" if c.type != "PartiallyInvalid" else c.status == "True"
                if bad:
                    out.append(
                        f"{route.kind} {route.namespace}/{route.name}: {c.type} {c.status} {c.reason}: {c.message}"
                    )
    out += [str(e) for e in errors if (e.kind, e.namespace, e.name) in related]
    return out


def describe_service(
    translation: Translation,
    namespace: str,
    name: str,
    client_namespace: str | None = None,
    errors: Iterable[ObjectError] = (),
) -> dict[str, Any]:
    """What clients in `client_namespace` (default: the Service's own) get from each port of the Service."""
    service = translation.world.services.get((namespace, name))
    if service is None:
        raise UnknownService(f"no Service {namespace}/{name}")
    client = client_namespace or namespace
    return {
        "service": f"{namespace}/{name}",
        "clusterIP": service.cluster_ip,
        "from": client,
        "ports": [_port(translation, service, p, client) for p in service.spec.ports],
        "problems": _problems(translation, service, errors),
    }


def client_namespaces(translation: Translation, namespace: str, name: str) -> list[str]:
    """The namespaces whose clients see something of their own for this Service: its own, then each
    namespace with consumer routes on one of its ports (what `describe` goldens cover)."""
    out = {namespace}
    for (ns, svc, _port), groups in translation.bindings.by_port.items():
        if (ns, svc) == (namespace, name):
            out |= set(groups)
    return [namespace, *sorted(out - {namespace})]
