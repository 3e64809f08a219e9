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
ADMIN_CLUSTER = "gammaxds_admin"
READINESS_LISTENER = "gammaxds_readiness"
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
    dns: dict[str, Any] = {}
    if discovery == "STRICT_DNS":
        # A name (the control plane's Service) is resolved as every other process of the pod resolves it:
        # libc's getaddrinfo, so /etc/hosts, resolv.conf's search domains (`gammaxds.gammaxds-system.svc`
        # completes to the cluster domain) and nsswitch all apply. Envoy's default c-ares resolver asks the
        # nameservers only.
        dns["typed_dns_resolver_config"] = {
            "name": "envoy.network.dns_resolver.getaddrinfo",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig"
            },
        }
    return {
        "name": XDS_CLUSTER,
        "type": discovery,
        **dns,
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
    readiness_address: str | None = None,
    access_log: bool = True,
) -> dict[str, Any]:
    """The bootstrap as a dict: node identity for the control plane, ADS for everything, and an admin port.

    With `readiness_address`, also a static listener there that answers `GET /ready` from the admin (Envoy's
    own readiness: 200 once the first configuration arrived) and 404 to anything else, so a kubelet probe can
    reach readiness while the admin itself stays on loopback. With `access_log` off, the node metadata says
    `access_log: "off"` and the control plane sends this sidecar listeners without access logs; on is the
    default and is left unsaid, so the bootstraps of earlier versions mean the same."""
    if not namespace:
        raise ValueError("a sidecar needs a namespace: it selects the configuration the sidecar receives")
    if capture not in CAPTURES:
        raise ValueError(f"capture must be one of {', '.join(CAPTURES)}, not {capture!r}")
    split_host_port(outbound_address)
    node_metadata = {"namespace": namespace, "capture": capture, "outbound_address": outbound_address}
    if not access_log:
        node_metadata["access_log"] = "off"
    return {
        "node": {"id": node_id, "cluster": namespace, "metadata": node_metadata},
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
        "static_resources": _static_resources(xds_address, admin_address, readiness_address),
        "admin": {"address": _socket_address(admin_address)},
    }


def _static_resources(xds_address: str, admin_address: str, readiness_address: str | None) -> dict[str, Any]:
    resources: dict[str, Any] = {"clusters": [_xds_cluster(xds_address)]}
    if readiness_address is not None:
        resources["listeners"] = [_readiness_listener(readiness_address)]
        resources["clusters"].append(_admin_cluster(admin_address))
        if split_host_port(readiness_address)[1] == split_host_port(admin_address)[1]:
            raise ValueError(
                f"the readiness address {readiness_address} needs a port of its own, not the admin's"
            )
    return resources


def _admin_cluster(admin_address: str) -> dict[str, Any]:
    """The admin as an upstream of the readiness listener (on loopback whatever address the admin binds)."""
    host, port = split_host_port(admin_address)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    address = {"socket_address": {"address": host, "port_value": port}}
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _readiness_listener(address: str) -> dict[str, Any]:
    """`GET /ready` → the admin's `/ready`; every other request 404, so nothing else of the admin is exposed."""
    routes = [
        {
            "match": {"path": "/ready", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
            "route": {"cluster": ADMIN_CLUSTER, "timeout": "1s"},
        },
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": READINESS_LISTENER,
        "route_config": {
            "name": READINESS_LISTENER,
            "virtual_hosts": [{"name": READINESS_LISTENER, "domains": ["*"], "routes": routes}],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "name": READINESS_LISTENER,
        "address": _socket_address(address),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
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
    readiness_address: str | None = None,
    access_log: bool = True,
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
        readiness_address=readiness_address,
        access_log=access_log,
    )
    return yaml.dump(config, Dumper=_BootstrapDumper, sort_keys=False)


class _BootstrapDumper(yaml.SafeDumper):
    """Quotes the strings Envoy's YAML parser would read as something else.

    Envoy reads YAML 1.1, where `y` and `n` (any case) are booleans; PyYAML quotes `yes`, `no`, `on`, `off`,
    `true` and `false` itself but leaves `y` and `n` bare, so a node named `n` became `id: false` and Envoy
    refused the bootstrap."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if value.lower() in ("y", "n"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_BootstrapDumper.add_representer(str, _represent_str)


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
