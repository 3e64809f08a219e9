"""The trickiest filter translations, checked by what they do rather than by the config they produce:
element-wise ReplacePrefixMatch (applied with RE2, as Envoy applies `regex_rewrite`), the redirect port rules
(with Envoy's measured way of building `Location`), and the filters Envoy would refuse."""

from __future__ import annotations

import pytest
import re2

from gammaxds.model.gateway import (
    HTTPPathModifier,
    HTTPRequestRedirectFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
)
from gammaxds.translate.filters import _prefix_rewrite as prefix_rewrite
from gammaxds.translate.filters import redirect_action, unsupported_filters
from gammaxds.translate.protos import route_components_pb2 as rc


def rewrite(prefix: str, replacement: str, path: str) -> str:
    match = HTTPRouteMatch.model_validate({"path": {"type": "PathPrefix", "value": prefix}})
    rx = prefix_rewrite(match, replacement)
    return re2.sub(rx.pattern.regex, rx.substitution, path)  # Envoy: RE2 GlobalReplace on the path


@pytest.mark.parametrize(
    ("prefix", "replacement", "path", "expected"),
    [
        ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "/xyz", "/foo", "/xyz"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
        ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
        ("/foo", "", "/foo/bar", "/bar"),
        ("/foo", "/", "/foo/bar", "/bar"),
        ("/foo", "/", "/foo", "/"),
        ("/foo", "", "/foo/", "/"),
        ("/foo", "/", "/foo//bar", "/bar"),
        ("/foo/bar", "/x", "/foo/bar/baz", "/x/baz"),
        ("/", "/xyz", "/bar", "/xyz/bar"),
        ("/", "/", "/bar", "/bar"),
        ("/", "", "/", "/"),
        ("/a.b+c", "/d", "/a.b+c/e", "/d/e"),  # regex metacharacters in the prefix are literal
        ("/foo", "/a\\1b", "/foo/x", "/a\\1b/x"),  # and a backslash in the replacement is literal
    ],
)
def test_replace_prefix_match_is_element_wise(
    prefix: str, replacement: str, path: str, expected: str
) -> None:
    assert rewrite(prefix, replacement, path) == expected


@pytest.mark.parametrize("replacement", ["", "/", "/x", "/x/"])
@pytest.mark.parametrize("path", ["/p", "/p/", "/p/q", "/p/q/"])
def test_replace_prefix_match_never_makes_a_double_slash(replacement: str, path: str) -> None:
    out = rewrite("/p", replacement, path)
    assert "//" not in out
    assert out.startswith("/")


# --- redirects --------------------------------------------------------------------------------------------


def envoy_location(action: rc.RedirectAction, request_host: str, path: str = "/p") -> str:
    """How Envoy 1.40 builds `Location` (measured against a running Envoy; see filters.redirect_action):
    `host_redirect` is used as is; otherwise the request Host, whose port is dropped when `port_redirect` is
    set or when the scheme changes away from http and the port is :80; then `:port_redirect` if set."""
    scheme = action.scheme_redirect or "http"
    host = action.host_redirect
    if not host:
        host = request_host
        name, sep, port = request_host.rpartition(":")
        if sep and (action.port_redirect or (scheme != "http" and port == "80")):
            host = name
    if action.port_redirect:
        host = f"{host}:{action.port_redirect}"
    return f"{scheme}://{host}{path}"


def location(service_port: int, **redirect: object) -> str:
    f = HTTPRequestRedirectFilter.model_validate(redirect)
    host = "svc" if service_port == 80 else f"svc:{service_port}"  # what an HTTP client sends
    return envoy_location(redirect_action(f, None, service_port), host)


@pytest.mark.parametrize(
    ("service_port", "redirect", "expected"),
    [
        (80, {"scheme": "https"}, "https://svc/p"),
        (80, {}, "http://svc/p"),
        (8080, {}, "http://svc:8080/p"),
        (80, {"hostname": "h"}, "http://h/p"),
        (8080, {"hostname": "h"}, "http://h:8080/p"),
        (8080, {"scheme": "https", "hostname": "h"}, "https://h/p"),
        (8080, {"scheme": "http", "hostname": "h"}, "http://h/p"),
        (80, {"port": 8443}, "http://svc:8443/p"),
        (8080, {"port": 8080}, "http://svc:8080/p"),
        (8080, {"hostname": "h", "port": 80}, "http://h/p"),
        (80, {"scheme": "https", "port": 443}, "https://svc/p"),
        (80, {"scheme": "https", "port": 80}, "https://svc:80/p"),
        (80, {"hostname": "h", "port": 443}, "http://h:443/p"),
        (80, {"scheme": "https", "hostname": "h", "port": 8443}, "https://h:8443/p"),
        (443, {"hostname": "h", "scheme": "https"}, "https://h/p"),
    ],
)
def test_redirect_location_follows_the_port_rules(
    service_port: int, redirect: dict[str, object], expected: str
) -> None:
    assert location(service_port, **redirect) == expected


@pytest.mark.parametrize(
    ("service_port", "redirect", "spec", "ours"),
    [
        (8080, {"scheme": "https"}, "https://svc/p", "https://svc:443/p"),
        (8080, {"scheme": "http"}, "http://svc/p", "http://svc:80/p"),
        (8080, {"port": 80}, "http://svc/p", "http://svc:80/p"),
    ],
)
def test_redirect_keeping_the_host_but_dropping_its_port_names_the_port(
    service_port: int, redirect: dict[str, object], spec: str, ours: str
) -> None:
    """Envoy cannot drop the client's port without writing another: the URL is the same, the port explicit."""
    assert location(service_port, **redirect) == ours
    assert ours.replace(":443/", "/").replace(":80/", "/") == spec


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_status_codes(code: int) -> None:
    f = HTTPRequestRedirectFilter.model_validate({"statusCode": code})
    action = redirect_action(f, None, 80)
    assert (
        rc.RedirectAction.RedirectResponseCode.Name(action.response_code)
        in {
            301: "MOVED_PERMANENTLY",
            302: "FOUND",
            303: "SEE_OTHER",
            307: "TEMPORARY_REDIRECT",
            308: "PERMANENT_REDIRECT",
        }[code]
    )


def test_redirect_full_path_uses_path_redirect() -> None:
    f = HTTPRequestRedirectFilter(path=HTTPPathModifier(type="ReplaceFullPath", replace_full_path="/new"))
    assert redirect_action(f, None, 80).path_redirect == "/new"


# --- filters Envoy would refuse ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "modifier",
    [
        {"set": [{"name": "Host", "value": "x"}]},
        {"add": [{"name": "host", "value": "x"}]},
        {"remove": ["HOST"]},
    ],
)
@pytest.mark.parametrize("kind", ["RequestHeaderModifier", "ResponseHeaderModifier"])
def test_header_modifiers_on_host_are_unsupported_on_rules_and_backends(
    kind: str, modifier: dict[str, object]
) -> None:
    field = kind[0].lower() + kind[1:]
    f = HTTPRouteFilter.model_validate({"type": kind, field: modifier})
    assert unsupported_filters([f], []) == [
        f"{kind} on the Host header (use URLRewrite hostname to change Host)"
    ]
    assert unsupported_filters([], [[f]]) == [
        f"backendRefs[0] {kind} on the Host header (use URLRewrite hostname to change Host)"
    ]


def test_other_header_modifiers_are_supported() -> None:
    f = HTTPRouteFilter.model_validate(
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "x-host", "value": "h"}]},
        }
    )
    assert unsupported_filters([f], [[f]]) == []
