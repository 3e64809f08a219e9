"""The bootstrap's readiness listener (`gammaxds bootstrap --readiness-address`), which the injected sidecar's
startup and readiness probes reach on 15021: Envoy accepts it; until the control plane's first configuration
arrived it does not answer at all (Envoy starts listeners once initialised), then `GET /ready` is the admin's
200, and anything else of the admin is 404."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gammaxds.bootstrap import ADMIN_CLUSTER, READINESS_LISTENER, bootstrap, render_bootstrap
from gammaxds.testing.envoy_process import free_port

ENVOY = Path(sys.executable).parent / "envoy"
REPO = Path(__file__).resolve().parents[2]


def test_without_the_flag_the_bootstrap_is_as_before() -> None:
    config = bootstrap("p.ns", "ns")
    assert list(config["static_resources"]) == ["clusters"]
    assert [c["name"] for c in config["static_resources"]["clusters"]] == ["xds_cluster"]


def test_the_listener_routes_only_get_ready_to_the_admin_on_loopback() -> None:
    config = bootstrap("p.ns", "ns", admin_address="0.0.0.0:15000", readiness_address="0.0.0.0:15021")
    [listener] = config["static_resources"]["listeners"]
    assert listener["name"] == READINESS_LISTENER
    assert listener["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 15021}}
    admin = next(c for c in config["static_resources"]["clusters"] if c["name"] == ADMIN_CLUSTER)
    [endpoint] = admin["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 15000}
    }
    with pytest.raises(ValueError, match="port of its own"):
        bootstrap("p", "ns", readiness_address="0.0.0.0:15000")


def test_envoy_accepts_the_bootstrap_with_the_listener(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(
        render_bootstrap(
            "p.ns", "ns", xds_address="gammaxds.gammaxds-system.svc:18000", readiness_address="0.0.0.0:15021"
        )
    )
    done = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def get(port: int, path: str, method: str = "GET") -> int | None:
    """The status of one request to 127.0.0.1:port, None when nothing listens yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request(method, path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
def test_ready_answers_only_once_the_control_plane_configured_envoy(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    xds, ready, admin, outbound = free_port(), free_port(), free_port(), free_port()
    path = tmp_path / "envoy.yaml"
    path.write_text(
        render_bootstrap(
            "client-1.web",
            "web",
            xds_address=f"127.0.0.1:{xds}",
            capture="proxy",
            outbound_address=f"127.0.0.1:{outbound}",
            admin_address=f"127.0.0.1:{admin}",
            readiness_address=f"127.0.0.1:{ready}",
        )
    )
    log = (tmp_path / "envoy.log").open("wb")
    argv = [str(ENVOY), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "info"]
    processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
    wait_for(lambda: get(admin, "/ready") is not None, "Envoy's admin")
    # No control plane yet: Envoy is initialising; its admin says so, and the readiness listener does not even
    # answer (Envoy starts its listeners once initialised), which a kubelet probe counts as a failure too.
    assert get(admin, "/ready") == 503
    assert get(ready, "/ready") is None
    serve = [sys.executable, "-m", "gammaxds", "serve", "--manifests", str(REPO / "examples")]
    serve += ["--xds-address", f"127.0.0.1:{xds}", "--admin-address", "127.0.0.1:0"]
    processes.append(subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: get(ready, "/ready") == 200, "Envoy to become ready", timeout=60)
    # Nothing else of the admin is reachable through the listener.
    assert get(ready, "/stats") == 404
    assert get(ready, "/quitquitquit", "POST") == 404
    assert get(ready, "/ready", "POST") == 404
    # Ready because the configuration arrived (not because the initial fetch timed out).
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/clusters")
    assert "outbound|80||reviews.store.svc.cluster.local" in conn.getresponse().read().decode()
    conn.close()
    assert yaml.safe_load(path.read_text())["static_resources"]["listeners"][0]["name"] == READINESS_LISTENER
