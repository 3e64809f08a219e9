"""`gammaxds describe` against a running `gammaxds serve` with a real Envoy sidecar connected: the proxy's table
shows what Envoy acknowledged, and the service's answer from the live control plane is the offline one."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gammaxds.bootstrap import bootstrap
from gammaxds.testing.envoy_process import Envoy

ROOT = Path(__file__).resolve().parents[2]
GAMMAXDS = [sys.executable, "-m", "gammaxds"]


def gammaxds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GAMMAXDS, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.fixture
def serve() -> Iterator[tuple[str, str]]:
    """(xDS address, admin HOST:PORT) of a `gammaxds serve` of examples/."""
    proc = subprocess.Popen(
        [*GAMMAXDS, "serve", "--manifests", "examples", "--xds-address", "127.0.0.1:0",
         "--admin-address", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    xds = line.split("xDS on ", 1)[1].split(",", 1)[0]
    admin = line.rsplit("http://", 1)[1].strip()
    try:
        yield xds, admin
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_describe_proxy_shows_what_the_sidecar_acknowledged(serve: tuple[str, str], tmp_path: Path) -> None:
    xds, admin = serve
    config = bootstrap("web-1", "web", xds_address=xds, capture="proxy", outbound_address="127.0.0.1:0")
    with Envoy(config, tmp_path, name="web-1") as envoy:  # __enter__ starts it
        envoy.wait_ready()
        deadline = time.monotonic() + 20
        while True:
            done = gammaxds("describe", "proxy", "web-1", "--admin-address", admin, "--output", "json")
            data = json.loads(done.stdout) if done.returncode == 0 else {}
            types = {t["label"]: t for t in data.get("types", [])}
            if len(types) == 4 and all(t["synced"] for t in types.values()):
                break
            assert time.monotonic() < deadline, f"the sidecar never synced: {done.stdout}{done.stderr}"
            time.sleep(0.1)
        assert data["namespace"] == "web" and data["capture"] == "proxy"
        clusters = {r["name"]: r for r in types["Cluster"]["resources"]}
        reviews = clusters["outbound|80||reviews.store.svc.cluster.local"]
        assert reviews["status"] == "ACKED" and reviews["summary"].startswith("EDS")
        (route_config,) = types["RouteConfiguration"]["resources"]
        assert route_config["status"] == "ACKED" and "routes to" in route_config["summary"]
        # Envoy's own view agrees that it holds what the table calls acknowledged.
        assert set(clusters) <= envoy.active_clusters()
        table = gammaxds("describe", "proxy", "web-1", "--admin-address", admin)
        assert table.returncode == 0
        assert "Cluster: sent version" in table.stdout and "(in sync)" in table.stdout
        assert re.search(
            r"^  outbound\|80\|\|reviews\.store\.svc\.cluster\.local +ACKED ", table.stdout, re.M
        )


def test_describe_service_live_is_the_offline_answer(serve: tuple[str, str]) -> None:
    _xds, admin = serve
    args = ["describe", "service", "ratings.store", "--from", "web", "--output", "json"]
    deadline = time.monotonic() + 20
    while (live := gammaxds(*args, "--admin-address", admin)).returncode != 0:
        assert time.monotonic() < deadline, live.stderr
        time.sleep(0.1)
    offline = gammaxds(*args, "--manifests", "examples")
    assert json.loads(live.stdout) == json.loads(offline.stdout)
    assert json.loads(live.stdout)["ports"][0]["routes"] == "consumer"


def test_describe_names_what_is_missing(serve: tuple[str, str]) -> None:
    _xds, admin = serve
    for args, message in [
        (["service", "ghost.store"], "error: no Service store/ghost"),
        (["proxy", "nobody"], "error: no sidecar with node id 'nobody' is connected"),
    ]:
        done = gammaxds("describe", *args, "--admin-address", admin)
        assert done.returncode == 1 and done.stderr.startswith(message), done.stderr
        assert "Traceback" not in done.stderr
