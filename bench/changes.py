"""A synthetic mesh that changes the way a source sees it: one object replaced (or added) per new World."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from gammaxds.model import Object, World, parse_object
from gammaxds.model.world import key_of

from .meshgen import SERVICE_CIDR, MeshSpec, generate_raw


def parse_one(raw: dict[str, Any]) -> Object:
    loaded = parse_object(raw)
    assert not loaded.errors and len(loaded.objects) == 1, loaded.errors
    return loaded.objects[0]


class Mesh:
    """The raw manifests of a MeshSpec and the current World; each change returns the next World, built as a
    source builds it: a copy of the previous objects dict with one object replaced or added."""

    def __init__(self, spec: MeshSpec, extra: list[dict[str, Any]] | None = None) -> None:
        self.spec = spec
        self.raw: dict[tuple[str, str, str], dict[str, Any]] = {}
        objects = []
        for item in [*generate_raw(spec), *(extra or [])]:
            obj = parse_one(item)
            self.raw[key_of(obj)] = item
            objects.append(obj)
        self.world = World.of(objects)
        self.counter = 0

    def put(self, raw: dict[str, Any]) -> World:
        obj = parse_one(raw)
        key = key_of(obj)
        self.raw[key] = raw
        objects = dict(self.world.objects)
        objects[key] = obj
        self.world = World(objects)
        return self.world

    def slice_of(self, service: int) -> dict[str, Any]:
        ns = f"ns-{service % self.spec.namespaces}"
        return copy.deepcopy(self.raw[("EndpointSlice", ns, f"svc-{service}-0")])

    def endpoint_change(self, service: int) -> World:
        """One endpoint of one EndpointSlice moves to a new pod IP (a pod replaced)."""
        self.counter += 1
        raw = self.slice_of(service)
        raw["endpoints"][0]["addresses"] = [str(ipaddress.ip_address("10.64.0.0") + self.counter)]
        return self.put(raw)

    def route_of(self, service: int) -> dict[str, Any]:
        ns = f"ns-{service % self.spec.namespaces}"
        return copy.deepcopy(self.raw[("HTTPRoute", ns, f"svc-{service}-route")])

    def route_change(self, service: int) -> World:
        """A producer route's first rule gets a new request timeout (an edit of one HTTPRoute)."""
        self.counter += 1
        raw = self.route_of(service)
        raw["spec"]["rules"][0]["timeouts"] = {"request": f"{1 + self.counter % 50}s"}
        return self.put(raw)

    def service_added(self) -> World:
        """A new Service (two ports, a cluster IP) appears in ns-1."""
        self.counter += 1
        ip = str(SERVICE_CIDR.network_address + 100_000 + self.counter)
        return self.put(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"added-{self.counter}", "namespace": "ns-1"},
                "spec": {
                    "clusterIP": ip,
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": "http"},
                        {
                            "name": "grpc",
                            "port": 9090,
                            "targetPort": 9090,
                            "appProtocol": "kubernetes.io/h2c",
                        },
                    ],
                },
            }
        )
