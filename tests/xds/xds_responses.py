"""Reading responses back in tests: resource names and messages per response."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.message import Message

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE

MESSAGES: dict[str, type[Message]] = {
    CLUSTER_TYPE: Cluster,
    ENDPOINT_TYPE: ClusterLoadAssignment,
    LISTENER_TYPE: Listener,
    ROUTE_TYPE: RouteConfiguration,
}
SHORT = {CLUSTER_TYPE: "CDS", ENDPOINT_TYPE: "EDS", LISTENER_TYPE: "LDS", ROUTE_TYPE: "RDS"}


def messages(response: Any) -> list[Any]:
    """The resources of a SotW or delta response, unpacked."""
    out = []
    for item in response.resources:
        packed = item.resource if hasattr(item, "resource") else item
        msg = MESSAGES[response.type_url]()
        packed.Unpack(msg)
        out.append(msg)
    return out


def names(response: Any) -> list[str]:
    return [getattr(m, "cluster_name", "") or m.name for m in messages(response)]


def kinds(responses: list[Any]) -> list[str]:
    """The sequence of response types, e.g. ["CDS", "EDS", "LDS", "RDS"]."""
    return [SHORT[r.type_url] for r in responses]
