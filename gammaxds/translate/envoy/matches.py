"""HTTPRoute and GRPCRoute matches → Envoy RouteMatch."""

from __future__ import annotations

from ...model.gateway import GRPCRouteMatch, HTTPRouteMatch
from .protos import route_components_pb2 as rc
from .protos import string_exact, string_pb2, string_regex


def normalized_prefix(value: str) -> str:
    """GAMMA's PathPrefix is element-wise and ignores a trailing `/`: `/foo/` means `/foo`."""
    return value.rstrip("/") or "/"


def _string(kind: str, value: str) -> string_pb2.StringMatcher:
    return string_regex(value) if kind == "RegularExpression" else string_exact(value)


def http_match(match: HTTPRouteMatch) -> rc.RouteMatch:
    out = rc.RouteMatch()
    path = match.path
    if path is None or (path.type == "PathPrefix" and normalized_prefix(path.value) == "/"):
        out.prefix = "/"
    elif path.type == "Exact":
        out.path = path.value
    elif path.type == "PathPrefix":
        out.path_separated_prefix = normalized_prefix(path.value)  # `/foo` matches /foo, /foo/, /foo/bar only
    else:
        out.safe_regex.regex = path.value
    for h in match.headers:
        out.headers.add(name=h.name.lower(), string_match=_string(h.type, h.value))
    if match.method:
        out.headers.add(name=":method", string_match=string_exact(match.method))
    for q in match.query_params:
        out.query_parameters.add(name=q.name, string_match=_string(q.type, q.value))
    return out


def grpc_match(match: GRPCRouteMatch | None) -> rc.RouteMatch:
    """gRPC calls are `POST /<service>/<method>`: service and method become a path match."""
    out = rc.RouteMatch()
    m = match.method if match else None
    if m is None:
        out.prefix = "/"
    elif m.type == "Exact" and m.service and m.method:
        out.path = f"/{m.service}/{m.method}"
    elif m.type == "Exact" and m.service:
        out.prefix = f"/{m.service}/"
    elif m.type == "Exact":
        out.safe_regex.regex = f"/[^/]+/{m.method}"
    else:
        # each part in its own group: `foo|bar` must stay within the service element (Envoy full-matches the path)
        out.safe_regex.regex = f"/(?:{m.service or '[^/]+'})/(?:{m.method or '[^/]+'})"
    for h in match.headers if match else []:
        out.headers.add(name=h.name.lower(), string_match=_string(h.type, h.value))
    return out
