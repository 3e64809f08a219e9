"""One xDS resource, serialised once per version and shared by every stream that sends it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from gammaxds.translate.view import CLUSTER_TYPE

VERSION_CHARS = 16
MASK = (1 << 64) - 1


def digest(data: bytes) -> str:
    """A short content hash: 64 bits is plenty to tell versions of one resource apart."""
    return hashlib.sha256(data).hexdigest()[:VERSION_CHARS]


def item_token(name: str, version: str) -> int:
    """A 64-bit hash of one (name, version) pair. A set's version is the sum of its items' tokens, so it is
    updated in O(changes) when one item changes, and is the same in every process (no per-process hash)."""
    return int.from_bytes(hashlib.sha256(f"{name}\0{version}".encode()).digest()[:8], "big")


def set_version(total: int) -> str:
    """The version string of a set whose item tokens sum to `total`."""
    return f"{total & MASK:0{VERSION_CHARS}x}"


# The field that holds one resource in DiscoveryResponse (an Any) and in DeltaDiscoveryResponse (a Resource).
RESOURCES_FIELD = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    """One protobuf string or embedded-message field, encoded."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


@dataclass(frozen=True, eq=False, slots=True)
class Resource:
    """A resource at one version. Everything a response needs is encoded once here and shared by every
    stream: responses are joined from `sotw_entry` / `delta_entry` bytes, never re-encoded (see `wire`)."""

    type_url: str
    name: str
    version: str
    message: Message
    any: Any
    token: int  # item_token(name, version): what it adds to a client's state version
    sotw_entry: bytes  # this resource as one `resources` entry of a DiscoveryResponse
    delta_entry: bytes  # ... and of a DeltaDiscoveryResponse
    # For an EDS cluster, the ClusterLoadAssignment name it subscribes to; else None. Kept, not derived:
    # a push reads it for every changed cluster of every stream.
    eds_name: str | None = None


def _eds_name(type_url: str, message: Message) -> str | None:
    if type_url != CLUSTER_TYPE:
        return None
    assert isinstance(message, Cluster)
    if message.WhichOneof("cluster_discovery_type") != "type" or message.type != Cluster.EDS:
        return None
    name: str = message.eds_cluster_config.service_name or message.name  # Cluster has no stubs (xds-protos)
    return name


def encode(type_url: str, name: str, message: Message) -> Resource:
    """Serialise deterministically (same message, same bytes, same version on every run)."""
    data = message.SerializeToString(deterministic=True)
    version = digest(data)
    packed = Any(type_url=type_url, value=data)
    delta = discovery_pb2.Resource(name=name, version=version, resource=packed)
    return Resource(
        type_url,
        name,
        version,
        message,
        packed,
        item_token(name, version),
        length_delimited(RESOURCES_FIELD, packed.SerializeToString(deterministic=True)),
        length_delimited(RESOURCES_FIELD, delta.SerializeToString(deterministic=True)),
        _eds_name(type_url, message),
    )
