"""Sidecars set up as in a Kubernetes cluster: capture first (the init container), Envoy as the proxy uid, and the
control plane reached at its Service address, which is inside the captured Service CIDR.

In a cluster the control plane is a Service: its cluster IP is translated to a pod IP by kube-proxy, after the
pod's own capture rules have had their say. Here kube-proxy's DNAT is an iptables rule in the client pod's
`nat OUTPUT`, after the jump to capture. Without the uid exclusion Envoy's own connection to the control plane
is redirected back to Envoy; with it, every sidecar connects and routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gammaxds.testing.gamma import (
    ControlPlane,
    endpoint_slice,
    envoy_stats,
    eventually,
    http_route,
    parent,
    service,
    service_port,
    start_control_plane,
    start_injected_sidecar,
)
from gammaxds.testing.mesh import Mesh, Pod, Proc

XDS_PORT = 18000
XDS_NAME = "gammaxds.gammaxds-system.svc"
WITHIN = 15.0


@dataclass
class Cluster:
    mesh: Mesh
    cp: ControlPlane
    xds_ip: str  # the control plane's Service (cluster) IP
    echo_ip: str
    echo: Pod


def kube_proxy(pod: Pod, service_ip: str, backend_ip: str, *, replacing: str | None = None) -> None:
    """What kube-proxy does for the control plane's Service, in the pod's namespace after capture's jump."""
    rule = ["-p", "tcp", "-d", service_ip, "--dport", str(XDS_PORT), "-j", "DNAT"]
    if replacing is not None:
        pod.run(
            [
                "iptables",
                "-w",
                "5",
                "-t",
                "nat",
                "-D",
                "OUTPUT",
                *rule,
                "--to-destination",
                f"{replacing}:{XDS_PORT}",
            ]
        )
    pod.run(
        [
            "iptables",
            "-w",
            "5",
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            *rule,
            "--to-destination",
            f"{backend_ip}:{XDS_PORT}",
        ]
    )


def connected(pod: Pod) -> bool:
    return envoy_stats(pod, "control_plane.connected_state").get("control_plane.connected_state") == "1"


def echo_answers(pod: Pod, cluster: Cluster, path: str = "/") -> str | None:
    resp = pod.http(f"http://{cluster.echo_ip}{path}", headers={"Host": "echo.app"}, timeout=3)
    return resp.json().get("pod") if resp.status == 200 else None


@pytest.fixture(scope="module")
def cluster(mesh_supported: None) -> Iterator[Cluster]:
    with Mesh() as mesh:
        try:
            cp = start_control_plane(mesh.add_pod("xds"), xds_port=XDS_PORT)
            echo = mesh.add_pod("echo-0")
            echo.start_echo("echo")
            echo_ip = mesh.service_ip(10)
            cp.write("services", [
                service("echo", "app", echo_ip, [service_port("http", 80, 8080)]),
                endpoint_slice("echo-1", "app", "echo", [echo.ip], {"http": 8080}),
            ])  # fmt: skip
            yield Cluster(mesh, cp, mesh.service_ip(100), echo_ip, echo)
        finally:
            print(mesh.logs())  # shown for failing tests only


def client(cluster: Cluster, name: str, **options: object) -> tuple[Pod, Proc]:
    """A pod whose sidecar reaches the control plane at its Service IP, set up as an injected pod is."""
    pod = cluster.mesh.add_pod(name)
    pod.apply_capture()  # the jump to capture comes first in OUTPUT, kube-proxy's rule after it
    kube_proxy(pod, cluster.xds_ip, cluster.cp.pod.ip)
    address = options.pop("xds_address", f"{cluster.xds_ip}:{XDS_PORT}")
    envoy = start_injected_sidecar(pod, "web", str(address), **options)  # type: ignore[arg-type]
    return pod, envoy


def test_sidecars_reach_the_control_plane_at_its_service_ip_through_capture(cluster: Cluster) -> None:
    pods = [client(cluster, f"client-{i}")[0] for i in range(2)]
    for pod in pods:
        assert connected(pod)
        assert (
            eventually(lambda p=pod: echo_answers(p, cluster), WITHIN, what="echo through the sidecar")[1]
            == "echo-0"
        )
        # The request went through Envoy (it adds a request id), and Envoy's upstream to the endpoint was not
        # captured again: one connection through the capture listener.
        seen = pod.http(f"http://{cluster.echo_ip}/", headers={"Host": "echo.app"}).json()["headers"]
        assert seen.get("x-request-id"), seen
    nat = pods[0].nat_rules()
    assert nat.index("-A OUTPUT -j GAMMAXDS_OUTPUT") < next(i for i, r in enumerate(nat) if "DNAT" in r)


def test_without_the_uid_exclusion_the_sidecar_never_reaches_the_control_plane(cluster: Cluster) -> None:
    """The same set-up with the exclusion removed: Envoy's connection to the control plane's Service IP is
    redirected to Envoy's own (not yet configured) capture port, and fails, again and again."""
    pod, _envoy = client(cluster, "no-exclusion", proxy_uid=None, wait_ready=False)
    stat = "cluster.xds_cluster.upstream_cx_connect_fail"
    eventually(
        lambda: int(envoy_stats(pod, stat).get(stat, "0")) >= 2, WITHIN, what="two failed xDS connects"
    )
    assert not connected(pod)
    assert pod.http("http://127.0.0.1:15000/ready").status != 200
    assert "no-exclusion" not in cluster.cp.admin("/debug/proxies").body


def test_xds_by_service_name_and_reconnect_when_the_control_plane_pod_is_replaced(cluster: Cluster) -> None:
    pod = cluster.mesh.add_pod("by-name")
    pod.hosts({XDS_NAME: cluster.xds_ip})  # the cluster DNS answers the Service's name with its cluster IP
    pod.apply_capture()
    kube_proxy(pod, cluster.xds_ip, cluster.cp.pod.ip)
    start_injected_sidecar(pod, "web", f"{XDS_NAME}:{XDS_PORT}")
    assert connected(pod)
    eventually(lambda: echo_answers(pod, cluster) == "echo-0", WITHIN, what="echo through the sidecar")

    # The control plane pod is replaced: a new pod (new IP) on the same manifests, kube-proxy's rule follows
    # the endpoint, the old pod goes away. The sidecar reconnects to the same name and is configured by the
    # new control plane.
    old = cluster.cp
    new = start_control_plane(cluster.mesh.add_pod("xds-2"), manifests=old.manifests, xds_port=XDS_PORT)
    kube_proxy(pod, cluster.xds_ip, new.pod.ip, replacing=old.pod.ip)
    old.proc.stop()
    eventually(
        lambda: "by-name" in new.admin("/debug/proxies").body, WITHIN, what="the sidecar on the new plane"
    )
    assert connected(pod)
    new.write("route-moved", [http_route("moved", "app", [parent("echo")], [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "filters": [{"type": "RequestHeaderModifier",
                      "requestHeaderModifier": {"set": [{"name": "x-plane", "value": "new"}]}}],
         "backendRefs": [{"name": "echo", "port": 80}]}])])  # fmt: skip

    def header_from_new_plane() -> bool:
        resp = pod.http(f"http://{cluster.echo_ip}/", headers={"Host": "echo.app"}, timeout=3)
        return resp.status == 200 and resp.json()["headers"].get("x-plane") == "new"

    eventually(header_from_new_plane, WITHIN, what="a route written after the replacement, in force")
    cluster.cp = new
    new.remove("route-moved")


def test_inbound_capture_passes_traffic_unchanged_and_logs_the_real_client(cluster: Cluster) -> None:
    server = cluster.mesh.add_pod("server")
    server.start_echo("web", port=8080)
    private = server.popen(
        ["python3", "-m", "http.server", "--bind", "127.0.0.1", "9000"], name="private"
    )  # bound to loopback only: it must stay unreachable from other pods
    server.wait_listening(9000, private)
    server.apply_capture(inbound=True)
    kube_proxy(server, cluster.xds_ip, cluster.cp.pod.ip)
    envoy = start_injected_sidecar(server, "web", f"{cluster.xds_ip}:{XDS_PORT}", inbound=True)
    caller = cluster.mesh.add_pod("caller")

    with caller.session() as s:
        url = f"http://{server.ip}:8080/inbound/path?q=1"
        tally = s.many(url, 1000, headers={"x-custom": "kept"}, fields=("path",))
        assert tally.counts == {(200, "/inbound/path?q=1"): 1000}, tally  # nothing dropped
        seen = s.http(url, headers={"x-custom": "kept"}).json()
        # Unchanged: a TCP passthrough adds nothing (no x-request-id, no x-forwarded-for) and drops nothing.
        assert seen["headers"].get("x-custom") == "kept"
        assert not {"x-request-id", "x-forwarded-for", "x-envoy-expected-rq-timeout-ms"} & set(
            seen["headers"]
        )
        for _ in range(5):  # separate connections, one access-log line each
            assert s.http(url).status == 200
        assert (
            s.http(f"http://{server.ip}:9000/", timeout=3).status == 0
        )  # the loopback-only app stays private

    def logged() -> list[str]:
        return re.findall(
            rf"inbound {re.escape(caller.ip)}:\d+ -> {re.escape(server.ip)}:8080 ", envoy.output()
        )

    eventually(lambda: len(logged()) >= 6, WITHIN, what="access-log lines naming the caller")
    stat = "listener.0.0.0.0_15006.downstream_cx_total"
    assert int(envoy_stats(server, stat)[stat]) >= 7  # every connection went through the inbound listener
