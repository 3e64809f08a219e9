"""Gateway API filters → Envoy route configuration, one small function per filter."""

from __future__ import annotations

import re
from collections.abc import Sequence

from google.protobuf.message import Message

from ...model import duration_ms
from ...model.gateway import (
    HTTPCORSFilter,
    HTTPHeaderFilter,
    HTTPPathModifier,
    HTTPRequestMirrorFilter,
    HTTPRequestRedirectFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
    SessionPersistence,
)
from .matches import normalized_prefix
from .protos import (
    base_pb2,
    cookie_state_pb2,
    cors_pb2,
    extension_pb2,
    header_state_pb2,
    http_cookie_pb2,
    packed,
    percent_pb2,
    regex_pb2,
    stateful_session_pb2,
    string_exact,
    string_pb2,
    string_regex,
)
from .protos import duration_ms as pb_duration
from .protos import route_components_pb2 as rc

_WELL_KNOWN = {"http": 80, "https": 443}
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def header_mutations(
    f: HTTPHeaderFilter,
) -> tuple[list[base_pb2.HeaderValueOption], list[str]]:
    """`set` overwrites, `add` appends, `remove` deletes: (headers to add, header names to remove)."""
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    append = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    add = [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=h.name, value=h.value), append_action=overwrite
        )
        for h in f.set
    ]
    add += [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=h.name, value=h.value), append_action=append
        )
        for h in f.add
    ]
    return add, [name.lower() for name in f.remove]


def _prefix_rewrite(match: HTTPRouteMatch | None, replacement: str) -> regex_pb2.RegexMatchAndSubstitute:
    """Element-wise ReplacePrefixMatch: `/foo/bar` under `/foo` → `/xyz/bar`, or `/bar` when replaced by `/`.

    Envoy's `prefix_rewrite` is character-wise (`/foo/bar` → `//bar`), so a regex on the path (Envoy leaves the
    query string alone) does it element-wise, never producing `//`.
    """
    prefix = normalized_prefix(match.path.value) if match and match.path else "/"
    prefix = "" if prefix == "/" else prefix
    target = replacement.rstrip("/")
    if not target:
        return regex_pb2.RegexMatchAndSubstitute(
            pattern=regex_pb2.RegexMatcher(regex=f"^{re.escape(prefix)}/*"), substitution="/"
        )
    return regex_pb2.RegexMatchAndSubstitute(
        pattern=regex_pb2.RegexMatcher(regex=f"^{re.escape(prefix)}"), substitution=_literal(target)
    )


def _literal(value: str) -> str:
    """An RE2 substitution that produces `value` as is: `\\N` in a substitution means capture group N."""
    return value.replace("\\", "\\\\")


def _full_path_rewrite(path: str) -> regex_pb2.RegexMatchAndSubstitute:
    return regex_pb2.RegexMatchAndSubstitute(
        pattern=regex_pb2.RegexMatcher(regex="^/.*$"), substitution=_literal(path)
    )


def redirect_action(
    f: HTTPRequestRedirectFilter, match: HTTPRouteMatch | None, service_port: int
) -> rc.RedirectAction:
    """The redirect port rules (docs/gamma.md, "Filters"); the "listener port" of the Gateway spec is the Service port dialed.

    What Envoy does (checked against Envoy 1.40): without `port_redirect` it keeps the request's Host, port
    included (dropping `:80` only when the scheme changes away from http), or uses `host_redirect` as is; with
    `port_redirect` it always writes that port, even 80 or 443. So a port is set only when it must change, and a
    well-known port is left out when the host has none: a new `hostname`, or a client that dialed port 80.
    One case Envoy cannot express: a scheme change (or an explicit well-known port) on a Service port other than
    80 keeps the host but must drop the client's port, so `Location` carries `:443` (or `:80`) explicitly,
    which the spec discourages (SHOULD NOT) but which names the same URL.
    """
    out = rc.RedirectAction(response_code=_REDIRECT_CODES[f.status_code])
    if f.scheme:
        out.scheme_redirect = f.scheme
    if f.hostname:
        out.host_redirect = f.hostname
    scheme = f.scheme or "http"
    port = f.port or (_WELL_KNOWN[f.scheme] if f.scheme else service_port)
    well_known = _WELL_KNOWN.get(scheme) == port
    host_without_port = bool(f.hostname) or service_port == _WELL_KNOWN["http"]
    if not (well_known and host_without_port) and (port != service_port or f.scheme or f.hostname):
        out.port_redirect = port
    if f.path is not None:
        _set_path(out, f.path, match)
    return out


def _set_path(
    target: rc.RedirectAction | rc.RouteAction, path: HTTPPathModifier, match: HTTPRouteMatch | None
) -> None:
    if path.type == "ReplaceFullPath":
        if isinstance(target, rc.RedirectAction):
            target.path_redirect = path.value
        else:
            target.regex_rewrite.CopyFrom(_full_path_rewrite(path.value))
    else:
        target.regex_rewrite.CopyFrom(_prefix_rewrite(match, path.value))


def apply_url_rewrite(
    action: rc.RouteAction, hostname: str | None, path: HTTPPathModifier | None, match: HTTPRouteMatch | None
) -> None:
    if hostname:
        action.host_rewrite_literal = hostname
    if path is not None:
        _set_path(action, path, match)


def mirror_policy(cluster: str, f: HTTPRequestMirrorFilter) -> rc.RouteAction.RequestMirrorPolicy:
    """`percent` or `fraction` of requests, 100% when neither; Envoy drops the mirror's responses."""
    policy = rc.RouteAction.RequestMirrorPolicy(cluster=cluster)
    if f.fraction is not None:
        numerator = f.fraction.numerator * 1_000_000 // f.fraction.denominator
        fraction = percent_pb2.FractionalPercent(
            numerator=numerator, denominator=percent_pb2.FractionalPercent.MILLION
        )
    elif f.percent is not None and f.percent < 100:
        fraction = percent_pb2.FractionalPercent(
            numerator=f.percent, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    else:
        return policy
    policy.runtime_fraction.default_value.CopyFrom(fraction)
    return policy


def _origin_matcher(origin: str) -> string_pb2.StringMatcher:
    if origin == "*":
        return string_regex(".*")
    if "://*." in origin:
        scheme, rest = origin.split("://*.", 1)
        return string_regex(f"{re.escape(scheme)}://[^/]+\\.{re.escape(rest)}")
    return string_exact(origin)


def cors_policy(f: HTTPCORSFilter) -> cors_pb2.CorsPolicy:
    policy = cors_pb2.CorsPolicy(
        allow_origin_string_match=[_origin_matcher(o) for o in f.allow_origins],
        allow_methods=", ".join(f.allow_methods),
        allow_headers=", ".join(f.allow_headers),
        expose_headers=", ".join(f.expose_headers),
        max_age=str(f.max_age),
    )
    if f.allow_credentials is not None:
        policy.allow_credentials.value = f.allow_credentials
    return policy


def unsupported_filters(
    filters: Sequence[HTTPRouteFilter], backend_filters: Sequence[Sequence[HTTPRouteFilter]]
) -> list[str]:
    """Filters a rule uses that gammaxds does not implement. Such a rule answers 500 rather than skip them."""
    out = []
    for f in filters:
        if f.extension_ref:
            out.append(f"ExtensionRef {f.extension_ref.group}/{f.extension_ref.kind} {f.extension_ref.name}")
        out += _host_header_changes(f)
    for i, fs in enumerate(backend_filters):
        for f in fs:
            if f.extension_ref:
                out.append(
                    f"backendRefs[{i}] ExtensionRef {f.extension_ref.group}/{f.extension_ref.kind} {f.extension_ref.name}"
                )
            elif f.request_mirror:
                out.append(f"backendRefs[{i}] RequestMirror (mirroring is supported on rules only)")
            out += [f"backendRefs[{i}] {what}" for what in _host_header_changes(f)]
    return out


def _host_header_changes(f: HTTPRouteFilter) -> list[str]:
    """Header modifiers that touch `Host`. Envoy refuses any route table that adds, sets or removes `host`
    (":-prefixed or host headers may not be modified"), which would NACK every Service's routes in the view;
    such a rule answers 500 instead, and the status says to use URLRewrite `hostname`."""
    out = []
    for kind, modifier in (
        ("RequestHeaderModifier", f.request_header_modifier),
        ("ResponseHeaderModifier", f.response_header_modifier),
    ):
        if modifier is None:
            continue
        names = [h.name for h in (*modifier.set, *modifier.add)] + list(modifier.remove)
        if any(n.lower() == "host" for n in names):
            out.append(f"{kind} on the Host header (use URLRewrite hostname to change Host)")
    return out


DEFAULT_SESSION_COOKIE = "gammaxds-session"
DEFAULT_SESSION_HEADER = "x-gammaxds-session"


def session_policy(sp: SessionPersistence) -> stateful_session_pb2.StatefulSessionPerRoute:
    """Session persistence with Envoy's stateful session filter: the upstream host is remembered in a cookie
    (`absoluteTimeout` is its lifetime; a Session cookie has none) or in a header the client echoes back.
    `idleTimeout` has no Envoy equivalent; the route status says so."""
    if sp.type == "Header":
        name = "envoy.http.stateful_session.header"
        state: Message = header_state_pb2.HeaderBasedSessionState(
            name=sp.session_name or DEFAULT_SESSION_HEADER
        )
    else:
        name = "envoy.http.stateful_session.cookie"
        cookie = http_cookie_pb2.Cookie(name=sp.session_name or DEFAULT_SESSION_COOKIE, path="/")
        if sp.absolute_timeout:
            cookie.ttl.CopyFrom(pb_duration(duration_ms(sp.absolute_timeout)))
        state = cookie_state_pb2.CookieBasedSessionState(cookie=cookie)
    session = stateful_session_pb2.StatefulSession(
        session_state=extension_pb2.TypedExtensionConfig(name=name, typed_config=packed(state))
    )
    return stateful_session_pb2.StatefulSessionPerRoute(stateful_session=session)
