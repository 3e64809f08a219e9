"""`mesh_graph`: which Service routes to which, per client view, as the dashboard draws it."""

from __future__ import annotations

from typing import Any

from gammaxds.admin.graph import PRODUCER_VIEW, mesh_graph
from gammaxds.model import parse_text
from gammaxds.translate import Translator

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: store}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: store}
spec: {clusterIP: 10.96.0.11, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: store}
spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: store}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}, {name: admin, port: 9000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: store}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 80, weight: 90}
    - {name: reviews-v2, port: 80, weight: 10}
    - {name: reviews-v3, port: 80, weight: 0}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-canary, namespace: web}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, namespace: store, port: 80}]
  rules:
  - backendRefs: [{name: reviews-v2, namespace: store, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ratings, namespace: store}
spec:
  parentRefs: [{group: "", kind: Service, name: ratings, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: ratings, port: 9000}]
  - backendRefs: [{name: ratings, port: 80}]
"""


def graph() -> dict[str, Any]:
    loaded = parse_text(MESH, "mesh.yaml")
    assert not loaded.errors
    return mesh_graph(Translator().load(loaded.world()))


def pairs(edges: list[dict[str, Any]]) -> list[tuple[str, str, int, bool]]:
    return [(e["from"], e["to"], e["weight"], e["valid"]) for e in edges]


def test_producer_routes_are_the_view_of_every_namespace_without_consumer_routes() -> None:
    edges = [e for e in graph()["edges"][PRODUCER_VIEW] if e["from"] == "store/reviews"]
    assert pairs(edges) == [
        ("store/reviews", "store/reviews-v1", 90, True),
        ("store/reviews", "store/reviews-v2", 10, True),
        ("store/reviews", "store/reviews-v3", 0, False),
    ]
    assert {(e["port"], e["route"], e["rule"]) for e in edges} == {(80, "HTTPRoute store/reviews", 0)}


def test_an_unresolved_backend_keeps_its_reference_and_says_why() -> None:
    [missing] = [e for e in graph()["edges"][PRODUCER_VIEW] if not e["valid"]]
    assert missing["to"] == "store/reviews-v3" and "not found" in missing["problem"]


def test_a_consumer_namespace_sees_its_own_routes_instead_of_the_producers() -> None:
    edges = graph()["edges"]
    assert set(edges) == {PRODUCER_VIEW, "web"}
    reviews = [e for e in edges["web"] if e["from"] == "store/reviews"]
    assert pairs(reviews) == [("store/reviews", "store/reviews-v2", 1, True)]
    assert reviews[0]["route"] == "HTTPRoute web/reviews-canary"


def test_a_consumer_namespace_keeps_the_producer_routes_of_the_ports_it_has_no_route_for() -> None:
    edges = graph()["edges"]
    ratings = [e for e in edges["web"] if e["from"] == "store/ratings"]
    assert ratings == [e for e in edges[PRODUCER_VIEW] if e["from"] == "store/ratings"]
    assert [(e["to"], e["backendPort"], e["rule"]) for e in ratings] == [
        ("store/ratings", 9000, 0),
        ("store/ratings", 80, 1),
    ]


def test_every_service_is_listed_with_its_ports() -> None:
    services = {s["id"]: s for s in graph()["services"]}
    assert list(services) == ["store/ratings", "store/reviews", "store/reviews-v1", "store/reviews-v2"]
    assert [(p["name"], p["port"]) for p in services["store/ratings"]["ports"]] == [
        ("http", 80),
        ("admin", 9000),
    ]
    assert services["store/reviews"]["clusterIP"] == "10.96.0.10"
