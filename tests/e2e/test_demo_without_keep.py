"""`gammaxds demo` without `--keep` ends by saying the mesh is gone, and prints no address of it: whatever it
hands off must still work after it exits. (Its own module: the `--keep` demo of test_demo.py holds the demo's
ports while that module runs.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_without_keep_says_the_mesh_is_torn_down_and_names_no_address() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gammaxds", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ending = done.stdout.split("== Summary", 1)[1]
    assert "The mesh is torn down" in ending, ending
    assert not re.search(r"127\.0\.\d+\.\d+", ending), f"an address of the stopped mesh:\n{ending}"
    assert "gammaxds-demo-" not in ending  # nor its removed directory
    commands = [line.strip() for line in ending.splitlines() if line.startswith("   ") and "gammaxds" in line]
    commands = [line for line in commands if Path(shlex.split(line)[0]).is_absolute()]
    assert [shlex.split(line)[1] for line in commands] == ["demo", "translate"], ending
    translate = next(line for line in commands if shlex.split(line)[1] == "translate")
    offline = subprocess.run(["bash", "--norc", "-c", translate], capture_output=True, text=True, timeout=60)
    assert offline.returncode == 0 and "namespace: web" in offline.stdout, offline.stderr
