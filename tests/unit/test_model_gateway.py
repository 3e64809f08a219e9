"""Gateway API validation rules the model enforces beyond field types (the CRDs' CEL rules and limits)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gammaxds.model import GRPCRoute, HTTPRoute, parse_text


def http_rule(**rule: Any) -> HTTPRoute:
    return HTTPRoute.model_validate({"metadata": {"name": "r"}, "spec": {"rules": [rule]}})


@pytest.mark.parametrize(
    ("request_", "backend"),
    [("10s", "10s"), ("10s", "200ms"), ("0s", "1h"), (None, "1h"), ("1s", None), ("1s", "0s")],
)
def test_backend_request_timeout_within_request_timeout(request_: str | None, backend: str | None) -> None:
    timeouts = {k: v for k, v in (("request", request_), ("backendRequest", backend)) if v}
    http_rule(timeouts=timeouts)


def test_backend_request_timeout_longer_than_request_is_refused() -> None:
    with pytest.raises(ValidationError, match="backendRequest timeout cannot be longer than request timeout"):
        http_rule(timeouts={"request": "200ms", "backendRequest": "1s"})


def test_grpc_rule_has_at_most_eight_matches() -> None:
    match = {"method": {"service": "a.B"}}
    GRPCRoute.model_validate({"metadata": {"name": "g"}, "spec": {"rules": [{"matches": [match] * 8}]}})
    with pytest.raises(ValidationError, match="at most 8"):
        GRPCRoute.model_validate({"metadata": {"name": "g"}, "spec": {"rules": [{"matches": [match] * 9}]}})


def test_http_rule_may_have_sixty_four_matches() -> None:
    http_rule(matches=[{"path": {"type": "PathPrefix", "value": "/"}}] * 64)
    with pytest.raises(ValidationError):
        http_rule(matches=[{"path": {"type": "PathPrefix", "value": "/"}}] * 65)


def test_regex_envoy_would_refuse_for_size_is_refused_with_the_field() -> None:
    """RE2 compiles `[a-z0-9]{1,40}` but its program (123) exceeds Envoy's limit (100): Envoy would NACK the
    whole route table, so the model refuses the route and names the field."""
    loaded = parse_text(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: items, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: items}]
  rules:
  - matches: [{headers: [{name: x-id, type: RegularExpression, value: "[a-z0-9]{1,40}"}]}]
"""
    )
    assert [(e.name, e.field) for e in loaded.errors] == [("items", "spec.rules[0].matches[0].headers[0]")]
    assert "RE2 program size 123 > 100" in loaded.errors[0].reason
    assert not loaded.objects
