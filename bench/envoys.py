"""Real Envoy: K proxy-mode sidecars on one control plane (S = 1,000 plus three bench Services), and the time from
a change (a route's backend, or an endpoint) until every sidecar routes by it, polled through each sidecar.

`bench-front.ns-0` has no endpoints of its own; its HTTPRoute sends everything to `bench-a` or `bench-b`, whose
EndpointSlices point at echo backends on 127.0.0.1 that answer with their name (a, b or c).
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gammaxds.bootstrap import bootstrap
from gammaxds.demo.app import EchoApp, make_server
from gammaxds.testing.envoy_process import Envoy
from gammaxds.translate.envoy.names import PROXY_LISTENER

from .proc import Worker
from .report import Figures

SERVICES, QUICK_SERVICES = 1_000, 200
SIDECARS, QUICK_SIDECARS = 10, 2
REPS, QUICK_REPS = 3, 1
HOST = "bench-front.ns-0"


def _service(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns-0"},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def _slice(service: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-0",
            "namespace": "ns-0",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }


def _route(backend: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bench-front", "namespace": "ns-0"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "bench-front", "port": 80}],
            "rules": [{"backendRefs": [{"name": backend, "port": 80}]}],
        },
    }


def _answer(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/", headers={"Host": HOST})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        return f"status {response.status}"
    return str(json.loads(body).get("service", ""))


def wait_all(ports: list[int], expect: str, timeout: float = 60.0) -> tuple[list[float | None], list[str]]:
    """Poll every sidecar (one thread each, keep-alive) until it answers `expect`: the monotonic time it did
    (None if it never did), and each sidecar's last answer (for the error when one never does)."""
    out: list[float | None] = [None] * len(ports)
    last = [""] * len(ports)

    def poll(i: int) -> None:
        deadline = time.monotonic() + timeout
        conn = http.client.HTTPConnection("127.0.0.1", ports[i], timeout=5)
        while time.monotonic() < deadline:
            try:
                last[i] = _answer(conn)
                if last[i] == expect:
                    out[i] = time.monotonic()
                    break
            except (OSError, http.client.HTTPException, ValueError) as err:
                last[i] = f"{type(err).__name__}: {err}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", ports[i], timeout=5)
            time.sleep(0.002)
        conn.close()

    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(len(ports))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, last


def not_routing(envoys: list[Envoy], got: list[float | None], last: list[str], expect: str) -> str:
    """What the sidecars that never answered `expect` did instead, with what their Envoy says."""
    lines = []
    for envoy, t, answer in zip(envoys, got, last, strict=True):
        if t is not None:
            continue
        try:
            stats = envoy.stats("control_plane.")
            clusters = envoy.stats("cluster_manager.")
            state = (
                f"connected={stats.get('control_plane.connected_state')} "
                f"clusters active={clusters.get('cluster_manager.active_clusters')} "
                f"warming={clusters.get('cluster_manager.warming_clusters')}"
            )
        except OSError as err:
            state = f"admin unreachable: {err}"
        lines.append(f"{envoy.name}: last answer {answer!r}; {state}\n{envoy.logs()[-1500:]}")
    return f"{len(lines)} of {len(envoys)} sidecars never answered {expect!r}:\n" + "\n".join(lines)


def run(figs: Figures, quick: bool) -> None:
    services, count, reps = (
        (QUICK_SERVICES, QUICK_SIDECARS, QUICK_REPS) if quick else (SERVICES, SIDECARS, REPS)
    )
    print(f"real Envoy: {count} sidecars, S={services} ...", flush=True)
    echoes = {}
    for name in "abc":
        server = make_server(EchoApp(name), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        echoes[name] = server
    port = {name: int(s.server_address[1]) for name, s in echoes.items()}
    extra = [
        _service("bench-front", "10.111.0.1"),
        _service("bench-a", "10.111.0.2"),
        _service("bench-b", "10.111.0.3"),
        _slice("bench-a", port["a"]),
        _slice("bench-b", port["b"]),
        _route("bench-a"),
    ]
    envoys: list[Envoy] = []
    with (
        tempfile.TemporaryDirectory(prefix="gammaxds-bench-") as tmp,
        Worker("bench.cpserver", str(services), json.dumps(extra)) as server,
    ):
        try:
            target = server.call_first_line()["target"]
            started = time.monotonic()
            for i in range(count):
                config = bootstrap(
                    f"bench-{i}",
                    f"ns-{1 + i % 9}",
                    xds_address=target,
                    capture="proxy",
                    outbound_address="127.0.0.1:0",  # Envoy binds a port the kernel picks, read back below
                    delta=i % 2 == 0,  # half delta, half SotW
                )
                envoys.append(Envoy(config, Path(tmp), name=f"bench-{i}").start(log_level="warning"))
            for envoy in envoys:
                envoy.wait_ready(timeout=180)
            outbound = [envoy.listener_port(PROXY_LISTENER, timeout=180) for envoy in envoys]
            first, last = wait_all(outbound, "a", timeout=120)
            if any(t is None for t in first):
                raise RuntimeError(not_routing(envoys, first, last, "a"))
            figs.fig(
                "envoy",
                f"{count} sidecars, S={services:,}: start until all route",
                time.monotonic() - started,
                "s",
                note="half delta, half SotW",
            )
            steps = [("route", "b", _route("bench-b")), ("endpoint", "c", _slice("bench-b", port["c"]))]
            back = [("route", "a", _route("bench-a")), ("endpoint", "b", _slice("bench-b", port["b"]))]
            results: dict[str, list[tuple[float, float]]] = {"route": [], "endpoint": []}
            for rep in range(reps):
                for kind, expect, raw in steps:
                    t0 = server.call("put", raw=raw)["t0"]
                    got, last = wait_all(outbound, expect)
                    if any(t is None for t in got):
                        raise RuntimeError(f"{kind} change: " + not_routing(envoys, got, last, expect))
                    ms = sorted((t - t0) * 1000 for t in got if t is not None)
                    results[kind].append((statistics.median(ms), ms[-1]))
                if rep < reps - 1:
                    for kind, expect, raw in reversed(back):
                        server.call("put", raw=raw)
                        if kind == "route":
                            wait_all(outbound, expect)  # the timed step starts from a settled state
                    time.sleep(0.5)
            for kind, label in (
                ("route", "route change (backend a -> b)"),
                ("endpoint", "endpoint change (b -> c)"),
            ):
                med = statistics.median(r[0] for r in results[kind])
                worst = statistics.median(r[1] for r in results[kind])
                note = f"median of {reps}" if reps > 1 else ""
                figs.fig("envoy", f"{count} sidecars: {label} -> all route by it", worst, "ms", note=note)
                figs.fig("envoy", f"{count} sidecars: {label} -> median sidecar", med, "ms", note=note)
        finally:
            for envoy in envoys:
                envoy.stop()
            for s in echoes.values():
                s.shutdown()
                s.server_close()
