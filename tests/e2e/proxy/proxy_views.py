"""Hand-built proxy-mode views: an HTTP listener on the sidecar's outbound address, routes, EDS clusters."""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.config_source_pb2 import AggregatedConfigSource, ApiVersion, ConfigSource
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint, LbEndpoint, LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import Route, RouteAction, RouteMatch, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    HttpFilter,
    Rds,
)
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher

from gammaxds.translate.view import View

ADS = ConfigSource(ads=AggregatedConfigSource(), resource_api_version=ApiVersion.V3)
ROUTES = "outbound"


def cluster(name: str) -> Cluster:
    c = Cluster(name=name, type=Cluster.EDS)
    c.eds_cluster_config.eds_config.CopyFrom(ADS)
    c.connect_timeout.seconds = 1
    return c


def endpoints(name: str, port: int) -> ClusterLoadAssignment:
    address = Address(socket_address=SocketAddress(address="127.0.0.1", port_value=port))
    return ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[LocalityLbEndpoints(lb_endpoints=[LbEndpoint(endpoint=Endpoint(address=address))])],
    )


def listener(port: int, name: str = "outbound", stat_prefix: str = "outbound") -> Listener:
    hcm = HttpConnectionManager(
        stat_prefix=stat_prefix,
        rds=Rds(config_source=ADS, route_config_name=ROUTES),
        http_filters=[HttpFilter(name="envoy.filters.http.router")],
    )
    hcm.http_filters[0].typed_config.Pack(Router())
    chain = FilterChain(filters=[Filter(name="envoy.filters.network.http_connection_manager")])
    chain.filters[0].typed_config.Pack(hcm)
    address = Address(socket_address=SocketAddress(address="127.0.0.1", port_value=port))
    return Listener(name=name, address=address, filter_chains=[chain])


def routes(cluster_name: str, *, bad_regex: bool = False) -> RouteConfiguration:
    match = RouteMatch(prefix="/")
    if bad_regex:
        match = RouteMatch(safe_regex=RegexMatcher(regex="(unclosed"))
    return RouteConfiguration(
        name=ROUTES,
        virtual_hosts=[
            VirtualHost(
                name="any",
                domains=["*"],
                routes=[Route(match=match, route=RouteAction(cluster=cluster_name))],
            )
        ],
    )


def proxy_view(listen_port: int, backends: dict[str, int], route_to: str, *, bad_regex: bool = False) -> View:
    """Clusters for `backends` (name → echo port), all traffic on the listener routed to `route_to`."""
    return View(
        clusters=tuple(cluster(name) for name in sorted(backends)),
        endpoints=tuple(endpoints(name, port) for name, port in sorted(backends.items())),
        listeners=(listener(listen_port),),
        routes=(routes(route_to, bad_regex=bad_regex),),
    )
