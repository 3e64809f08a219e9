"""`gateway.networking.k8s.io` HTTPRoute, GRPCRoute and ReferenceGrant, with the API's defaults and limits.

Field names, defaults and bounds follow the upstream `apis/v1` types; the CEL rules of the CRDs that matter for
routing are checked in `model_validator`s so a bad object is refused with the field that is wrong.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import re2
from pydantic import AfterValidator, Field, model_validator

from .base import Duration, K8sModel, Object, PortNumber, duration_ms

GATEWAY_GROUP = "gateway.networking.k8s.io"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_BAD_PATH = re.compile(r"//|/\./|/\.\./|%2[fF]|%2[eE]|#|/\.$|/\.\.$")


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.match(value) or len(value) > 256:
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path {value!r} must start with '/'")
    if _BAD_PATH.search(value):
        raise ValueError(f"path {value!r} must not contain '//', '/./', '/../', '%2f', '%2e' or '#'")
    return value


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


# Envoy refuses a regex whose RE2 program is larger than this (runtime `re2.max_program_size.error_level`).
ENVOY_MAX_RE2_PROGRAM_SIZE = 100


def check_re2(value: str) -> str:
    """Envoy matches with RE2; a pattern it refuses (invalid, or a program too large) would make Envoy reject
    the whole route table, so such a route is refused here, with the reason, and the rest of the mesh is kept."""
    try:
        compiled = re2.compile(value, _RE2_OPTIONS)
    except re2.error as err:
        reason = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise ValueError(f"{value!r} is not a valid RE2 regular expression: {reason}") from None
    if compiled.programsize > ENVOY_MAX_RE2_PROGRAM_SIZE:
        raise ValueError(
            f"{value!r} is too complex for Envoy: RE2 program size {compiled.programsize} > {ENVOY_MAX_RE2_PROGRAM_SIZE}"
            " (simplify it, e.g. replace bounded repetitions like {1,40} with +)"
        )
    return value


HeaderName = Annotated[str, AfterValidator(_check_header_name)]
AbsPath = Annotated[str, Field(max_length=1024), AfterValidator(_check_path)]
Name = Annotated[str, Field(min_length=1, max_length=253)]
Namespace = Annotated[str, Field(min_length=1, max_length=63)]


# --- references -------------------------------------------------------------------------------------------


class ParentReference(K8sModel):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: Namespace | None = None
    name: Name
    section_name: str | None = None
    port: PortNumber | None = None

    @property
    def is_service(self) -> bool:
        return self.group == "" and self.kind == "Service"


class BackendObjectReference(K8sModel):
    group: str = ""
    kind: str = "Service"
    name: Name
    namespace: Namespace | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _port_for_service(self) -> BackendObjectReference:
        if self.group == "" and self.kind == "Service" and self.port is None:
            raise ValueError("port is required when referring to a Service")
        return self


class LocalObjectReference(K8sModel):
    group: str
    kind: str
    name: Name


# --- filters ----------------------------------------------------------------------------------------------


class HTTPHeader(K8sModel):
    name: HeaderName
    value: Annotated[str, Field(max_length=4096)]


def _unique_names(items: list[HTTPHeader] | list[str], what: str) -> None:
    names = [(i if isinstance(i, str) else i.name).lower() for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: header {dupes[0]!r} appears more than once")


class HTTPHeaderFilter(K8sModel):
    set: Annotated[list[HTTPHeader], Field(max_length=16)] = []
    add: Annotated[list[HTTPHeader], Field(max_length=16)] = []
    remove: Annotated[list[HeaderName], Field(max_length=16)] = []

    @model_validator(mode="after")
    def _one_action_per_header(self) -> HTTPHeaderFilter:
        _unique_names(self.set, "set")
        _unique_names(self.add, "add")
        _unique_names(self.remove, "remove")
        return self


class HTTPPathModifier(K8sModel):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: Annotated[str, Field(max_length=1024)] | None = None
    replace_prefix_match: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _value_for_type(self) -> HTTPPathModifier:
        if self.type == "ReplaceFullPath" and self.replace_full_path is None:
            raise ValueError("replaceFullPath must be specified when type is ReplaceFullPath")
        if self.type == "ReplacePrefixMatch" and self.replace_prefix_match is None:
            raise ValueError("replacePrefixMatch must be specified when type is ReplacePrefixMatch")
        if self.type == "ReplaceFullPath" and self.replace_prefix_match is not None:
            raise ValueError("replacePrefixMatch must not be set when type is ReplaceFullPath")
        if self.type == "ReplacePrefixMatch" and self.replace_full_path is not None:
            raise ValueError("replaceFullPath must not be set when type is ReplacePrefixMatch")
        return self

    @property
    def value(self) -> str:
        return (self.replace_full_path if self.type == "ReplaceFullPath" else self.replace_prefix_match) or ""


class HTTPRequestRedirectFilter(K8sModel):
    scheme: Literal["http", "https"] | None = None
    hostname: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(K8sModel):
    hostname: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    path: HTTPPathModifier | None = None


class Fraction(K8sModel):
    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


class HTTPRequestMirrorFilter(K8sModel):
    backend_ref: BackendObjectReference
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            raise ValueError("only one of percent or fraction may be specified")
        return self


_ORIGIN = re.compile(r"^(\*|(https?)://(\*\.)?[A-Za-z0-9.\-]+(:[0-9]{1,5})?)$")


def _check_origin(value: str) -> str:
    if not _ORIGIN.match(value):
        raise ValueError(f"{value!r} is not '*' or scheme://host[:port]")
    return value


class HTTPCORSFilter(K8sModel):
    allow_origins: Annotated[list[Annotated[str, AfterValidator(_check_origin)]], Field(max_length=64)] = []
    allow_credentials: bool | None = None
    allow_methods: Annotated[list[str], Field(max_length=9)] = []
    allow_headers: Annotated[list[HeaderName | Literal["*"]], Field(max_length=64)] = []
    expose_headers: Annotated[list[HeaderName | Literal["*"]], Field(max_length=64)] = []
    max_age: Annotated[int, Field(ge=1)] = 5

    @model_validator(mode="after")
    def _wildcards_alone(self) -> HTTPCORSFilter:
        for what, values in (("allowOrigins", self.allow_origins), ("allowMethods", self.allow_methods)):
            if "*" in values and len(values) > 1:
                raise ValueError(f"{what}: '*' must be the only entry when present")
        return self


FilterType = Literal[
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "CORS",
    "ExtensionRef",
]
_FILTER_FIELD = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "CORS": "cors",
    "ExtensionRef": "extension_ref",
}


class HTTPRouteFilter(K8sModel):
    type: FilterType
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = Field(default=None, alias="urlRewrite")
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _config_matches_type(self) -> HTTPRouteFilter:
        for type_, attr in _FILTER_FIELD.items():
            present = getattr(self, attr) is not None
            if type_ == self.type and not present:
                raise ValueError(f"filter of type {type_} needs its {attr_alias(attr)} field")
            if type_ != self.type and present:
                raise ValueError(f"{attr_alias(attr)} must not be set for a filter of type {self.type}")
        return self


def attr_alias(attr: str) -> str:
    return HTTPRouteFilter.model_fields[attr].alias or attr


def _check_filter_set(filters: list[HTTPRouteFilter], *, with_backends: bool) -> None:
    """The CRD's CEL rules on a filter list."""
    types = [f.type for f in filters]
    for once in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "CORS"):
        if types.count(once) > 1:
            raise ValueError(f"filters: {once} may appear at most once")
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise ValueError("filters: RequestRedirect and URLRewrite cannot be used together")
    if "RequestRedirect" in types and with_backends:
        raise ValueError("filters: RequestRedirect cannot be used together with backendRefs")


# --- HTTPRoute --------------------------------------------------------------------------------------------


class HTTPPathMatch(K8sModel):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[str, Field(max_length=1024)] = "/"

    @model_validator(mode="after")
    def _valid_path(self) -> HTTPPathMatch:
        if self.type != "RegularExpression":
            _check_path(self.value)
        else:
            check_re2(self.value)
        return self


class HTTPHeaderMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(max_length=4096)]

    @model_validator(mode="after")
    def _regex(self) -> HTTPHeaderMatch:
        if self.type == "RegularExpression":
            check_re2(self.value)
        return self


class HTTPQueryParamMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[str, Field(min_length=1, max_length=1024)]

    @model_validator(mode="after")
    def _regex(self) -> HTTPQueryParamMatch:
        if self.type == "RegularExpression":
            check_re2(self.value)
        return self


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


def _unique_match_names(
    items: list[HTTPHeaderMatch] | list[HTTPQueryParamMatch], what: str, fold: bool
) -> None:
    names = [i.name.lower() if fold else i.name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: {dupes[0]!r} appears more than once")


class HTTPRouteMatch(K8sModel):
    path: HTTPPathMatch | None = HTTPPathMatch()
    headers: Annotated[list[HTTPHeaderMatch], Field(max_length=16)] = []
    query_params: Annotated[list[HTTPQueryParamMatch], Field(max_length=16)] = []
    method: HTTPMethod | None = None

    @model_validator(mode="after")
    def _unique(self) -> HTTPRouteMatch:
        _unique_match_names(self.headers, "headers", fold=True)
        _unique_match_names(self.query_params, "queryParams", fold=False)
        return self


class HTTPBackendRef(BackendObjectReference):
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    filters: Annotated[list[HTTPRouteFilter], Field(max_length=16)] = []

    @model_validator(mode="after")
    def _filters(self) -> HTTPBackendRef:
        _check_filter_set(self.filters, with_backends=False)
        for f in self.filters:
            if f.type in ("RequestRedirect", "URLRewrite", "CORS"):
                raise ValueError(f"filters: {f.type} is not supported on a backendRef")
        return self


class HTTPRouteTimeouts(K8sModel):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_within_request(self) -> HTTPRouteTimeouts:
        """The CRD's CEL rule: one try cannot outlast the whole request (unless the request has no timeout)."""
        if (
            self.request is not None
            and self.backend_request is not None
            and duration_ms(self.request) != 0
            and duration_ms(self.backend_request) > duration_ms(self.request)
        ):
            raise ValueError("backendRequest timeout cannot be longer than request timeout")
        return self


class HTTPRouteRetry(K8sModel):
    codes: list[Annotated[int, Field(ge=400, le=599)]] = []
    attempts: Annotated[int, Field(ge=0)] | None = None
    backoff: Duration | None = None


class CookieConfig(K8sModel):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


class SessionPersistence(K8sModel):
    session_name: Annotated[str, Field(max_length=128)] | None = None
    absolute_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _permanent_needs_timeout(self) -> SessionPersistence:
        if (
            self.cookie_config
            and self.cookie_config.lifetime_type == "Permanent"
            and not self.absolute_timeout
        ):
            raise ValueError("absoluteTimeout must be specified when cookieConfig.lifetimeType is Permanent")
        return self


class HTTPRouteRule(K8sModel):
    name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    matches: Annotated[list[HTTPRouteMatch], Field(max_length=64)] = [HTTPRouteMatch()]
    filters: Annotated[list[HTTPRouteFilter], Field(max_length=16)] = []
    backend_refs: Annotated[list[HTTPBackendRef], Field(max_length=16)] = []
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _rules(self) -> HTTPRouteRule:
        _check_filter_set(self.filters, with_backends=bool(self.backend_refs))
        for f in self.filters:
            modifier = (
                f.url_rewrite.path
                if f.url_rewrite
                else f.request_redirect.path
                if f.request_redirect
                else None
            )
            if modifier and modifier.type == "ReplacePrefixMatch":
                for m in self.matches:
                    if m.path is None or m.path.type != "PathPrefix":
                        raise ValueError(
                            f"filters: {f.type} with ReplacePrefixMatch needs every match to have a PathPrefix path"
                        )
        return self


class CommonRouteSpec(K8sModel):
    parent_refs: Annotated[list[ParentReference], Field(max_length=32)] = []
    hostnames: Annotated[list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=16)] = []


class HTTPRouteSpec(CommonRouteSpec):
    rules: Annotated[list[HTTPRouteRule], Field(max_length=16)] = [HTTPRouteRule()]

    @model_validator(mode="after")
    def _match_total(self) -> HTTPRouteSpec:
        total = sum(len(r.matches) for r in self.rules)
        if total > 128:
            raise ValueError(f"rules: {total} matches in all; at most 128 are allowed per route")
        names = [r.name for r in self.rules if r.name]
        if len(names) != len(set(names)):
            raise ValueError("rules: rule names must be unique within the route")
        return self


class RouteParentStatus(K8sModel):
    parent_ref: ParentReference
    controller_name: str
    conditions: list[dict[str, object]] = []


class RouteStatus(K8sModel):
    parents: list[RouteParentStatus] = []


class HTTPRoute(Object):
    kind: str = "HTTPRoute"
    spec: HTTPRouteSpec = HTTPRouteSpec()
    status: RouteStatus | None = None


# --- GRPCRoute --------------------------------------------------------------------------------------------


_GRPC_SERVICE = re.compile(r"^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", re.IGNORECASE)


class GRPCMethodMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(max_length=1024)] | None = None
    method: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _one_set(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            raise ValueError("one or both of service and method must be specified")
        if self.type == "Exact":
            if self.service is not None and not _GRPC_SERVICE.match(self.service):
                raise ValueError(f"service {self.service!r} is not a valid gRPC service name")
            if self.method is not None and not re.match(r"^[A-Za-z_][A-Za-z_0-9]*$", self.method):
                raise ValueError(f"method {self.method!r} is not a valid gRPC method name")
        else:
            for part in (self.service, self.method):
                if part is not None:
                    check_re2(part)
        return self


class GRPCHeaderMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=4096)]

    @model_validator(mode="after")
    def _regex(self) -> GRPCHeaderMatch:
        if self.type == "RegularExpression":
            check_re2(self.value)
        return self


class GRPCRouteMatch(K8sModel):
    method: GRPCMethodMatch | None = None
    headers: Annotated[list[GRPCHeaderMatch], Field(max_length=16)] = []


GRPCFilterType = Literal["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"]


class GRPCRouteFilter(HTTPRouteFilter):
    type: GRPCFilterType


class GRPCBackendRef(BackendObjectReference):
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    filters: Annotated[list[GRPCRouteFilter], Field(max_length=16)] = []


class GRPCRouteRule(K8sModel):
    name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    matches: Annotated[list[GRPCRouteMatch], Field(max_length=8)] = []  # upstream: MaxItems=8 (HTTPRoute: 64)
    filters: Annotated[list[GRPCRouteFilter], Field(max_length=16)] = []
    backend_refs: Annotated[list[GRPCBackendRef], Field(max_length=16)] = []
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _filters(self) -> GRPCRouteRule:
        _check_filter_set(list(self.filters), with_backends=False)
        return self


class GRPCRouteSpec(CommonRouteSpec):
    rules: Annotated[list[GRPCRouteRule], Field(max_length=16)] = [GRPCRouteRule()]


class GRPCRoute(Object):
    kind: str = "GRPCRoute"
    spec: GRPCRouteSpec = GRPCRouteSpec()
    status: RouteStatus | None = None


# --- ReferenceGrant ---------------------------------------------------------------------------------------


class ReferenceGrantFrom(K8sModel):
    group: str
    kind: str
    namespace: Namespace


class ReferenceGrantTo(K8sModel):
    group: str
    kind: str
    name: Name | None = None


class ReferenceGrantSpec(K8sModel):
    from_: Annotated[list[ReferenceGrantFrom], Field(min_length=1, max_length=16, alias="from")]
    to: Annotated[list[ReferenceGrantTo], Field(min_length=1, max_length=16)]


class ReferenceGrant(Object):
    kind: str = "ReferenceGrant"
    spec: ReferenceGrantSpec


Route = HTTPRoute | GRPCRoute
