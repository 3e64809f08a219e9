"""Hand-built xDS resources and views for protocol tests."""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.config_source_pb2 import AggregatedConfigSource, ApiVersion, ConfigSource
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint, LbEndpoint, LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import Route, RouteAction, RouteMatch, VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration

from gammaxds.translate.view import View

ADS = ConfigSource(ads=AggregatedConfigSource(), resource_api_version=ApiVersion.V3)


def cluster(name: str, timeout_s: int = 1) -> Cluster:
    c = Cluster(name=name, type=Cluster.EDS)
    c.eds_cluster_config.eds_config.CopyFrom(ADS)
    c.connect_timeout.seconds = timeout_s
    return c


def endpoints(name: str, *ports: int) -> ClusterLoadAssignment:
    return ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            LocalityLbEndpoints(
                lb_endpoints=[
                    LbEndpoint(
                        endpoint=Endpoint(
                            address=Address(socket_address=SocketAddress(address="127.0.0.1", port_value=p))
                        )
                    )
                    for p in ports
                ]
            )
        ],
    )


def listener(name: str, port: int = 15001) -> Listener:
    return Listener(
        name=name, address=Address(socket_address=SocketAddress(address="127.0.0.1", port_value=port))
    )


def routes(name: str, cluster_name: str, prefix: str = "/") -> RouteConfiguration:
    return RouteConfiguration(
        name=name,
        virtual_hosts=[
            VirtualHost(
                name="all",
                domains=["*"],
                routes=[Route(match=RouteMatch(prefix=prefix), route=RouteAction(cluster=cluster_name))],
            )
        ],
    )


def view(
    clusters: dict[str, int] | None = None, listeners: tuple[str, ...] = ("out",), route_to: str = "a"
) -> View:
    """Clusters name → endpoint port, each with its CLA; listeners; one route config per listener."""
    clusters = {"a": 8001, "b": 8002} if clusters is None else clusters
    return View(
        clusters=tuple(cluster(n) for n in sorted(clusters)),
        endpoints=tuple(endpoints(n, p) for n, p in sorted(clusters.items())),
        listeners=tuple(listener(n) for n in sorted(listeners)),
        routes=tuple(routes(n, route_to) for n in sorted(listeners)),
    )
