"""Resource names. Stable across translations so a change to one Service touches only its own resources."""

from __future__ import annotations

CLUSTER_DOMAIN = "svc.cluster.local"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
VIRTUAL_OUTBOUND_LISTENER = "virtualOutbound"
VIRTUAL_INBOUND_LISTENER = "virtualInbound"
PROXY_LISTENER = "outbound_proxy"
PROXY_ROUTE_CONFIG = "outbound_proxy"
CORS_FILTER = "envoy.filters.http.cors"
STATEFUL_SESSION_FILTER = "envoy.filters.http.stateful_session"


def fqdn(namespace: str, name: str) -> str:
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def cluster_name(namespace: str, name: str, port: int) -> str:
    """Istio's form, so existing tooling and habits carry over: `outbound|PORT||FQDN`."""
    return f"outbound|{port}||{fqdn(namespace, name)}"


def route_config_name(namespace: str, name: str, port: int) -> str:
    return f"{fqdn(namespace, name)}:{port}"


def service_listener_name(cluster_ip: str, port: int) -> str:
    return f"{cluster_ip}_{port}"


def route_entry_name(kind: str, namespace: str, name: str, rule: int, match: int) -> str:
    """Traces an Envoy route back to the object that produced it, as the access log and config dumps show it:
    `httproute/<ns>/<name>/rule/<rule>/match/<match>` (`grpcroute/...` for a GRPCRoute).

    Slashes, because Kubernetes names may hold dots but never a slash: the name reads back unambiguously."""
    return f"{kind.lower()}/{namespace}/{name}/rule/{rule}/match/{match}"
