"""`v1` Service and Namespace: the frontends routes attach to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import K8sModel, Object, PortNumber


class ServicePort(K8sModel):
    name: str = ""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    port: PortNumber
    target_port: int | str | None = None
    node_port: int | None = None


class ServiceSpec(K8sModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] = Field(default=[], alias="clusterIPs")
    ports: list[ServicePort] = []
    selector: dict[str, str] | None = None
    external_name: str | None = None
    # The rest of the v1 ServiceSpec: accepted so that a manifest kubectl accepts loads, not yet acted on.
    session_affinity: Literal["None", "ClientIP"] | None = None
    session_affinity_config: dict[str, Any] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    traffic_distribution: str | None = None
    publish_not_ready_addresses: bool | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] = []
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    external_ips: list[str] = Field(default=[], alias="externalIPs")
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] = []
    load_balancer_class: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    health_check_node_port: int | None = None


class Service(Object):
    kind: str = "Service"
    spec: ServiceSpec = ServiceSpec()

    @property
    def headless(self) -> bool:
        return self.spec.cluster_ip == "None"

    @property
    def cluster_ip(self) -> str | None:
        ip = self.spec.cluster_ip or (self.spec.cluster_ips[0] if self.spec.cluster_ips else None)
        return None if ip in (None, "", "None") else ip

    @property
    def fqdn(self) -> str:
        return f"{self.metadata.name}.{self.metadata.namespace}.svc.cluster.local"


class Namespace(Object):
    kind: str = "Namespace"
    spec: dict[str, Any] | None = None  # finalizers only
