"""Which path a change takes, from the table of what each kind of input affects (translate/incremental.py),
and that the path taken is invisible: the views equal a fresh translation's."""

from __future__ import annotations

import pytest

from gammaxds.model import parse_text
from gammaxds.translate import Translator
from gammaxds.translate.incremental import path_for
from gammaxds.translate.render import view_to_dict
from gammaxds.translate.view import ViewKey


@pytest.mark.parametrize(
    ("kinds", "path"),
    [
        ([], "endpoints"),
        (["EndpointSlice"], "endpoints"),
        (["EndpointSlice", "EndpointSlice"], "endpoints"),
        (["HTTPRoute"], "routes"),
        (["HTTPRoute", "GRPCRoute"], "routes"),
        (["HTTPRoute", "EndpointSlice"], "full"),
        (["Service"], "full"),
        (["Namespace"], "full"),
        (["ReferenceGrant"], "full"),
        (["SomethingNew"], "full"),
    ],
)
def test_path_for(kinds: list[str], path: str) -> None:
    assert path_for(kinds) == path


MESH = """apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: app, labels: {kubernetes.io/service-name: echo}}
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: app}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{matches: [{path: {value: PATH}}], backendRefs: [{name: echo, port: 80}]}]
"""


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("10.0.0.1", "10.0.0.2"),  # endpoints path
        lambda t: t.replace("PATH", "/other"),  # routes path
        lambda t: t.replace("port: 80}]}", "port: 80}, {name: b, port: 81}]}", 1),  # full
    ],
)
def test_each_path_equals_a_fresh_translation(edit) -> None:  # type: ignore[no-untyped-def]
    before, after = MESH.replace("PATH", "/a"), edit(MESH.replace("PATH", "/a"))
    translator = Translator()
    key = ViewKey("app")
    translator.load(parse_text(before).world()).view(key)
    incremental = translator.load(parse_text(after).world()).view(key)
    fresh = Translator().load(parse_text(after).world()).view(key)
    assert view_to_dict(incremental) == view_to_dict(fresh)
