"""Incremental translation: one change to a big mesh, until the watched views' new snapshots are ready.

Each change builds the next World the way a source does (a copy of the previous objects dict with one object
replaced or added), publishes it to the control plane (`ControlPlane.publish`) and flushes the cache's debounce,
so the figure covers translation, route status and encoding of every watched view. Rebuilt resources are the
`Translator.built` delta; re-serialised ones the `SnapshotCache.serialised` delta.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

from .report import Figures, at_most

SERVICES, QUICK_SERVICES = 5_000, 200
REPS, QUICK_REPS = 7, 3
READY_TARGET_S = 0.010


class _NoSource:
    errors: list[Any] = []


async def worker(services: int, reps: int) -> dict[str, Any]:
    from gammaxds.serve import ControlPlane
    from gammaxds.translate import ViewKey

    from .changes import Mesh
    from .meshgen import MeshSpec

    mesh = Mesh(MeshSpec(services=services, endpoints=10))
    plane = ControlPlane(source=_NoSource())  # type: ignore[arg-type]
    plane.publish(mesh.world)
    keys = [ViewKey("ns-1"), ViewKey("ns-0"), ViewKey("ns-2", "proxy")]
    started = time.perf_counter()
    for key in keys:
        plane.cache.track(key)
    plane.cache.flush()
    first = time.perf_counter() - started

    changes = {
        "endpoint": lambda i: mesh.endpoint_change(2 * i + 1),
        "route": lambda i: mesh.route_change(2 * i),
        "service": lambda i: mesh.service_added(),
    }
    out: dict[str, Any] = {"first_snapshot_s": first, "views": len(keys)}
    for name, change in changes.items():
        times, built, serialised = [], [], []
        for i in range(reps):
            b0, s0 = plane.translator.built, plane.cache.serialised
            t0 = time.perf_counter()
            world = change(i)
            plane.publish(world)
            plane.cache.flush()
            times.append(time.perf_counter() - t0)
            built.append(plane.translator.built - b0)
            serialised.append(plane.cache.serialised - s0)
        out[name] = {
            "median_s": statistics.median(times),
            "max_s": max(times),
            "built": statistics.median(built),
            "serialised": statistics.median(serialised),
        }
    plane.cache.close()
    return out


def run(figs: Figures, quick: bool) -> None:
    from .proc import run_json

    services = QUICK_SERVICES if quick else SERVICES
    print(f"incremental S={services} ...", flush=True)
    r = run_json("bench.incremental", str(services), str(QUICK_REPS if quick else REPS), timeout=900)
    figs.fig("incremental", f"S={services:,} first snapshot, {r['views']} views", r["first_snapshot_s"], "s")
    labels = {
        "endpoint": "one EndpointSlice change",
        "route": "one HTTPRoute change",
        "service": "one Service added",
    }
    for name, label in labels.items():
        x = r[name]
        target = at_most(READY_TARGET_S * 1000, "<= 10 ms") if name == "endpoint" else None
        figs.fig(
            "incremental",
            f"S={services:,} {label}: snapshot ready (median)",
            x["median_s"] * 1000,
            "ms",
            target,
        )
        figs.fig("incremental", f"S={services:,} {label}: snapshot ready (max)", x["max_s"] * 1000, "ms")
        # The changed slice feeds both ports of its Service: two ClusterLoadAssignments are its whole effect.
        figs.fig(
            "incremental",
            f"S={services:,} {label}: resources rebuilt",
            x["built"],
            "",
            at_most(2, "<= 2 (the Service's 2 ports' CLAs)") if name == "endpoint" else None,
        )
        figs.fig("incremental", f"S={services:,} {label}: resources re-serialised", x["serialised"], "")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(worker(int(sys.argv[1]), int(sys.argv[2])))))
