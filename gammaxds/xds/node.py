"""The sidecar contract: which view a node gets, read from its bootstrap metadata."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import Node
from google.protobuf.struct_pb2 import Struct, Value

from gammaxds.translate.view import CAPTURES, DEFAULT_OUTBOUND, ViewKey


class NodeError(ValueError):
    """The node's metadata does not select a view; the stream is refused with INVALID_ARGUMENT."""


def _metadata(node: Node) -> Struct:
    metadata: Struct = node.metadata  # Node is untyped (xds-protos ships no stubs); its metadata is a Struct
    return metadata


def _string_field(node: Node, name: str) -> str | None:
    fields = _metadata(node).fields
    if name not in fields:
        return None
    value = fields[name]
    if value.WhichOneof("kind") != "string_value":
        raise NodeError(f"node.metadata.{name} must be a string")
    return value.string_value


def _access_log(node: Node) -> bool:
    """`metadata.access_log`: "on" (the default) or "off". A YAML bootstrap that writes `off` unquoted gives
    Envoy a boolean (YAML 1.1), which means the same and is taken as such."""
    value = _metadata(node).fields.get("access_log")
    if value is None:
        return True
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "string_value" and value.string_value in ("on", "off"):
        return value.string_value == "on"
    raise NodeError(f'node.metadata.access_log must be "on" or "off", not {_shown(value)}')


def _shown(value: Value) -> str:
    kind = value.WhichOneof("kind")
    return repr(value.string_value) if kind == "string_value" else f"a {kind or 'missing value'}"


def view_key(node: Node) -> ViewKey:
    namespace = _string_field(node, "namespace")
    if not namespace:
        raise NodeError(
            f"node {node.id!r} has no metadata.namespace: a gammaxds sidecar must say which namespace "
            "it serves (see `gammaxds bootstrap --namespace`)"
        )
    capture = _string_field(node, "capture") or "transparent"
    if capture not in CAPTURES:
        raise NodeError(f"node.metadata.capture must be one of {', '.join(CAPTURES)}, not {capture!r}")
    outbound = _string_field(node, "outbound_address") or DEFAULT_OUTBOUND
    host, sep, port = outbound.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise NodeError(f"node.metadata.outbound_address must be HOST:PORT, not {outbound!r}")
    return ViewKey(namespace, capture, outbound, _access_log(node))
