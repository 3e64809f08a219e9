"""Clusters: one EDS cluster per Service port, fed from the Service's EndpointSlices."""

from __future__ import annotations

from functools import cache

from ...model import Service, ServicePort
from ..services import port_protocol
from .names import BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER, cluster_name
from .protos import (
    ads_source,
    cluster_pb2,
    duration_ms,
    http_protocol_options_pb2,
    packed,
    protocol_pb2,
)
from .replies import metadata

HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
CONNECT_TIMEOUT_MS = 5000


def _protocol_options(service_port: ServicePort) -> http_protocol_options_pb2.HttpProtocolOptions | None:
    """HTTP/2 upstream for h2c/grpc ports; the client's own protocol when appProtocol says nothing."""
    opts = http_protocol_options_pb2.HttpProtocolOptions
    match port_protocol(service_port):
        case "http2":
            return opts(
                explicit_http_config=opts.ExplicitHttpConfig(
                    http2_protocol_options=protocol_pb2.Http2ProtocolOptions()
                )
            )
        case "auto":
            return opts(
                use_downstream_protocol_config=opts.UseDownstreamHttpConfig(
                    http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
                    http2_protocol_options=protocol_pb2.Http2ProtocolOptions(),
                )
            )
        case _:
            return None  # HTTP/1.1 is the default; TCP ports carry no HTTP options


def build_cluster(service: Service, port: ServicePort) -> cluster_pb2.Cluster:
    """The Service port's cluster. Its metadata names the Service and port as a person writes them, for the
    sidecar's 503 when no endpoint is ready ("no ready endpoints for Service NS/NAME port PORT")."""
    name = cluster_name(service.namespace, service.name, port.port)
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source(), service_name=name),
        connect_timeout=duration_ms(CONNECT_TIMEOUT_MS),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        metadata=metadata(service=f"{service.namespace}/{service.name}", port=str(port.port)),
    )
    options = _protocol_options(port)
    if options is not None:
        cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(packed(options))
    return cluster


@cache
def passthrough_cluster() -> cluster_pb2.Cluster:
    """Connections to destinations that are no Service port go where they were going (pod IPs, the world).

    Constant: built once per process and shared by every view."""
    return cluster_pb2.Cluster(
        name=PASSTHROUGH_CLUSTER,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration_ms(CONNECT_TIMEOUT_MS),
    )


@cache
def blackhole_cluster() -> cluster_pb2.Cluster:
    """No endpoints: a connection sent here is closed at once (a cluster IP dialed on a port it does not have)."""
    return cluster_pb2.Cluster(
        name=BLACKHOLE_CLUSTER,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_ms(CONNECT_TIMEOUT_MS),
    )
