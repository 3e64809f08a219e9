"""Service ports as the mesh sees them: which can be parents, what protocol they speak."""

from __future__ import annotations

from typing import Literal

from ..model import Service, ServicePort

Protocol = Literal["auto", "http1", "http2", "tcp"]

_HTTP2 = {"h2c", "kubernetes.io/h2c", "grpc", "http2", "grpc-web"}
_HTTP1 = {"http", "kubernetes.io/http"}


def port_protocol(port: ServicePort) -> Protocol | None:
    """The protocol a Service port carries; None for ports the mesh does not proxy (UDP, SCTP).

    No appProtocol means HTTP of whichever version the client speaks (Envoy's downstream protocol).
    """
    if port.protocol != "TCP":
        return None
    ap = (port.app_protocol or "").lower()
    if not ap:
        return "auto"
    if ap in _HTTP2:
        return "http2"
    if ap in _HTTP1:
        return "http1"
    return "tcp"


def is_http(port: ServicePort) -> bool:
    return port_protocol(port) in ("auto", "http1", "http2")


def parent_problem(service: Service) -> str | None:
    """Why a Service cannot be a route parent (GAMMA: only Services with a cluster IP), or None."""
    if service.spec.type == "ExternalName":
        return f"Service {service.namespace}/{service.name} is of type ExternalName; only Services with a cluster IP can be parents"
    if service.headless:
        return f"Service {service.namespace}/{service.name} is headless (clusterIP: None); only Services with a cluster IP can be parents"
    if service.cluster_ip is None:
        return f"Service {service.namespace}/{service.name} has no cluster IP yet"
    return None


def proxied_ports(service: Service) -> list[ServicePort]:
    """Ports that get a cluster: TCP ports of any Service that is not ExternalName."""
    if service.spec.type == "ExternalName":
        return []
    return [p for p in service.spec.ports if port_protocol(p) is not None]
