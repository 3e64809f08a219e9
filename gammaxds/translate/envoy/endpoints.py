"""ClusterLoadAssignments from EndpointSlices: conditions, zones, and target-port resolution."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import health_check_pb2

from ...model import EndpointSlice, Service, ServicePort
from .names import cluster_name
from .protos import endpoint_components_pb2, endpoint_pb2, socket_address

READY, FALLBACK = (
    0,
    1,
)  # priorities: serving-but-terminating endpoints only take traffic when nothing is ready


def _slice_port(slice_: EndpointSlice, port: ServicePort) -> int | None:
    """The target port for this Service port in this slice: the slice port with the Service port's name."""
    for p in slice_.ports or []:
        if (p.name or "") == port.name and p.port is not None:
            return p.port
    if slice_.ports is None and isinstance(port.target_port, int):
        return port.target_port  # no ports on the slice: the Service's own numeric targetPort
    return None


def _priority(ready: bool | None, serving: bool | None, terminating: bool | None) -> int | None:
    if ready is None or ready:
        return READY
    if serving and terminating:
        return FALLBACK
    return None


def collect_endpoints(
    port: ServicePort, slices: Sequence[EndpointSlice]
) -> dict[tuple[str, int], tuple[int, str]]:
    """(address, port) → (priority, zone). An endpoint in several slices keeps its best condition."""
    found: dict[tuple[str, int], tuple[int, str]] = {}
    for s in slices:
        if s.address_type == "FQDN":
            continue
        target = _slice_port(s, port)
        if target is None:
            continue
        for ep in s.endpoints:
            c = ep.conditions
            prio = _priority(c.ready, c.serving, c.terminating)
            if prio is None:
                continue
            for addr in ep.addresses:
                key = (addr, target)
                if key not in found or prio < found[key][0]:
                    found[key] = (prio, ep.zone or "")
    return found


def build_load_assignment(
    service: Service, port: ServicePort, slices: Sequence[EndpointSlice]
) -> endpoint_pb2.ClusterLoadAssignment:
    groups: dict[tuple[int, str], list[tuple[str, int]]] = {}
    for (addr, target), (prio, zone) in collect_endpoints(port, slices).items():
        groups.setdefault((prio, zone), []).append((addr, target))
    cla = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name(service.namespace, service.name, port.port)
    )
    for (prio, zone), addrs in sorted(groups.items()):
        locality = cla.endpoints.add(priority=prio)
        if zone:
            locality.locality.zone = zone
        for addr, target in sorted(addrs):
            locality.lb_endpoints.add(
                endpoint=endpoint_components_pb2.Endpoint(address=socket_address(addr, target)),
                health_status=health_check_pb2.HEALTHY,
            )
    return cla
