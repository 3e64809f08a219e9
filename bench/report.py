"""Figures, their targets, the printed table and the JSON results file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Target:
    """`value <op> limit`, printed next to the figure; `met` is None for figures without a target."""

    text: str
    check: Callable[[float], bool] = field(repr=False)


def at_most(limit: float, text: str) -> Target:
    return Target(text, lambda v: v <= limit)


def at_least(limit: float, text: str) -> Target:
    return Target(text, lambda v: v >= limit)


def exactly(limit: float, text: str) -> Target:
    return Target(text, lambda v: v == limit)


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    def cell(self) -> str:
        if self.value is None:
            return "n/a"
        v = self.value
        if isinstance(v, float) and not v.is_integer():
            text = f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        else:
            text = f"{int(v):,}"
        return f"{text} {self.unit}".strip()


class Figures:
    """What every benchmark appends to; `fig` records one figure and checks it against its target."""

    def __init__(self) -> None:
        self.items: list[Figure] = []

    def fig(
        self,
        bench: str,
        name: str,
        value: float | None,
        unit: str = "",
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        met = None if target is None or value is None else bool(target.check(value))
        f = Figure(bench, name, value, unit, target.text if target else "", met, note)
        self.items.append(f)
        print(
            f"  {name}: {f.cell()}"
            + (f"  (target {f.target}: {'met' if met else 'MISSED'})" if target else ""),
            flush=True,
        )
        return f

    def table(self) -> str:
        rows = [("bench", "figure", "value", "target", "met?")]
        for f in self.items:
            met = "" if f.met is None else ("yes" if f.met else "NO")
            rows.append((f.bench, f.name + (f" [{f.note}]" if f.note else ""), f.cell(), f.target, met))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        sha = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return (sha or "nogit") + ("-dirty" if dirty else "")
    except OSError:
        return "nogit"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gb"] = round(int(mem[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def write_results(figures: Figures, meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    sha = git_sha()
    doc = {**meta, "git": sha, "figures": [asdict(f) for f in figures.items]}
    text = json.dumps(doc, indent=2) + "\n"
    path = RESULTS / f"{stamp}-{sha}.json"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path
