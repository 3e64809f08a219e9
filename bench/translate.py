"""Full translation: every resource of one view plus a second namespace's view, one size per fresh process.

`python -m bench.translate S E` prints one JSON line: seconds to generate and to translate, encode and compute
route status, and the peak RSS beyond the baseline taken right after the imports.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time

from .report import Figures, at_most

SIZES = (100, 1_000, 5_000, 10_000)
QUICK_SIZES = (100, 200)
TIME_TARGETS = {1_000: 1.0, 10_000: 10.0}
MEMORY_TARGETS_MB = {10_000: 1536}


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(services: int, endpoints: int) -> dict[str, float]:
    from gammaxds.translate import Translator, ViewKey
    from gammaxds.xds.snapshot import Encoder

    from .meshgen import MeshSpec, world

    gc.collect()
    baseline = maxrss()
    started = time.perf_counter()
    w = world(MeshSpec(services=services, endpoints=endpoints))
    generated = time.perf_counter()
    after_world = maxrss()
    translator = Translator()
    translation = translator.load(w)
    # ns-1 shares the view of every namespace without consumer routes; ns-0 holds consumer routes.
    shared = translation.view(ViewKey("ns-1"))
    consumer = translation.view(ViewKey("ns-0"))
    translated = time.perf_counter()
    statuses = translation.statuses
    status_done = time.perf_counter()
    encoder = Encoder()
    encoder.snapshot(shared, 0.0)
    encoder.snapshot(consumer, 0.0)
    encoded = time.perf_counter()
    size = sum(
        len(v.clusters) + len(v.endpoints) + len(v.listeners) + len(v.routes) for v in (shared, consumer)
    )
    return {
        "services": services,
        "objects": len(w),
        "resources": size,
        "built": translator.built,
        "routes_with_status": len(statuses.routes),
        "generate_s": generated - started,
        "translate_s": translated - generated,
        "status_s": status_done - translated,
        "encode_s": encoded - status_done,
        "world_rss": after_world - baseline,
        "peak_rss": maxrss() - baseline,
        "baseline_rss": baseline,
    }


def run(figs: Figures, quick: bool) -> None:
    from .proc import run_json

    for services in QUICK_SIZES if quick else SIZES:
        print(f"translate S={services} ...", flush=True)
        r = run_json("bench.translate", str(services), "10", timeout=900)
        target = TIME_TARGETS.get(services)
        figs.fig(
            "translate",
            f"S={services:,} full translation (2 views, {r['resources']:,} resources)",
            r["translate_s"],
            "s",
            at_most(target, f"<= {target:g} s") if target else None,
        )
        figs.fig("translate", f"S={services:,} route status", r["status_s"], "s")
        figs.fig("translate", f"S={services:,} encode both views", r["encode_s"], "s")
        mem = MEMORY_TARGETS_MB.get(services)
        figs.fig(
            "translate",
            f"S={services:,} peak RSS beyond imports (world {r['world_rss'] / 2**20:.0f} MB)",
            r["peak_rss"] / 2**20,
            "MB",
            at_most(mem, f"<= {mem / 1024:g} GB") if mem else None,
        )


if __name__ == "__main__":
    print(json.dumps(worker(int(sys.argv[1]), int(sys.argv[2]))))
