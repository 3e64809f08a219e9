"""`gammaxds describe service` offline, as a user runs it on the examples: the tables say which routes apply
and why, and every wrong use is one line with the right exit code."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def describe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gammaxds", "describe", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_producer_routes_with_their_rules_in_precedence_order() -> None:
    done = describe("service", "reviews.store", "--manifests", "examples")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Service store/reviews (cluster IP 10.96.10.10), for clients in namespace store"
    port_line = next(line for line in lines if line.startswith("Port 80/http"))
    assert "producer routes" in port_line
    rules = [line.split() for line in lines if line.lstrip()[:2] in ("1 ", "2 ")]
    assert [r[0] for r in rules] == ["1", "2"]
    first, second = (" ".join(r) for r in rules)
    assert "header x-canary=true" in first and "store/reviews-v2:80 100%" in first  # the header match wins
    assert "store/reviews-v1:80 90%" in second and "store/reviews-v2:80 10%" in second
    assert lines[-1] == "Problems: none"


def test_consumer_routes_for_clients_of_their_namespace() -> None:
    done = describe(
        "service", "ratings.store", "--from", "web", "--manifests", "examples", "--output", "json"
    )
    data = json.loads(done.stdout)
    (port,) = data["ports"]
    assert port["routes"] == "consumer" and port["names"] == ["HTTPRoute web/ratings"]
    assert data["from"] == "web"
    own = json.loads(
        describe("service", "ratings.store", "--manifests", "examples", "--output", "json").stdout
    )
    assert own["ports"][0]["routes"] != "consumer"  # clients in store do not get web's route


def test_wrong_uses_are_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: connection refused
        cases = [
            (["service", "reviews"], 2, "error: service 'reviews': expected NAME.NAMESPACE"),
            (
                ["service", "ghost.store", "--manifests", "examples"],
                1,
                "error: no Service store/ghost in examples",
            ),
            (
                ["service", "reviews.store", "--manifests", "/nonexistent"],
                1,
                "error: /nonexistent: cannot read",
            ),
            (
                ["service", "reviews.store", "--admin-address", closed],
                1,
                "error: cannot reach the control plane",
            ),
            (["proxy", "web-1", "--admin-address", closed], 1, "error: cannot reach the control plane"),
        ]
        for args, code, message in cases:
            done = describe(*args)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert (done.returncode, len(lines)) == (code, 1), (args, done.stderr)
            assert lines[0].startswith(message), (args, lines[0])
