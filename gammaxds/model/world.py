"""The World: every input object the control plane knows, indexed the way the translator asks for them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from .base import Object
from .core import Namespace, Service
from .discovery import EndpointSlice
from .gateway import GRPCRoute, HTTPRoute, ReferenceGrant

Key = tuple[str, str, str]  # kind, namespace, name
KINDS: dict[str, type[Object]] = {
    "Namespace": Namespace,
    "Service": Service,
    "EndpointSlice": EndpointSlice,
    "HTTPRoute": HTTPRoute,
    "GRPCRoute": GRPCRoute,
    "ReferenceGrant": ReferenceGrant,
}


def key_of(obj: Object) -> Key:
    return (obj.kind, obj.metadata.namespace if obj.kind != "Namespace" else "", obj.metadata.name)


@dataclass(frozen=True)
class World:
    """An immutable set of objects; sources build a new World for each change they publish."""

    objects: dict[Key, Object] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Iterable[Object]) -> World:
        return cls({key_of(o): o for o in objects})

    def __iter__(self) -> Iterator[Object]:
        return iter(self.objects.values())

    def __len__(self) -> int:
        return len(self.objects)

    def _of_kind(self, kind: str) -> dict[tuple[str, str], Object]:
        return {(ns, name): o for (k, ns, name), o in sorted(self.objects.items()) if k == kind}

    @cached_property
    def services(self) -> dict[tuple[str, str], Service]:
        return self._of_kind("Service")  # type: ignore[return-value]

    @cached_property
    def http_routes(self) -> dict[tuple[str, str], HTTPRoute]:
        return self._of_kind("HTTPRoute")  # type: ignore[return-value]

    @cached_property
    def grpc_routes(self) -> dict[tuple[str, str], GRPCRoute]:
        return self._of_kind("GRPCRoute")  # type: ignore[return-value]

    @cached_property
    def reference_grants(self) -> dict[tuple[str, str], ReferenceGrant]:
        return self._of_kind("ReferenceGrant")  # type: ignore[return-value]

    @cached_property
    def namespaces(self) -> list[str]:
        """Namespaces that exist or hold any object: each is a possible client namespace."""
        names = {ns for (k, ns, _n) in self.objects if k != "Namespace"}
        names |= {name for (k, _ns, name) in self.objects if k == "Namespace"}
        return sorted(names)

    @cached_property
    def slices_by_service(self) -> dict[tuple[str, str], list[EndpointSlice]]:
        out: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for (ns, _name), s in self._of_kind("EndpointSlice").items():
            assert isinstance(s, EndpointSlice)
            if s.service_name:
                out[(ns, s.service_name)].append(s)
        return dict(out)
