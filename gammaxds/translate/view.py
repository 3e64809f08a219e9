"""What one class of sidecar sees: the contract between the translator and the xDS server."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.message import Message

Capture = Literal["transparent", "proxy"]
CAPTURES: tuple[Capture, ...] = ("transparent", "proxy")
DEFAULT_OUTBOUND = "127.0.0.1:15001"

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
# Make-before-break: a push sends types in this order, removals last.
PUSH_ORDER: tuple[str, ...] = (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)


@dataclass(frozen=True, order=True)
class ViewKey:
    """Selects a view. Proxy-mode listeners bind the sidecar's outbound address, so it is part of the key.

    `access_log` is the sidecar's own choice (node metadata `access_log: "off"`): its listeners then write no
    access log. Views that differ only there share every other resource, the very same objects."""

    namespace: str
    capture: Capture = "transparent"
    outbound: str = DEFAULT_OUTBOUND
    access_log: bool = True

    def __post_init__(self) -> None:
        if self.capture == "transparent" and self.outbound != DEFAULT_OUTBOUND:
            object.__setattr__(self, "outbound", DEFAULT_OUTBOUND)


@dataclass(frozen=True)
class View:
    """The four xDS resource sets of a view, each sorted by name.

    The translator returns the *same* message object for a resource whose inputs did not change, so the
    snapshot cache can reuse its serialised bytes by identity.
    """

    clusters: tuple[Cluster, ...] = ()
    endpoints: tuple[ClusterLoadAssignment, ...] = ()
    listeners: tuple[Listener, ...] = ()
    routes: tuple[RouteConfiguration, ...] = ()
    by_type: dict[str, dict[str, Message]] = field(init=False, repr=False, compare=False)
    # Set by `derive` only: the view this one was made from, and what differs (for the snapshot encoder).
    derived_from: Derivation | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "by_type",
            {
                CLUSTER_TYPE: {c.name: c for c in self.clusters},
                ENDPOINT_TYPE: {e.cluster_name: e for e in self.endpoints},
                LISTENER_TYPE: {lis.name: lis for lis in self.listeners},
                ROUTE_TYPE: {r.name: r for r in self.routes},
            },
        )

    def derive(
        self,
        changed: Mapping[str, Mapping[str, Message]],
        *,
        endpoints: tuple[ClusterLoadAssignment, ...] | None = None,
        routes: tuple[RouteConfiguration, ...] | None = None,
    ) -> View:
        """A new view: this one with the `changed` resources (by type, then name) replaced. Only resources that
        exist here may change (no names added or removed), so the sorted tuples keep their order; pass the
        new `endpoints` / `routes` tuples when those types changed. The new view records its derivation, so
        its snapshot is this one's patched rather than rebuilt. `self` is not touched."""
        view = copy.copy(self)
        by_type = {t: ({**m, **changed[t]} if t in changed else m) for t, m in self.by_type.items()}
        object.__setattr__(view, "by_type", by_type)
        if endpoints is not None:
            object.__setattr__(view, "endpoints", endpoints)
        if routes is not None:
            object.__setattr__(view, "routes", routes)
        derivation = Derivation(weakref.ref(self), {t: frozenset(m) for t, m in changed.items()})
        object.__setattr__(view, "derived_from", derivation)
        return view


@dataclass(frozen=True)
class Derivation:
    """How a view was made from an earlier one. A weak reference: a view never keeps its predecessors alive
    (the encoder can patch only a base it still holds a snapshot of)."""

    base: weakref.ReferenceType[View]
    changed: Mapping[str, frozenset[str]]
