"""Why the sidecar answered a request itself: the body and `x-gammaxds-reason` header of its own 404, 500 and 503.

Envoy's own replies say little ("no healthy upstream", or nothing at all), and the client of a mesh sees only
the reply, never the control plane's status. So every reply the translator causes names the Service, route or
backend behind it:

- **404, no route matched** (Envoy's response flag `NR`): each virtual host carries the sentence in its
  metadata (`gammaxds.no_route`), and the connection manager's local reply config writes it out.
- **500 (503 for GRPCRoute), an invalid backend's share of a split**: that share goes to a cluster that never
  exists, Envoy answers with the route's `cluster_not_found_response_code` (flag `NC`); the route's metadata
  (`gammaxds.invalid_backends`) says which backends and why.
- **503, no ready endpoint** (flag `UH`): from the cluster's metadata (`gammaxds.service`, `gammaxds.port`).
- **Direct responses** (every backend invalid, no backend with a weight, an unsupported filter): the route's
  own `direct_response` body and a response header; they carry no response flag for a mapper to select.

Metadata values are plain data; the sentences are built with Envoy's formatter operators, and only with the
ones that hold a value on a local reply: `%METADATA(VIRTUAL_HOST:...)%` (set before a route is chosen, so it
holds on NR), `%METADATA(ROUTE:...)%` (NC: the route was chosen, the cluster is missing) and
`%CLUSTER_METADATA(...)%` (UH: the cluster exists). `%ROUTE_NAME%` is empty on NR, and neither
`%UPSTREAM_CLUSTER%` nor `%CLUSTER_METADATA%` has a value on NC. A gRPC client gets the same sentence as
`grpc-message` (Envoy turns a local reply's body into it) and the header as trailer metadata.
"""

from __future__ import annotations

from functools import cache

from google.protobuf.struct_pb2 import Struct

from .protos import (
    accesslog_pb2,
    base_pb2,
    hcm_pb2,
    substitution_format_string_pb2,
)

REASON_HEADER = "x-gammaxds-reason"
METADATA_NAMESPACE = "gammaxds"
# The proxy-mode virtual host of requests whose `Host` names no Service port: it has no routes, so they get
# the same 404 (`NR`) as before, now with a body that says so.
NO_SERVICE_VHOST = "no_service"
NO_SERVICE_REASON = "no Service port of the mesh is named by this request's Host"

_NO_ROUTE_FORMAT = f"%METADATA(VIRTUAL_HOST:{METADATA_NAMESPACE}:no_route)%"
_INVALID_BACKEND_FORMAT = f"%METADATA(ROUTE:{METADATA_NAMESPACE}:invalid_backends)%"
_NO_ENDPOINTS_FORMAT = (
    f"no ready endpoints for Service %CLUSTER_METADATA({METADATA_NAMESPACE}:service)% "
    f"port %CLUSTER_METADATA({METADATA_NAMESPACE}:port)%"
)


def metadata(**fields: str) -> base_pb2.Metadata:
    """`filter_metadata.gammaxds` with these fields: the human names an Envoy resource came from. Strings only,
    ports too: they are printed, never computed with (a Struct number would read `80.0` in a JSON dump)."""
    values = Struct()
    values.update(fields)
    return base_pb2.Metadata(filter_metadata={METADATA_NAMESPACE: values})


def no_route_reason(namespace: str, name: str, port: int) -> str:
    return f"no route of {namespace}/{name}:{port} matched"


def header_value(text: str) -> str:
    """`text` as a literal header value: Envoy reads `%` in configured header values as a formatter operator,
    and refuses a value with a line break."""
    return " ".join(text.splitlines()).replace("\0", "").replace("%", "%%")


def reason_header(text: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=REASON_HEADER, value=header_value(text)),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _mapper(flag: str, text_format: str) -> hcm_pb2.ResponseMapper:
    """A local reply with response flag `flag` gets `text_format` as its body and its reason header; the
    status code is Envoy's (or the route's), unchanged."""
    body = substitution_format_string_pb2.SubstitutionFormatString()
    body.text_format_source.inline_string = text_format
    return hcm_pb2.ResponseMapper(
        filter=accesslog_pb2.AccessLogFilter(
            response_flag_filter=accesslog_pb2.ResponseFlagFilter(flags=[flag])
        ),
        body_format_override=body,
        headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=REASON_HEADER, value=text_format),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
    )


@cache
def local_reply_config() -> hcm_pb2.LocalReplyConfig:
    """The same for every sidecar HTTP listener: what each reply says comes from the resource's metadata.

    Replies of any other kind (a timeout, a refused connection, a redirect) keep Envoy's own body."""
    return hcm_pb2.LocalReplyConfig(
        mappers=[
            _mapper("NR", _NO_ROUTE_FORMAT),
            _mapper("NC", _INVALID_BACKEND_FORMAT),
            _mapper("UH", _NO_ENDPOINTS_FORMAT),
        ]
    )
