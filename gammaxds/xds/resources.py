"""One xDS resource, serialised once per version and shared by every stream that sends it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from gammaxds.translate.view import CLUSTER_TYPE

VERSION_CHARS = 16


def digest(data: bytes) -> str:
    """A short content hash: 64 bits is plenty to tell versions of one resource apart."""
    return hashlib.sha256(data).hexdigest()[:VERSION_CHARS]


@dataclass(frozen=True, eq=False, slots=True)
class Resource:
    """A resource at one version. `any` and `delta` are built once; responses copy them, never re-encode."""

    type_url: str
    name: str
    version: str
    message: Message
    any: Any
    delta: discovery_pb2.Resource

    @property
    def eds_name(self) -> str | None:
        """For an EDS cluster, the ClusterLoadAssignment name it subscribes to; else None."""
        if self.type_url != CLUSTER_TYPE:
            return None
        cluster = self.message
        assert isinstance(cluster, Cluster)
        if cluster.WhichOneof("cluster_discovery_type") != "type" or cluster.type != Cluster.EDS:
            return None
        return cluster.eds_cluster_config.service_name or cluster.name


def encode(type_url: str, name: str, message: Message) -> Resource:
    """Serialise deterministically (same message, same bytes, same version on every run)."""
    data = message.SerializeToString(deterministic=True)
    version = digest(data)
    packed = Any(type_url=type_url, value=data)
    delta = discovery_pb2.Resource(name=name, version=version, resource=packed)
    return Resource(type_url, name, version, message, packed, delta)


def state_version(items: Iterable[tuple[str, str]]) -> str:
    """The version of a set of (name, version) pairs: what a client holds of one type."""
    h = hashlib.sha256()
    for name, version in sorted(items):
        h.update(name.encode())
        h.update(b"\0")
        h.update(version.encode())
        h.update(b"\n")
    return h.hexdigest()[:VERSION_CHARS]
