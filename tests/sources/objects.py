"""Kubernetes objects for the source tests, as the API (or a manifest) holds them."""

from __future__ import annotations

from typing import Any

GW = "gateway.networking.k8s.io"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(ns: str, name: str, port: int = 80, ip: str = "10.96.0.10") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": port, "targetPort": 8080}]},
    }


def endpoint_slice(ns: str, name: str, service_name: str, *ips: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


def http_route(ns: str, name: str, parent: str, backend: str, path: str = "/") -> dict[str, Any]:
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": parent, "port": 80}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [{"name": backend, "port": 80}],
                }
            ],
        },
    }


def grpc_route(ns: str, name: str, parent: str, backend: str, service: str = "echo.Echo") -> dict[str, Any]:
    return {
        "apiVersion": f"{GW}/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": parent, "port": 80}],
            "rules": [
                {
                    "matches": [{"method": {"service": service}}],
                    "backendRefs": [{"name": backend, "port": 80}],
                }
            ],
        },
    }


def reference_grant(ns: str, name: str, from_ns: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GW}/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "from": [{"group": GW, "kind": "HTTPRoute", "namespace": from_ns}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }


def mesh() -> list[dict[str, Any]]:
    """One of every kind: two namespaces, two Services with endpoints, a route of each kind, a grant."""
    return [
        namespace("shop"),
        namespace("web"),
        service("shop", "cart", ip="10.96.0.10"),
        service("shop", "cart-v2", ip="10.96.0.11"),
        endpoint_slice("shop", "cart-abc", "cart", "10.0.0.1", "10.0.0.2"),
        endpoint_slice("shop", "cart-v2-abc", "cart-v2", "10.0.0.3"),
        http_route("shop", "cart-split", "cart", "cart-v2"),
        grpc_route("shop", "cart-grpc", "cart-v2", "cart-v2"),
        reference_grant("shop", "from-web", "web"),
    ]
