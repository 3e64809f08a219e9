"""`gammaxds describe proxy NODE`: what one connected sidecar was sent and acknowledged, resource by resource.

The same per-resource states as CSDS (`xds/status.py`): acknowledged, rejected (NACK: Envoy keeps the version it
had before), sent and not yet acknowledged, or asked for and not (yet) existing. Each resource gets a one-line
summary of what it does, so the table answers "which listener, which routes, which endpoints" without a
config dump.
"""

from __future__ import annotations

from typing import Any

from envoy.admin.v3.config_dump_shared_pb2 import ClientResourceStatus
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.message import Message

from ..translate.view import PUSH_ORDER
from ..xds.resources import Resource
from ..xds.status import describe, resource_status
from ..xds.stream import Stream, type_label

_STATUS = {
    ClientResourceStatus.ACKED: "ACKED",
    ClientResourceStatus.NACKED: "NACKED",
    ClientResourceStatus.REQUESTED: "SENT",
}


def _listener(msg: listener_pb2.Listener) -> str:
    sa = msg.address.socket_address
    where = f"{sa.address}:{sa.port_value}" + (
        ""
        if msg.bind_to_port.value or not msg.HasField("bind_to_port")
        else " (not bound: reached through 15001)"
    )
    chains = [
        *msg.filter_chains,
        *([msg.default_filter_chain] if msg.HasField("default_filter_chain") else []),
    ]
    does = []
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                does.append(f"HTTP routes {hcm.rds.route_config_name}")
            elif f.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
                tcp = tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(tcp)
                does.append(f"TCP to {tcp.cluster}")
    shown = sorted(set(does))
    more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
    return f"{where}: {', '.join(shown[:3])}{more}"


def _routes(msg: route_pb2.RouteConfiguration) -> str:
    routes = [r for vh in msg.virtual_hosts for r in vh.routes]
    targets = sorted(
        {r.route.cluster for r in routes if r.route.cluster}
        | {c.name for r in routes for c in r.route.weighted_clusters.clusters}
    )
    direct = sum(1 for r in routes if r.HasField("direct_response") or r.HasField("redirect"))
    extra = f", {direct} answered by the sidecar" if direct else ""
    return f"{len(msg.virtual_hosts)} virtual hosts, {len(routes)} routes to {', '.join(targets) or 'no cluster'}{extra}"


def _cluster(msg: cluster_pb2.Cluster) -> str:
    if msg.type == cluster_pb2.Cluster.EDS:
        return "EDS: its endpoints are the ClusterLoadAssignment of the same name"
    name: str = cluster_pb2.Cluster.DiscoveryType.Name(msg.type)  # Cluster has no stubs (xds-protos)
    return name


def _endpoints(msg: endpoint_pb2.ClusterLoadAssignment) -> str:
    by_priority: dict[int, int] = {}
    for group in msg.endpoints:
        by_priority[group.priority] = by_priority.get(group.priority, 0) + len(group.lb_endpoints)
    if not by_priority:
        return "no endpoints"
    ready = by_priority.get(0, 0)
    other = sum(n for p, n in by_priority.items() if p)
    return f"{ready} ready" + (f", {other} terminating (used when none is ready)" if other else "")


def summary(message: Message) -> str:
    if isinstance(message, listener_pb2.Listener):
        return _listener(message)
    if isinstance(message, route_pb2.RouteConfiguration):
        return _routes(message)
    if isinstance(message, cluster_pb2.Cluster):
        return _cluster(message)
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return _endpoints(message)
    return type(message).__name__


def describe_proxy(stream: Stream) -> dict[str, Any]:
    """`/debug/proxies`' entry for the stream, with each resource's state and summary."""
    out = describe(stream)
    types = []
    snap = stream.snapshot
    for type_url in PUSH_ORDER:
        state = stream.types.get(type_url)
        if state is None:
            continue
        entry = dict(out["types"][type_label(type_url)], label=type_label(type_url))
        available = snap.of_type(type_url) if snap is not None else {}
        wanted = state.target(available)
        resources = []
        for name in sorted(set(state.held_names()) | set(wanted)):
            held = state.held(name)
            if held is None:
                resources.append(
                    {
                        "name": name,
                        "status": "NOT SENT",
                        "version": "",
                        "summary": "asked for; does not exist",
                    }
                )
                continue
            _config, client = resource_status(state, name, held)
            what = summary(held.message) if isinstance(held, Resource) else ""
            resources.append(
                {
                    "name": name,
                    "status": _STATUS.get(client, "SENT"),
                    "version": held.version,
                    "summary": what,
                }
            )
        entry["resources"] = resources
        types.append(entry)
    out["types"] = types
    return out
