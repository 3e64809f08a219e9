"""Real Envoy as a captured sidecar, from a static bootstrap (no control plane needed).

Proves the capture design with the real proxy: REDIRECT delivers Service traffic to Envoy on 127.0.0.1:15001,
the `original_dst` listener filter restores the cluster IP and port so the filter chain of the Service that
was dialed is chosen (the Host header does not matter), and Envoy's own connections to pod IPs are not
captured again (no uid exclusion needed).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gammaxds.testing.mesh import Mesh, envoy_binary

pytestmark = [
    pytest.mark.usefixtures("mesh_supported"),
    pytest.mark.skipif(envoy_binary() is None, reason="no envoy executable next to the Python interpreter"),
]

ADMIN = 15000


def _typed(kind: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{kind}", **fields}


def _chain(cluster_ip: str, port: int, cluster: str) -> dict[str, Any]:
    route = {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
    hcm = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix=cluster,
        route_config={"virtual_hosts": [{"name": cluster, "domains": ["*"], "routes": [route]}]},
        http_filters=[
            {
                "name": "envoy.filters.http.router",
                "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
            }
        ],
    )
    return {
        "filter_chain_match": {
            "prefix_ranges": [{"address_prefix": cluster_ip, "prefix_len": 32}],
            "destination_port": port,
        },
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
    }


def _cluster(name: str, ip: str, port: int) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def static_sidecar(services: dict[tuple[str, int], tuple[str, str, int]]) -> dict[str, Any]:
    """A transparent sidecar bootstrap: {(cluster IP, port): (cluster name, pod IP, pod port)}."""
    listener = {
        "name": "outbound",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
        "listener_filters": [
            {
                "name": "envoy.filters.listener.original_dst",
                "typed_config": _typed("envoy.extensions.filters.listener.original_dst.v3.OriginalDst"),
            }
        ],
        "filter_chains": [_chain(ip, port, name) for (ip, port), (name, _, _) in services.items()],
    }
    clusters = [_cluster(name, pod_ip, pod_port) for name, pod_ip, pod_port in services.values()]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN}}},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    }


def test_envoy_sidecar_serves_captured_service_traffic(mesh: Mesh) -> None:
    a, b, client = mesh.add_pod("svc-a-0"), mesh.add_pod("svc-b-0"), mesh.add_pod("client")
    a.start_echo("svc-a")
    b.start_echo("svc-b")
    ip_a, ip_b = mesh.service_ip(10), mesh.service_ip(11)
    config = mesh.tmpdir / "client-envoy.json"
    config.write_text(
        json.dumps(
            static_sidecar(
                {
                    (ip_a, 80): ("svc-a", a.ip, 8080),
                    (ip_b, 80): ("svc-b", b.ip, 8080),
                }
            )
        )
    )
    client.start_envoy(config, admin_port=ADMIN)
    client.apply_capture()

    resp = client.http(f"http://{ip_a}/hello")
    assert resp.status == 200, resp.error or resp.body
    assert (resp.json()["service"], resp.json()["path"]) == ("svc-a", "/hello")
    assert resp.json()["headers"].get("x-request-id")  # it went through Envoy's HTTP connection manager

    # The cluster IP dialed picks the Service; a Host header naming another Service changes nothing.
    resp = client.http(f"http://{ip_b}/", headers={"Host": f"{ip_a}"})
    assert resp.status == 200, resp.error or resp.body
    assert resp.json()["service"] == "svc-b"

    # A Service port the sidecar has no chain for is not served (and the connection does not loop).
    assert client.http(f"http://{ip_a}:81/", timeout=3).status == 0

    # Pod IPs bypass the sidecar entirely.
    direct = client.http(f"http://{a.ip}:8080/direct")
    assert direct.status == 200 and "x-request-id" not in direct.json()["headers"]

    # Envoy's upstream connections to pod IPs were not recaptured: the listener saw only the client's three
    # connections (one matched no chain), and each backend saw its requests once.
    text = client.http(f"http://127.0.0.1:{ADMIN}/stats?filter=_15001").body
    stats = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    listener = "listener.127.0.0.1_15001."
    assert stats[listener + "downstream_cx_total"] == "2", text
    assert stats[listener + "no_filter_chain_match"] == "1", text
    seen_a = [r["path"] for r in client.http(f"http://{a.ip}:8080/__requests").json()["requests"]]
    assert seen_a == ["/hello", "/direct"]
