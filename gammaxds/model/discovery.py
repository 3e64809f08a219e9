"""`discovery.k8s.io/v1` EndpointSlice: where a Service's pods are, and whether they may serve."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .base import K8sModel, Object

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointConditions(K8sModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class ForZone(K8sModel):
    name: str


class ForNode(K8sModel):
    name: str


class EndpointHints(K8sModel):
    for_zones: list[ForZone] = []
    for_nodes: list[ForNode] = []


class Endpoint(K8sModel):
    addresses: Annotated[list[str], Field(min_length=1, max_length=100)]
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: EndpointHints | None = None
    target_ref: dict[str, Any] | None = None
    deprecated_topology: dict[str, str] | None = None


class EndpointPort(K8sModel):
    name: str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    app_protocol: str | None = None


class EndpointSlice(Object):
    kind: str = "EndpointSlice"
    address_type: Literal["IPv4", "IPv6", "FQDN"] = "IPv4"
    endpoints: list[Endpoint] = []
    ports: list[EndpointPort] | None = None

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)
