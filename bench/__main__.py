"""`python -m bench [--quick] [--only NAME]...`: run the benchmarks, print the table, write bench/results/*.json."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from . import envoys, fanout, incremental, manifests, translate
from .report import Figures, machine, write_results

BENCHES = {
    "translate": translate.run,
    "incremental": incremental.run,
    "fanout": fanout.run,
    "envoy": envoys.run,
    "manifests": manifests.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (S <= 200, N <= 50, 2 Envoys), for CI"
    )
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only this benchmark")
    args = parser.parse_args(argv)
    info = machine()
    print(
        f"machine: {info.get('cores')} cores, {info.get('memory_gb')} GB, {info.get('cpu', '?')}", flush=True
    )
    figs = Figures()
    failed = []
    started = time.monotonic()
    for name in args.only or list(BENCHES):
        t0 = time.monotonic()
        try:
            BENCHES[name](figs, args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            figs.fig(name, "FAILED (see the traceback above)", None)
        print(f"[{name}: {time.monotonic() - t0:.0f} s]", flush=True)
    meta = {
        "quick": args.quick,
        "machine": info,
        "seconds": round(time.monotonic() - started, 1),
        "failed": failed,
    }
    path = write_results(figs, meta)
    print()
    print(
        f"gammaxds benchmarks ({'quick' if args.quick else 'full'}), {info.get('cores')} cores, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(figs.table())
    print(f"\nresults: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
