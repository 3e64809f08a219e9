"""`gammaxds demo` — the newcomer's first command — runs the sample mesh and every step behaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_tour_passes_every_step() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gammaxds", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed (exit {proc.returncode}):\n{out}\n{proc.stderr}"
    summary = out.split("== Summary", 1)[1]
    assert summary.count("ok     ") == 6, summary
    assert "FAILED" not in out
    assert "reviews v2: 20" in out  # the live edit moved all traffic to v2
    assert "-> 504 from the sidecar" in out  # the consumer route's timeout, for web only
