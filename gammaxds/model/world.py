"""The World: every input object the control plane knows, indexed the way the translator asks for them."""

from __future__ import annotations

import itertools
import operator
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

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

    @cached_property
    def _kinds(self) -> dict[str, dict[tuple[str, str], Object]]:
        """Objects by kind, each sorted by (namespace, name): one sort for every index."""
        out: dict[str, dict[tuple[str, str], Object]] = {}
        for (k, ns, name), o in sorted(self.objects.items(), key=operator.itemgetter(0)):
            out.setdefault(k, {})[(ns, name)] = o
        return out

    def _of_kind(self, kind: str) -> dict[tuple[str, str], Object]:
        """The objects of one kind: each was parsed by that kind's model, which the typed properties below
        (`services`, `http_routes`, ...) state with a cast."""
        return self._kinds.get(kind, {})

    def diff(self, old: World) -> set[Key]:
        """Keys whose object is not the very same object in `old` (replaced, added or removed)."""
        a, b = old.objects, self.objects
        if len(a) == len(b) and list(a) == list(b):
            # Same keys in the same order (a source's copy with objects replaced): compare identities in C.
            return set(itertools.compress(b, map(operator.is_not, a.values(), b.values())))
        missing = object()
        changed = {k for k, v in b.items() if a.get(k, missing) is not v}
        changed.update(a.keys() - b.keys())
        return changed

    def successor_of(self, old: World, changed: set[Key]) -> World:
        """This World's objects as a new World whose indexes are `old`'s, patched for the `changed` keys (see
        `diff`), instead of rebuilt from every object: what a change costs then follows the change, not the
        World. Neither `self` nor `old` is modified; the indexes are seeded while the new World is built."""
        if "_kinds" not in old.__dict__ or "_kinds" in self.__dict__:
            return self
        out = World(self.objects)
        out._seed(old, changed)
        return out

    def _seed(self, old: World, changed: set[Key]) -> None:
        """Part of `successor_of`, on a World no one else has seen yet."""
        kinds = dict(old._kinds)
        touched: set[str] = set()
        resort: set[str] = set()
        for key in changed:
            kind, ns, name = key
            if kind not in touched:
                touched.add(kind)
                kinds[kind] = dict(kinds.get(kind, {}))
            obj = self.objects.get(key)
            if obj is None:
                kinds[kind].pop((ns, name), None)
                continue
            if (ns, name) not in kinds[kind]:
                resort.add(kind)
            kinds[kind][(ns, name)] = obj
        for kind in resort:
            kinds[kind] = dict(sorted(kinds[kind].items(), key=operator.itemgetter(0)))
        for kind in touched:
            if not kinds[kind]:
                del kinds[kind]
        self.__dict__["_kinds"] = kinds
        if "namespaces" in old.__dict__ and all(k in old.objects and k in self.objects for k in changed):
            self.__dict__["namespaces"] = old.namespaces  # only replacements: the same namespaces
        if "slices_by_service" not in old.__dict__:
            return
        if "EndpointSlice" not in touched:
            self.__dict__["slices_by_service"] = old.slices_by_service
            return
        by_service = dict(old.slices_by_service)
        changed_slices = [k for k in changed if k[0] == "EndpointSlice"]
        affected: set[tuple[str, str]] = set()
        for world in (old, self):
            for key in changed_slices:
                s = world.objects.get(key)
                if isinstance(s, EndpointSlice) and s.service_name:
                    affected.add((key[1], s.service_name))
        for ns, service in affected:
            keep = [
                s
                for s in by_service.get((ns, service), [])
                if ("EndpointSlice", ns, s.metadata.name) not in changed
            ]
            for key in changed_slices:
                s = self.objects.get(key)
                if key[1] == ns and isinstance(s, EndpointSlice) and s.service_name == service:
                    keep.append(s)
            keep.sort(key=lambda s: s.metadata.name)
            if keep:
                by_service[(ns, service)] = keep
            else:
                by_service.pop((ns, service), None)
        self.__dict__["slices_by_service"] = by_service

    @cached_property
    def services(self) -> dict[tuple[str, str], Service]:
        return cast(dict[tuple[str, str], Service], self._of_kind("Service"))

    @cached_property
    def http_routes(self) -> dict[tuple[str, str], HTTPRoute]:
        return cast(dict[tuple[str, str], HTTPRoute], self._of_kind("HTTPRoute"))

    @cached_property
    def grpc_routes(self) -> dict[tuple[str, str], GRPCRoute]:
        return cast(dict[tuple[str, str], GRPCRoute], self._of_kind("GRPCRoute"))

    @cached_property
    def reference_grants(self) -> dict[tuple[str, str], ReferenceGrant]:
        return cast(dict[tuple[str, str], ReferenceGrant], self._of_kind("ReferenceGrant"))

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
