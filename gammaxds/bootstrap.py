"""Envoy bootstrap for one gammaxds sidecar, and the table `gammaxds status` prints.

Pure functions: the CLI passes its flags in and prints what comes back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import yaml

from gammaxds.translate.view import CAPTURES, DEFAULT_OUTBOUND

XDS_CLUSTER = "xds_cluster"
DEFAULT_XDS_ADDRESS = "127.0.0.1:18000"
DEFAULT_ADMIN_ADDRESS = "127.0.0.1:15000"
TYPE_COLUMNS = (
    ("CDS", "Cluster"),
    ("EDS", "ClusterLoadAssignment"),
    ("LDS", "Listener"),
    ("RDS", "RouteConfiguration"),
)


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _socket_address(address: str) -> dict[str, Any]:
    host, port = split_host_port(address)
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _xds_cluster(xds_address: str) -> dict[str, Any]:
    if xds_address.startswith("unix:"):
        address: dict[str, Any] = {"pipe": {"path": xds_address.removeprefix("unix:")}}
        discovery = "STATIC"
    else:
        address = _socket_address(xds_address)
        discovery = "STATIC" if _is_ip(address["socket_address"]["address"]) else "STRICT_DNS"
    return {
        "name": XDS_CLUSTER,
        "type": discovery,
        "connect_timeout": "1s",
        # gRPC needs HTTP/2; the keepalive pings find a dead control plane without waiting for TCP.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "5s"}}
                },
            }
        },
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def bootstrap(
    node_id: str,
    namespace: str,
    *,
    xds_address: str = DEFAULT_XDS_ADDRESS,
    capture: str = "transparent",
    outbound_address: str = DEFAULT_OUTBOUND,
    admin_address: str = DEFAULT_ADMIN_ADDRESS,
    delta: bool = True,
) -> dict[str, Any]:
    """The bootstrap as a dict: node identity for the control plane, ADS for everything, and an admin port."""
    if not namespace:
        raise ValueError("a sidecar needs a namespace: it selects the configuration the sidecar receives")
    if capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}, not {capture!r}")
    split_host_port(outbound_address)
    return {
        "node": {
            "id": node_id,
            "cluster": namespace,
            "metadata": {"namespace": namespace, "capture": capture, "outbound_address": outbound_address},
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [_xds_cluster(xds_address)]},
        "admin": {"address": _socket_address(admin_address)},
    }


def render_bootstrap(
    node_id: str,
    namespace: str,
    *,
    xds_address: str = DEFAULT_XDS_ADDRESS,
    capture: str = "transparent",
    outbound_address: str = DEFAULT_OUTBOUND,
    admin_address: str = DEFAULT_ADMIN_ADDRESS,
    delta: bool = True,
) -> str:
    """The bootstrap YAML that `gammaxds bootstrap` prints."""
    config = bootstrap(
        node_id,
        namespace,
        xds_address=xds_address,
        capture=capture,
        outbound_address=outbound_address,
        admin_address=admin_address,
        delta=delta,
    )
    return yaml.safe_dump(config, sort_keys=False)


def _type_cell(info: dict[str, Any] | None) -> str:
    if not info:
        return "-"
    sent, acked = (info.get("sent_version") or "")[:8], (info.get("acked_version") or "")[:8]
    if info.get("error"):
        return f"NACK {sent}"
    if sent and sent == acked:
        return f"synced {sent}"
    return f"sent {sent or '-'} acked {acked or '-'}"


def status_table(proxies: Sequence[dict[str, Any]]) -> str:
    """One line per connected sidecar (the JSON of /debug/proxies): versions sent and acknowledged per type,
    and the last NACK error."""
    header = ["NODE", "NAMESPACE", "CAPTURE", "XDS", *(col for col, _ in TYPE_COLUMNS), "ERROR"]
    rows = [header]
    for proxy in proxies:
        types = proxy.get("types", {})
        errors = [
            f"{col}: {types[t]['error']}" for col, t in TYPE_COLUMNS if (types.get(t) or {}).get("error")
        ]
        rows.append(
            [
                str(proxy.get("node_id", "")),
                str(proxy.get("namespace", "")),
                str(proxy.get("capture", "")),
                str(proxy.get("protocol", "")),
                *(_type_cell(types.get(t)) for _, t in TYPE_COLUMNS),
                " | ".join(e.replace("\n", " ") for e in errors) or "-",
            ]
        )
    if len(rows) == 1:
        return "no sidecars connected\n"
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"
