"""Rule precedence across merged routes (docs/gamma.md, "Precedence"), including our documented choices
for regular expressions."""

from __future__ import annotations

from typing import Any

import re2

from gammaxds.model import GRPCRoute, HTTPRoute
from gammaxds.translate.envoy.matches import grpc_match
from gammaxds.translate.precedence import ordered_rule_matches


def http_route(
    name: str, rules: list[dict[str, Any]], created: str | None = None, ns: str = "app"
) -> HTTPRoute:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if created:
        meta["creationTimestamp"] = created
    return HTTPRoute.model_validate({"metadata": meta, "spec": {"rules": rules}})


def grpc_route(name: str, rules: list[dict[str, Any]]) -> GRPCRoute:
    return GRPCRoute.model_validate(
        {"metadata": {"name": name, "namespace": "app"}, "spec": {"rules": rules}}
    )


def order(*routes: HTTPRoute | GRPCRoute) -> list[str]:
    return [f"{rm.route.name}.{rm.rule_index}.{rm.match_index}" for rm in ordered_rule_matches(list(routes))]


def path(kind: str, value: str, **more: Any) -> dict[str, Any]:
    return {"matches": [{"path": {"type": kind, "value": value}, **more}]}


def test_exact_then_regex_then_longest_prefix() -> None:
    r = http_route(
        "r",
        [
            path("PathPrefix", "/"),
            path("PathPrefix", "/api"),
            path("RegularExpression", "/api/[0-9]+"),
            path("PathPrefix", "/api/v1/users"),
            path("Exact", "/api"),
            path("RegularExpression", "/a.*"),
        ],
    )
    assert order(r) == ["r.4.0", "r.2.0", "r.5.0", "r.3.0", "r.1.0", "r.0.0"]


def test_trailing_slash_does_not_lengthen_a_prefix() -> None:
    r = http_route("r", [path("PathPrefix", "/api/"), path("PathPrefix", "/api")])
    assert order(r) == ["r.0.0", "r.1.0"]  # a tie: rule order decides


def test_method_then_headers_then_query_params() -> None:
    h1 = [{"name": "a", "value": "1"}]
    h2 = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    q1 = [{"name": "q", "value": "1"}]
    r = http_route(
        "r",
        [
            path("PathPrefix", "/x"),
            path("PathPrefix", "/x", queryParams=q1),
            path("PathPrefix", "/x", headers=h1, queryParams=q1 * 1),
            path("PathPrefix", "/x", headers=h2),
            path("PathPrefix", "/x", method="GET"),
        ],
    )
    assert order(r) == ["r.4.0", "r.3.0", "r.2.0", "r.1.0", "r.0.0"]


def test_ties_go_to_the_oldest_route_then_by_name_then_rule_and_match_order() -> None:
    same = [{"matches": [{"path": {"type": "PathPrefix", "value": "/x"}}] * 2}, path("PathPrefix", "/x")]
    new = http_route("a-new", same, "2025-01-01T00:00:00Z")
    old = http_route("z-old", same, "2023-01-01T00:00:00Z")
    b = http_route("b", same, "2024-01-01T00:00:00Z")
    a = http_route("a", same, "2024-01-01T00:00:00Z")
    untimed = http_route("0-untimed", same)
    assert order(new, b, untimed, a, old) == [
        "z-old.0.0", "z-old.0.1", "z-old.1.0",
        "a.0.0", "a.0.1", "a.1.0",
        "b.0.0", "b.0.1", "b.1.0",
        "a-new.0.0", "a-new.0.1", "a-new.1.0",
        "0-untimed.0.0", "0-untimed.0.1", "0-untimed.1.0",
    ]  # fmt: skip


def test_specificity_beats_age() -> None:
    old = http_route("old", [path("PathPrefix", "/")], "2020-01-01T00:00:00Z")
    new = http_route("new", [path("PathPrefix", "/deep")], "2025-01-01T00:00:00Z")
    assert order(old, new) == ["new.0.0", "old.0.0"]


def test_grpc_exact_method_then_regex_then_service_then_method_only_then_anything() -> None:
    r = grpc_route(
        "g",
        [
            {},
            {"matches": [{"method": {"method": "Ping"}}]},
            {"matches": [{"method": {"service": "a.Svc"}}]},
            {"matches": [{"method": {"type": "RegularExpression", "service": "a\\..*", "method": "Say.*"}}]},
            {"matches": [{"method": {"type": "RegularExpression", "service": "a\\..*"}}]},
            {"matches": [{"method": {"service": "a.Svc", "method": "Say"}}]},
            {
                "matches": [
                    {
                        "method": {"service": "a.Svc", "method": "Say"},
                        "headers": [{"name": "h", "value": "1"}],
                    }
                ]
            },
            {"matches": [{"method": {"service": "a.LongerSvc", "method": "Go"}}]},
        ],
    )
    assert order(r) == ["g.7.0", "g.6.0", "g.5.0", "g.3.0", "g.4.0", "g.2.0", "g.1.0", "g.0.0"]


def test_grpc_regex_parts_stay_in_their_path_element() -> None:
    m = grpc_route(
        "g", [{"matches": [{"method": {"type": "RegularExpression", "service": "a|b", "method": "X|Y"}}]}]
    )
    regex = grpc_match(m.spec.rules[0].matches[0]).safe_regex.regex
    assert re2.fullmatch(regex, "/a/X") and re2.fullmatch(regex, "/b/Y")
    assert not re2.fullmatch(regex, "/a") and not re2.fullmatch(regex, "b/Y")
