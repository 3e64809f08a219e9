"""`gammaxds demo` — the newcomer's first command — runs the sample mesh, and the mesh behaves as it says.

The demo grades itself; this test does not take its word for it. It runs `gammaxds demo --keep`, reads the
addresses the demo prints, and sends its own requests through the demo's sidecars to check what the tour
claims: the 90/10 split, canary routing, web's consumer route (header and timeout) and no one else's, 404
when nothing matches, and traffic following a route file edit. Then SIGTERM must stop every process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEEP_MARKER = "The mesh keeps running"


@dataclass
class Demo:
    output: str
    sidecars: dict[str, int]  # client namespace -> outbound port
    admin_port: int
    reviews_route: Path  # the route file of the running demo (a copy of examples/)


def get(port: int, host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return response.status, body if isinstance(body, dict) else {}


def versions(port: int, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    """Which reviews version answered each of `n` requests from a sidecar (or the status if none did)."""
    counts: Counter[str] = Counter()
    for _ in range(n):
        status, body = get(port, "reviews.store", "/reviews", headers)
        counts[body.get("version", str(status)) if status == 200 else str(status)] += 1
    return counts


def until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not seen within {timeout}s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gammaxds", "demo", "--keep"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: nothing it starts can outlive the test
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if KEEP_MARKER in line:
                break
        output = "".join(lines)
        assert KEEP_MARKER in output, f"demo ended early (exit {proc.wait(10)}):\n{output}"
        sidecars = {
            ns: int(port)
            for ns, port in re.findall(r"sidecar for namespace (\w+): http://127\.0\.0\.1:(\d+)", output)
        }
        admin = re.search(r"admin http://127\.0\.0\.1:(\d+)", output)
        route = re.search(r"\$EDITOR (\S+reviews\.yaml)", output)
        assert set(sidecars) == {"web", "store"} and admin and route, output
        yield Demo(output, sidecars, int(admin.group(1)), Path(route.group(1)))
        # SIGTERM (what a supervisor sends) stops the mesh as Ctrl-C does: the demo exits 143, its sidecars
        # stop listening and its temporary directory is gone.
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 143, f"demo exit {proc.returncode}:\n{output}{rest}"
        assert "Traceback" not in rest, rest
        for port in sidecars.values():
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        assert not Path(route.group(1)).exists(), "the demo's temporary directory was left behind"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_tour_reports_every_step_passed(demo: Demo) -> None:
    summary = demo.output.split("== Summary", 1)[1]
    assert "FAILED" not in demo.output, demo.output
    assert len(re.findall(r"^\s+ok\s+\d\. ", summary, re.MULTILINE)) == 6, summary


def test_a_service_without_routes_answers_from_its_own_endpoints(demo: Demo) -> None:
    for port in demo.sidecars.values():
        status, body = get(port, "ratings.store", "/")
        assert (status, body.get("service")) == (200, "ratings"), body


def test_the_consumer_route_applies_to_web_only(demo: Demo) -> None:
    web, store = demo.sidecars["web"], demo.sidecars["store"]
    _, seen_from_web = get(web, "ratings.store", "/")
    _, seen_from_store = get(store, "ratings.store", "/")
    assert seen_from_web["headers"].get("x-client-namespace") == "web"
    assert "x-client-namespace" not in seen_from_store["headers"]
    # web's route has a 1 s timeout: a 1.5 s answer is cut by web's sidecar, never by store's.
    assert get(web, "ratings.store", "/?delay=1.5")[0] == 504
    assert get(store, "ratings.store", "/?delay=1.5")[0] == 200


def test_a_request_no_rule_matches_gets_404(demo: Demo) -> None:
    assert get(demo.sidecars["web"], "reviews.store", "/nothing-here")[0] == 404


def test_traffic_follows_the_route_file(demo: Demo) -> None:
    """The tour's live edit left reviews at 0/100. Put the example's 90/10 back and count for ourselves."""
    web = demo.sidecars["web"]
    assert versions(web, 50) == Counter({"v2": 50}), "the tour's edit (all traffic to v2) is not in force"
    original = (ROOT / "examples" / "routes" / "reviews.yaml").read_text()
    assert "weight: 90}" in original and "weight: 10}" in original
    demo.reviews_route.write_text(original)
    until(lambda: versions(web, 30)["v1"] > 0, "the restored 90/10 split")
    counts = versions(web, 1000)
    assert set(counts) == {"v1", "v2"} and abs(counts["v1"] - 900) <= 50, counts  # 90% ± 5 points
    # The canary header overrides the split: every request carrying it reaches v2.
    assert versions(web, 50, {"x-canary": "true"}) == Counter({"v2": 50})
