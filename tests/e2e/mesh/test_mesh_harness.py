"""The namespace mesh harness and transparent capture, proven on real network namespaces and iptables."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from gammaxds import capture
from gammaxds.testing.mesh import Mesh, MeshError, sweep_stale

pytestmark = pytest.mark.usefixtures("mesh_supported")

CHAIN = capture.CHAIN
INBOUND = capture.INBOUND_CHAIN


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10, check=True)
    return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_pod_to_pod_http_over_the_bridge(mesh: Mesh) -> None:
    server, client = mesh.add_pod("echo"), mesh.add_pod("client")
    server.start_echo("echo", version="v2")
    resp = client.http(f"http://{server.ip}:8080/hello?x=1", headers={"x-test": "yes"})
    assert resp.status == 200, resp.error
    body = resp.json()
    assert (body["service"], body["version"], body["pod"]) == ("echo", "v2", "echo")
    assert (body["path"], body["host"]) == ("/hello?x=1", f"{server.ip}:8080")
    assert body["headers"]["x-test"] == "yes"
    assert resp.header("x-served-by") == "echo"
    assert client.http(f"http://{server.ip}:8080/?status=418").status == 418
    assert {server.ip, client.ip} <= {str(ip) for ip in mesh.subnet.hosts()}
    assert server.ip != client.ip


def test_service_cidr_exists_only_through_capture(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    start = time.monotonic()
    resp = client.http(f"http://{mesh.service_ip(10)}/", timeout=3)
    assert resp.status == 0
    assert resp.error and "No route to host" in resp.error
    assert time.monotonic() - start < 3  # fails fast, no hang


def test_capture_redirects_service_traffic_keeping_the_original_destination(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    client.apply_capture()
    client.start_original_dst_echo(port=15001)
    for ip, port in [(mesh.service_ip(10), 80), (mesh.service_ip(300), 8080), (mesh.service_ip(65534), 9)]:
        resp = client.http(f"http://{ip}:{port}/")
        assert resp.status == 200, resp.error
        seen = resp.json()
        assert seen["original_dst"] == f"{ip}:{port}"
        assert seen["local"] == "127.0.0.1:15001"
        assert seen["peer"].startswith(f"{client.ip}:")


def test_capture_port_is_configurable(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    client.apply_capture(port=15006)
    client.start_original_dst_echo(port=15006)
    resp = client.http(f"http://{mesh.service_ip(20)}:80/")
    assert resp.status == 200, resp.error
    assert resp.json() | {"peer": None} == {
        "original_dst": f"{mesh.service_ip(20)}:80",
        "local": "127.0.0.1:15006",
        "peer": None,
    }


def test_pod_ips_are_not_captured(mesh: Mesh) -> None:
    server, client = mesh.add_pod("echo"), mesh.add_pod("client")
    server.start_echo("echo")
    client.apply_capture()
    listener = client.start_original_dst_echo()
    resp = client.http(f"http://{server.ip}:8080/direct")
    assert resp.status == 200, resp.error
    assert resp.json()["service"] == "echo"
    # A pod IP port with nothing behind it is refused by that pod, not answered by the capture listener.
    refused = client.http(f"http://{server.ip}:9999/")
    assert refused.status == 0 and refused.error and "Connection refused" in refused.error
    # Loopback is not captured either.
    assert client.http("http://127.0.0.1:15001/").json()["original_dst"] in (None, "127.0.0.1:15001")
    # The echo server saw exactly our one request.
    seen = client.http(f"http://{server.ip}:8080/__requests").json()["requests"]
    assert [r["path"] for r in seen] == ["/direct"]
    assert listener.alive()


def test_apply_is_idempotent_and_remove_is_complete(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    before = client.nat_rules()
    assert not [r for r in before if CHAIN in r]
    client.apply_capture()
    client.apply_capture()
    ours = [r for r in client.nat_rules() if CHAIN in r]
    assert sorted(ours) == sorted(
        [
            f"-N {CHAIN}",
            f"-A OUTPUT -j {CHAIN}",
            f"-A {CHAIN} -m owner --uid-owner 1337 -j RETURN",
            f"-A {CHAIN} -d {mesh.service_cidr} -p tcp -j REDIRECT --to-ports 15001",
        ]
    )
    client.apply_capture("10.100.0.0/16", port=15009)  # re-apply replaces
    assert [r for r in client.nat_rules() if "REDIRECT" in r] == [
        f"-A {CHAIN} -d 10.100.0.0/16 -p tcp -j REDIRECT --to-ports 15009"
    ]
    assert len([r for r in client.nat_rules() if r == f"-A OUTPUT -j {CHAIN}"]) == 1
    # Inbound capture comes and goes with the flag, in PREROUTING, once however often it is applied.
    for _ in range(2):
        client.apply_capture(inbound=True)
    inbound = [r for r in client.nat_rules() if INBOUND in r]
    assert inbound == [
        f"-N {INBOUND}",
        f"-A PREROUTING -j {INBOUND}",
        f"-A {INBOUND} -i lo -j RETURN",
        f"-A {INBOUND} -p tcp -m tcp --dport 15000:15099 -j RETURN",
        f"-A {INBOUND} -p tcp -j REDIRECT --to-ports 15006",
    ]
    client.apply_capture()
    assert not [r for r in client.nat_rules() if INBOUND in r]
    client.apply_capture(inbound=True)
    client.remove_capture()
    assert client.nat_rules() == before
    client.remove_capture()  # removing twice is fine
    assert client.nat_rules() == before
    # And with the rules gone, Service traffic is no longer delivered anywhere.
    client.start_original_dst_echo()
    assert "No route to host" in (client.http(f"http://{mesh.service_ip(10)}/", timeout=3).error or "")


def test_rendered_script_applies_and_removes(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    before = client.nat_rules()
    for _ in range(2):
        client.run(["sh", "-c", capture.render(str(mesh.service_cidr))])
    assert capture.installed(netns=client.netns) == [
        f"-N {CHAIN}",
        f"-A OUTPUT -j {CHAIN}",
        f"-A {CHAIN} -m owner --uid-owner 1337 -j RETURN",
        f"-A {CHAIN} -d {mesh.service_cidr} -p tcp -j REDIRECT --to-ports 15001",
    ]
    client.start_original_dst_echo()
    assert client.http(f"http://{mesh.service_ip(7)}/").json()["original_dst"] == f"{mesh.service_ip(7)}:80"
    for _ in range(2):
        client.run(["sh", "-c", capture.render(str(mesh.service_cidr), remove=True)])
    assert client.nat_rules() == before


def test_capture_stays_inside_the_pod(mesh: Mesh) -> None:
    host_before = subprocess.run(
        ["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    client, other = mesh.add_pod("client"), mesh.add_pod("other")
    client.apply_capture()
    assert capture.installed(netns=other.netns) == []
    host_after = subprocess.run(
        ["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert host_after.count(CHAIN) == host_before.count(CHAIN)


def test_unix_socket_reaches_pods(mesh: Mesh) -> None:
    """The premise of `unix_address`: a socket bound on the host is reachable from any pod namespace."""
    client = mesh.add_pod("client")
    path = mesh.socket_path("probe")
    assert mesh.unix_address("probe") == f"unix:{path}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    srv.settimeout(10)

    def answer() -> None:
        with srv, srv.accept()[0] as conn:
            conn.sendall(b"hello from the control plane")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    script = (
        "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "print(s.recv(99).decode())"
    )
    out = client.run([sys.executable, "-I", "-S", "-c", script, str(path)], timeout=10).stdout
    t.join(10)
    assert out.strip() == "hello from the control plane"


def test_close_removes_namespaces_links_processes_and_files() -> None:
    links_before = host_links()
    with Mesh() as mesh:
        a, b = mesh.add_pod("a"), mesh.add_pod("b")
        echo = a.start_echo("a")
        b.apply_capture()
        listener = b.start_original_dst_echo()
        names = set(mesh.namespaces)
        assert names == {mesh.node_ns, a.netns, b.netns} and names <= netns_names()
        assert host_links() - links_before == set()  # the veths never appear on the host
        tmpdir = mesh.tmpdir
    assert not echo.alive() and not listener.alive()
    assert not names & netns_names()
    assert not any(re.fullmatch(r"br0|v\d+", link) for link in host_links() - links_before)
    assert not tmpdir.exists()
    mesh.close()  # idempotent


def test_close_runs_when_the_test_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), Mesh() as mesh:
        pod = mesh.add_pod("a")
        proc = pod.popen(["sleep", "30"])
        names = set(mesh.namespaces)
        raise RuntimeError("boom")
    assert not proc.alive()
    assert not names & netns_names()


def test_sweep_removes_leftovers_of_a_dead_run() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait(5)
    stale = f"gx{dead.pid}-0-node"
    with Mesh() as live:  # a live run's namespaces must survive the sweep
        subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
        try:
            sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "30"], start_new_session=True)
            deadline = time.monotonic() + 5
            while not subprocess.run(
                ["ip", "netns", "pids", stale], capture_output=True, text=True, timeout=10
            ).stdout.strip():
                assert time.monotonic() < deadline, "sleeper never entered the namespace"
                time.sleep(0.02)
            assert stale in sweep_stale()
            assert stale not in netns_names()
            assert set(live.namespaces) <= netns_names()
            assert sleeper.wait(5) != 0  # killed by the sweep
        finally:
            subprocess.run(["ip", "netns", "del", stale], capture_output=True, timeout=10)


def test_bad_inputs_are_clear_errors(mesh: Mesh) -> None:
    with pytest.raises(MeshError, match="bad pod name"):
        mesh.add_pod("Not_OK")
    mesh.add_pod("a")
    with pytest.raises(MeshError, match="exists"):
        mesh.add_pod("a")
    with pytest.raises(MeshError, match="overlaps"):
        Mesh(subnet="10.96.1.0/24", service_cidr="10.96.0.0/16")
    with pytest.raises(capture.CaptureError, match="invalid service CIDR"):
        Mesh(service_cidr="10.96.0.1/16")
    pod = mesh.pods["a"]
    crashing = pod.popen([sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"])
    with pytest.raises(MeshError, match="exited"):
        pod.wait_listening(1234, crashing, timeout=5)


def test_dual_stack_capture_installs_and_removes_ip6tables_rules_too(mesh: Mesh) -> None:
    client = mesh.add_pod("client")
    v6_before = client.run(["ip6tables", "-w", "5", "-t", "nat", "-S"]).stdout
    capture.apply([str(mesh.service_cidr), "fd00:10:96::/112"], netns=client.netns, inbound=True)
    capture.apply([str(mesh.service_cidr), "fd00:10:96::/112"], netns=client.netns, inbound=True)
    assert sorted(capture.installed(netns=client.netns, program="ip6tables")) == sorted(
        [
            f"-N {CHAIN}",
            f"-N {INBOUND}",
            f"-A PREROUTING -j {INBOUND}",
            f"-A OUTPUT -j {CHAIN}",
            f"-A {CHAIN} -m owner --uid-owner 1337 -j RETURN",
            f"-A {CHAIN} -d fd00:10:96::/112 -p tcp -j REDIRECT --to-ports 15001",
            f"-A {INBOUND} -i lo -j RETURN",
            f"-A {INBOUND} -p tcp -m tcp --dport 15000:15099 -j RETURN",
            f"-A {INBOUND} -p tcp -j REDIRECT --to-ports 15006",
        ]
    )
    client.remove_capture()
    assert client.run(["ip6tables", "-w", "5", "-t", "nat", "-S"]).stdout == v6_before
    assert capture.installed(netns=client.netns) == []
