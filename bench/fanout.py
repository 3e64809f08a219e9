"""Fan-out: one endpoint change reaching N ADS streams held by separate load-generator processes.

Per protocol (SotW, delta), a fresh control-plane process (`bench.cpserver`, S = 1,000) and fresh load
generators (`bench.loadgen`, 2 processes sharing the streams); streams are added level by level (N = 100,
1,000, 2,000). Figures: time from the change being published (the source's `publish`, so the cache's 100 ms
debounce is included) until each stream received the new ClusterLoadAssignment; control-plane and
load-generator CPU seconds for the change (from /proc); idle CPU over 5 s with N connected; for delta, bytes
and resources received per stream for the change.

Memory per stream is measured beyond what is shared: first one stream per namespace connects, so every view's
shared state exists (its snapshot, gRPC's threads), and one change is pushed; that is the baseline, reported
as the shared cost. Per stream is then (RSS with N streams - baseline RSS) / (N - baseline streams), both
read after a garbage collection and `malloc_trim(0)` (memory freed by the process but kept by glibc, such as
the transient first responses of a connect wave, is returned first), once a level's changes are measured.
The RSS without the trim is printed too.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from gammaxds.translate.envoy.names import cluster_name

from .proc import Worker, cpu_seconds, rss_bytes
from .report import Figures, at_most

SERVICES, QUICK_SERVICES = 1_000, 200
STREAMS, QUICK_STREAMS = (100, 1_000, 2_000), (20, 50)
NAMESPACES = [f"ns-{i}" for i in range(10)]
P99_TARGETS_MS = {1_000: 500, 2_000: 1_000}
# Changes measured per level (the median is reported): fewer at big N, where each takes seconds.
CHANGES = {20: 3, 50: 3, 100: 3}
CONNECT_TIMEOUT_S = 420.0
LOAD_PROCESSES = 2
IDLE_S = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class LoadGenerators:
    """The load generator as a few processes, the streams split evenly, driven like one.

    Why: one Python process receiving and acknowledging for 2,000 streams used twice the server's CPU for a
    change, on the same two cores, so it set the latency it was measuring. Real sidecars are separate
    processes too."""

    def __init__(self, target: str, protocol: str, count: int = LOAD_PROCESSES) -> None:
        self.workers = [Worker("bench.loadgen", target, protocol, f"load{k}") for k in range(count)]

    def __enter__(self) -> LoadGenerators:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.close()

    def cpu(self) -> float:
        return sum(cpu_seconds(w.pid) for w in self.workers)

    def connect(self, n: int, timeout: float = CONNECT_TIMEOUT_S) -> float:
        """Streams in total until `n`, each process covering every namespace (its own rotation of them)."""
        count = len(self.workers)
        seconds = 0.0
        for k, worker in enumerate(self.workers):
            turn = k * len(NAMESPACES) // count
            rotated = NAMESPACES[turn:] + NAMESPACES[:turn]
            share = n // count + (k < n % count)
            seconds += worker.call("connect", n=share, namespaces=rotated, timeout=timeout)["seconds"]
        return seconds

    def arm(self, cluster: str) -> None:
        for worker in self.workers:
            worker.call("arm", cluster=cluster)

    def collect(self, timeout: float) -> dict[str, Any]:
        merged: dict[str, Any] = {"times": [], "missing": 0, "bytes": [], "resources": [], "responses": []}
        for worker in self.workers:
            got = worker.call("collect", timeout=timeout)
            for key in merged:
                merged[key] += got[key]
        return merged


@dataclass
class Baseline:
    streams: int
    rss: int  # after gc and malloc_trim
    rss_untrimmed: int


def steady_rss(server: Worker) -> tuple[int, int]:
    """(RSS after gc and malloc_trim, RSS after gc only) of the server, once settled."""
    server.call("gc")
    time.sleep(2.0)
    untrimmed = rss_bytes(server.pid)
    server.call("gc", trim=True)
    time.sleep(0.5)
    return rss_bytes(server.pid), untrimmed


def one_protocol(figs: Figures, services: int, levels: tuple[int, ...], protocol: str, idle: float) -> None:
    """One control plane and its load generators; streams are added level by level (100, then 900 more...),
    and every figure of a level is taken with exactly that many streams connected and synced."""
    with Worker("bench.cpserver", str(services)) as server:
        target = server.call_first_line()["target"]
        server.call("track", namespaces=NAMESPACES)
        rss0, _ = steady_rss(server)
        with LoadGenerators(target, protocol) as load:
            load.connect(len(NAMESPACES))
            # Levels are measured after changes (a newer snapshot, the encoder's reuse maps): so is this.
            load.arm(cluster_name("ns-1", "svc-1", 80))
            server.call("endpoint_change", service=1)
            load.collect(timeout=120)
            base = Baseline(len(NAMESPACES), *steady_rss(server))
            figs.fig(
                "fan-out",
                f"{protocol}: shared cost of the first stream of each of {len(NAMESPACES)} views",
                (base.rss - rss0) / 2**20,
                "MB",
            )
            for n in levels:
                print(f"fan-out {protocol} N={n} S={services} ...", flush=True)
                one_level(figs, server, load, n, protocol, idle, base)


def one_level(
    figs: Figures, server: Worker, load: LoadGenerators, n: int, protocol: str, idle: float, base: Baseline
) -> None:
    label = f"{protocol} N={n:,}"
    seconds = load.connect(n)
    figs.fig("fan-out", f"{label}: connect and sync (streams added at this level)", seconds, "s")
    server.call("gc")
    time.sleep(2.0)
    cpu0 = cpu_seconds(server.pid)
    time.sleep(idle)
    figs.fig(
        "fan-out",
        f"{label}: idle CPU over {idle:g} s",
        cpu_seconds(server.pid) - cpu0,
        "s",
        at_most(0.05 * idle / 5, "~0 (<= 1%)"),
    )
    changes = CHANGES.get(n, 1)
    p50s, p99s, maxes, cpus, byte_counts, resource_counts, missing = [], [], [], [], [], [], 0
    load_cpus: list[float] = []
    for i in range(changes):
        service = 10 * i + 3
        ns = f"ns-{service % 10}"
        load.arm(cluster_name(ns, f"svc-{service}", 80))
        cpu0, load0 = cpu_seconds(server.pid), load.cpu()
        t0 = server.call("endpoint_change", service=service)["t0"]
        got = load.collect(timeout=120)
        cpus.append(cpu_seconds(server.pid) - cpu0)
        load_cpus.append(load.cpu() - load0)
        latencies = [(t - t0) * 1000 for t in got["times"]]
        missing += got["missing"]
        if latencies:
            p50s.append(percentile(latencies, 0.5))
            p99s.append(percentile(latencies, 0.99))
            maxes.append(max(latencies))
        byte_counts.append(statistics.median(got["bytes"]))
        resource_counts.append(max(got["resources"]))
    p99_target = P99_TARGETS_MS.get(n)
    note = (f"median of {changes} changes; " if changes > 1 else "") + "incl. 100 ms debounce"
    if missing:
        note += f"; {missing} stream-changes never arrived"
    figs.fig(
        "fan-out",
        f"{label}: change -> received, p50",
        statistics.median(p50s) if p50s else None,
        "ms",
        note=note,
    )
    figs.fig(
        "fan-out",
        f"{label}: change -> received, p99",
        statistics.median(p99s) if p99s else None,
        "ms",
        at_most(p99_target, f"<= {p99_target} ms") if p99_target else None,
    )
    figs.fig(
        "fan-out",
        f"{label}: change -> received, max",
        statistics.median(maxes) if maxes else None,
        "ms",
    )
    figs.fig("fan-out", f"{label}: control-plane CPU for one change", statistics.median(cpus), "s")
    # The load generator shares the machine's cores: its CPU is time the control plane could not use.
    figs.fig("fan-out", f"{label}: load-generator CPU for one change", statistics.median(load_cpus), "s")
    if protocol == "delta":
        figs.fig(
            "fan-out",
            f"{label}: bytes received per stream for one change",
            statistics.median(byte_counts),
            "B",
        )
        # The changed EndpointSlice feeds both ports of its Service: 2 ClusterLoadAssignments.
        figs.fig(
            "fan-out",
            f"{label}: resources sent per stream for one change",
            max(resource_counts),
            "",
            at_most(2, "one CLA per port of the Service (2)"),
        )
    # Last: malloc_trim hands freed pages back to the OS, and the next push would pay to fault them in again.
    rss, untrimmed = steady_rss(server)
    added = n - base.streams
    # Targets apply from N = 1,000, as the latency ones: at N = 100 the few MB that move with a change (a
    # newer snapshot, allocator state) are a large share of 90 streams' memory.
    figs.fig(
        "fan-out",
        f"{label}: memory per stream beyond the shared state",
        (rss - base.rss) / added / 1024,
        "KB",
        at_most(100, "<= 100 KB") if n in P99_TARGETS_MS else None,
    )
    figs.fig(
        "fan-out",
        f"{label}: ... the same, RSS without malloc_trim",
        (untrimmed - base.rss_untrimmed) / added / 1024,
        "KB",
    )


def run(figs: Figures, quick: bool, protocols: tuple[str, ...] = ("sotw", "delta")) -> None:
    services = QUICK_SERVICES if quick else SERVICES
    for protocol in protocols:
        one_protocol(figs, services, QUICK_STREAMS if quick else STREAMS, protocol, 1.0 if quick else IDLE_S)
