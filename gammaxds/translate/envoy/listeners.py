"""Listeners for both capture modes (README, "The sidecar contract").

Transparent: `virtualOutbound` on 15001 receives captured connections and, with `use_original_dst`, hands each to
the listener of the cluster IP and port that was dialed (one `bind_to_port: false` listener per Service port, so
a change to one Service re-sends only its own listener and route configuration). Anything else is passed through
to its original destination. `virtualInbound` on 15006 receives what inbound capture redirects (connections
arriving at the pod) and passes each to its original destination, logging who connected.
Proxy: one HTTP listener at the sidecar's outbound address, routed by `Host`.

Every HTTP listener writes one access-log line per request to Envoy's stdout (`HTTP_ACCESS_LOG_FORMAT`), and
explains the sidecar's own 404/500/503 replies (`replies.local_reply_config`). A sidecar whose node metadata
says `access_log: "off"` gets the same listeners without their access logs (and nothing else differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from ...model import Service, ServicePort
from ..services import is_http
from .names import (
    BLACKHOLE_CLUSTER,
    CORS_FILTER,
    PASSTHROUGH_CLUSTER,
    PROXY_LISTENER,
    PROXY_ROUTE_CONFIG,
    STATEFUL_SESSION_FILTER,
    VIRTUAL_INBOUND_LISTENER,
    VIRTUAL_OUTBOUND_LISTENER,
    cluster_name,
    route_config_name,
    service_listener_name,
)
from .protos import (
    accesslog_pb2,
    address_pb2,
    ads_source,
    base_pb2,
    cors_pb2,
    hcm_pb2,
    listener_components_pb2,
    listener_pb2,
    original_dst_pb2,
    packed,
    router_pb2,
    socket_address,
    stateful_session_pb2,
    stream_pb2,
    substitution_format_string_pb2,
    tcp_proxy_pb2,
)
from .replies import local_reply_config

CAPTURE_PORT = 15001
INBOUND_PORT = 15006
# One line per inbound connection on the sidecar's stdout: who connected (the real client, which the app itself
# sees only as the sidecar's address), to which of the pod's ports, what Envoy did and how much was carried.
INBOUND_ACCESS_LOG_FORMAT = (
    "[%START_TIME%] inbound %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% "
    "upstream=%UPSTREAM_HOST% flags=%RESPONSE_FLAGS% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% %DURATION%ms\n"
)
HTTP_ACCESS_LOG_FORMAT = (
    '[%START_TIME%] outbound "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "flags=%RESPONSE_FLAGS% details=%RESPONSE_CODE_DETAILS% grpc=%GRPC_STATUS% authority=%REQ(:AUTHORITY)% "
    "route=%ROUTE_NAME% cluster=%UPSTREAM_CLUSTER% upstream=%UPSTREAM_HOST% "
    "rx=%BYTES_RECEIVED% tx=%BYTES_SENT% %DURATION%ms\n"
)
"""One line per request through a sidecar's HTTP listener, so "why did my request go there" is answered on the
sidecar's own stdout: which route (`route=`, the names of `names.route_entry_name`; `default` when no route is
attached to the Service port; `-` when none matched) sent it to which cluster (`cluster=`, a Service port's
`outbound|PORT||FQDN`) and endpoint (`upstream=`), and when the sidecar answered itself, why (`flags=`,
Envoy's response flags: `NR` no route, `NC` an invalid backend's share, `UH` no ready endpoint; `details=`,
Envoy's response code details). `grpc=` is the gRPC status (a gRPC call's local reply has HTTP status 200).
The path is the client's, before any URLRewrite. Fields that do not apply print `-`. README.md ("Access logs
and the sidecar's own replies") describes each field, with real lines."""


def _network_filter(name: str, config: object) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name=name, typed_config=packed(config))  # type: ignore[arg-type]


def http_connection_manager(
    stat_prefix: str, route_config: str, access_log: bool = True
) -> listener_components_pb2.Filter:
    """An HTTP listener's routing, filters, local replies that say why, and (unless turned off) access log."""
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_config),
        http_filters=_http_filters(),
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        local_reply_config=local_reply_config(),
        access_log=[_http_access_log()] if access_log else [],
    )
    return _network_filter("envoy.filters.network.http_connection_manager", hcm)


@cache
def _http_filters() -> tuple[hcm_pb2.HttpFilter, ...]:
    """The same on every HTTP listener: packed once per process (packing is most of what a listener costs);
    a message given to a constructor is copied, so the cached ones are never shared or changed."""
    return (
        hcm_pb2.HttpFilter(name=CORS_FILTER, typed_config=packed(cors_pb2.Cors())),
        # No session state here: it is enabled per route (sessionPersistence), and is a no-op elsewhere.
        hcm_pb2.HttpFilter(
            name=STATEFUL_SESSION_FILTER, typed_config=packed(stateful_session_pb2.StatefulSession())
        ),
        hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=packed(router_pb2.Router())),
    )


@cache
def _http_access_log() -> accesslog_pb2.AccessLog:
    return stdout_access_log(HTTP_ACCESS_LOG_FORMAT)


def tcp_proxy(stat_prefix: str, cluster: str) -> listener_components_pb2.Filter:
    return _network_filter(
        "envoy.filters.network.tcp_proxy", tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    )


def stdout_access_log(text_format: str) -> accesslog_pb2.AccessLog:
    fmt = substitution_format_string_pb2.SubstitutionFormatString()
    fmt.text_format_source.inline_string = text_format
    return accesslog_pb2.AccessLog(
        name="envoy.access_loggers.stdout", typed_config=packed(stream_pb2.StdoutAccessLog(log_format=fmt))
    )


@cache
def virtual_inbound_listener(access_log: bool = True) -> listener_pb2.Listener:
    """Connections inbound capture redirected here go to their original destination (the pod's own address and
    port, so an application bound only to 127.0.0.1 stays private), unchanged, one access-log line each
    (none with `access_log` off).

    A connection dialed to 15006 itself (inbound capture leaves the sidecar's ports alone) has no other
    destination than this listener: passing it through would connect to itself again, so it is closed.
    Constant: built once per process (per `access_log`) and shared by every transparent view."""
    passthrough = tcp_proxy_pb2.TcpProxy(
        stat_prefix="inbound",
        cluster=PASSTHROUGH_CLUSTER,
        access_log=[stdout_access_log(INBOUND_ACCESS_LOG_FORMAT)] if access_log else [],
    )
    return listener_pb2.Listener(
        name=VIRTUAL_INBOUND_LISTENER,
        address=socket_address("0.0.0.0", INBOUND_PORT),
        traffic_direction=base_pb2.INBOUND,
        listener_filters=[
            listener_components_pb2.ListenerFilter(
                name="envoy.filters.listener.original_dst",
                typed_config=packed(original_dst_pb2.OriginalDst()),
            )
        ],
        filter_chains=[
            listener_components_pb2.FilterChain(
                name="inbound-to-itself",
                filter_chain_match=listener_components_pb2.FilterChainMatch(
                    destination_port={"value": INBOUND_PORT}
                ),
                filters=[tcp_proxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
            )
        ],
        default_filter_chain=listener_components_pb2.FilterChain(
            name="inbound-passthrough",
            filters=[_network_filter("envoy.filters.network.tcp_proxy", passthrough)],
        ),
    )


def _host_range(ip: str) -> address_pb2.CidrRange:
    return address_pb2.CidrRange(address_prefix=ip, prefix_len={"value": 128 if ":" in ip else 32})


def virtual_outbound_listener(cluster_ips: Sequence[str]) -> listener_pb2.Listener:
    """Captured connections are handed to the listener of the dialed cluster IP and port. A cluster IP dialed
    on a port its Service does not have is closed here: passing it through would dial the same captured
    address again and loop back into this listener. Anything else passes through to where it was going."""
    listener = listener_pb2.Listener(
        name=VIRTUAL_OUTBOUND_LISTENER,
        address=socket_address("0.0.0.0", CAPTURE_PORT),
        use_original_dst={"value": True},
        traffic_direction=base_pb2.OUTBOUND,
        listener_filters=[
            listener_components_pb2.ListenerFilter(
                name="envoy.filters.listener.original_dst",
                typed_config=packed(original_dst_pb2.OriginalDst()),
            )
        ],
        default_filter_chain=listener_components_pb2.FilterChain(
            name="passthrough", filters=[tcp_proxy(PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER)]
        ),
    )
    if cluster_ips:
        listener.filter_chains.add(
            name="cluster-ip-without-port",
            filter_chain_match=listener_components_pb2.FilterChainMatch(
                prefix_ranges=[_host_range(ip) for ip in sorted(set(cluster_ips))]
            ),
            filters=[tcp_proxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
        )
    return listener


def service_listener(
    service: Service, port: ServicePort, cluster_ip: str, access_log: bool = True
) -> listener_pb2.Listener:
    """The dialed cluster IP and port select this listener; HTTP ports route, other ports forward as TCP."""
    name = service_listener_name(cluster_ip, port.port)
    if is_http(port):
        network_filter = http_connection_manager(
            name, route_config_name(service.namespace, service.name, port.port), access_log
        )
    else:
        network_filter = tcp_proxy(name, cluster_name(service.namespace, service.name, port.port))
    return listener_pb2.Listener(
        name=name,
        address=socket_address(cluster_ip, port.port),
        bind_to_port={"value": False},
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[listener_components_pb2.FilterChain(filters=[network_filter])],
    )


def proxy_listener(outbound: str, access_log: bool = True) -> listener_pb2.Listener:
    host, _, port = outbound.rpartition(":")
    return listener_pb2.Listener(
        name=PROXY_LISTENER,
        address=socket_address(host.strip("[]") or "127.0.0.1", int(port)),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[http_connection_manager(PROXY_LISTENER, PROXY_ROUTE_CONFIG, access_log)]
            )
        ],
    )
