"""backendRefs → clusters. An invalid backend keeps its share of traffic and answers it with 500."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import World
from ..model.gateway import BackendObjectReference
from .envoy.names import cluster_name
from .services import port_protocol

# A cluster name that never exists: Envoy answers its share with `cluster_not_found_response_code` (500).
INVALID_BACKEND_CLUSTER = "gammaxds|invalid-backend"


@dataclass(frozen=True)
class Backend:
    cluster: str  # INVALID_BACKEND_CLUSTER when the reference does not resolve
    problem: str = ""  # status message when invalid
    reason: str = ""  # ResolvedRefs reason when invalid: BackendNotFound | InvalidKind

    @property
    def valid(self) -> bool:
        return not self.problem


def resolve_backend(world: World, ref: BackendObjectReference, route_namespace: str) -> Backend:
    namespace = ref.namespace or route_namespace
    where = f"{namespace}/{ref.name}"
    if ref.group != "" or ref.kind != "Service":
        kind = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
        return Backend(
            INVALID_BACKEND_CLUSTER,
            f"backendRef {kind} {where}: only core Services are supported",
            "InvalidKind",
        )
    service = world.services.get((namespace, ref.name))
    if service is None:
        return Backend(INVALID_BACKEND_CLUSTER, f"backendRef Service {where} not found", "BackendNotFound")
    if service.spec.type == "ExternalName":
        return Backend(
            INVALID_BACKEND_CLUSTER,
            f"backendRef Service {where} is ExternalName, which is not supported",
            "BackendNotFound",
        )
    port = next((p for p in service.spec.ports if p.port == ref.port), None)
    if port is None or port_protocol(port) is None:
        return Backend(
            INVALID_BACKEND_CLUSTER,
            f"backendRef Service {where} has no TCP port {ref.port}",
            "BackendNotFound",
        )
    return Backend(cluster_name(namespace, ref.name, port.port))
