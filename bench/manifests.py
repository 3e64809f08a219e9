"""A file edit until a real Envoy routes by it: `gammaxds serve --manifests DIR`'s control plane (its own process,
`bench.manifests_server`) and one proxy-mode sidecar, with the manifests source polling (before) and woken by
inotify (after).

Each edit rewrites the HTTPRoute file in place (truncate, then write) with a new value of the response header
the route sets; the time runs from just before the write until a request through the sidecar carries the new
value (polled every 2 ms on one keep-alive connection). The World-published figure is the source's own part;
the rest is translation, the snapshot cache's debounce (0.1 s of quiet after a change) and the push to Envoy.
Edits come 0.2-0.45 s apart, at random, so they fall anywhere in a poll's cycle.
"""

from __future__ import annotations

import http.client
import math
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from gammaxds.bootstrap import bootstrap
from gammaxds.demo.app import EchoApp, make_server
from gammaxds.testing.envoy_process import Envoy
from gammaxds.translate.envoy.names import PROXY_LISTENER

from .proc import Worker
from .report import Figures, at_most

EDITS, QUICK_EDITS = 20, 5
NS, HOST, HEADER = "bench", "front.bench", "x-bench-edit"
TARGET = at_most(100, "<= 100 ms")
MODES = (("poll", "poll (before)"), ("inotify", "inotify (after)"))


def _service(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def _slice(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "echo-0", "namespace": NS, "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def _route(value: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "front", "namespace": NS},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "front", "port": 80}],
            "rules": [
                {
                    "backendRefs": [{"name": "echo", "port": 80}],
                    "filters": [
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"set": [{"name": HEADER, "value": str(value)}]},
                        }
                    ],
                }
            ],
        },
    }


def _wait_for(port: int, value: int, timeout: float = 20.0) -> float:
    """Request through the sidecar every 2 ms until the response carries `value`: the monotonic time it did."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    last = ""
    try:
        while time.monotonic() < deadline:
            try:
                conn.request("GET", "/", headers={"Host": HOST})
                response = conn.getresponse()
                response.read()
                last = f"{response.status} {HEADER}={response.getheader(HEADER)}"
                if response.status == 200 and response.getheader(HEADER) == str(value):
                    return time.monotonic()
            except (OSError, http.client.HTTPException) as err:
                last = f"{type(err).__name__}: {err}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            time.sleep(0.002)
    finally:
        conn.close()
    raise RuntimeError(f"the sidecar never answered with {HEADER}={value} within {timeout}s (last: {last})")


def p90(values: list[float]) -> float:
    """Nearest rank: the value 90% of the samples are at or below."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _measure(mode: str, edits: int, echo_port: int, tmp: Path, rng: random.Random) -> tuple[list[float], ...]:
    manifests = tmp / mode / "manifests"
    route = manifests / "routes" / "front.yaml"
    route.parent.mkdir(parents=True)
    (manifests / "mesh.yaml").write_text(
        yaml.safe_dump_all(
            [_service("front", "10.112.0.1"), _service("echo", "10.112.0.2"), _slice(echo_port)]
        )
    )
    route.write_text(yaml.safe_dump(_route(0)))
    with Worker("bench.manifests_server", str(manifests), mode) as server:
        started = server.call_first_line()
        if started["watching"] != mode:
            raise RuntimeError(f"asked for {mode}, the source uses {started['watching']} (see its warning)")
        config = bootstrap(
            f"bench-{mode}",
            NS,
            xds_address=started["target"],
            capture="proxy",
            outbound_address="127.0.0.1:0",
        )
        envoy = Envoy(config, tmp, name=f"bench-{mode}").start(log_level="warning")
        try:
            envoy.wait_ready(timeout=60)
            port = envoy.listener_port(PROXY_LISTENER, timeout=60)
            _wait_for(port, 0, timeout=60)
            published, routed = [], []
            for value in range(1, edits + 1):
                time.sleep(rng.uniform(0.2, 0.45))
                t0 = time.monotonic()
                route.write_text(yaml.safe_dump(_route(value)))
                t1 = _wait_for(port, value)
                t_pub = server.call("published", after=t0)["t"]
                if t_pub is None:
                    raise RuntimeError(f"{mode}: Envoy routed by edit {value}, yet no World was published")
                published.append((t_pub - t0) * 1000)
                routed.append((t1 - t0) * 1000)
        finally:
            envoy.stop()
    return published, routed


def run(figs: Figures, quick: bool) -> None:
    edits = QUICK_EDITS if quick else EDITS
    print(f"file edit -> Envoy: {edits} edits per watch mode ...", flush=True)
    echo = make_server(EchoApp("echo"), "127.0.0.1", 0)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    rng = random.Random(7)
    try:
        with tempfile.TemporaryDirectory(prefix="gammaxds-bench-") as tmp:
            for mode, label in MODES:
                published, routed = _measure(mode, edits, int(echo.server_address[1]), Path(tmp), rng)
                note = f"{edits} edits"
                for what, ms in (("World published", published), ("Envoy routes by it", routed)):
                    for stat, value in (("median", statistics.median(ms)), ("p90", p90(ms))):
                        figs.fig(
                            "manifests", f"{label}: file edit -> {what}, {stat}", value, "ms", TARGET, note
                        )
    finally:
        echo.shutdown()
        echo.server_close()
