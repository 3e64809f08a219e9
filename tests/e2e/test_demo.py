"""`gammaxds demo` — the newcomer's first command — runs the sample mesh, and the mesh behaves as it says.

The demo grades itself; this test does not take its word for it. It runs `gammaxds demo --keep`, reads the
addresses the demo prints, and sends its own requests through the demo's sidecars to check what the tour
claims: the 90/10 split, canary routing, web's consumer route (header and timeout) and no one else's, 404
when nothing matches, and traffic following a route file edit; that the commands it hands off paste into a
shell as they are, and that a second demo, finding the first one's ports taken, stops at once in one line
instead of passing on the first one's answers. Then SIGTERM must stop every process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shlex
import shutil
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
        route = re.search(r"\$\{EDITOR:-vi\} (\S+reviews\.yaml)", output)
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


# What a shell would take as the end of a command, or a second one, when not quoted.
CONTROL_OPERATORS = {"&", "&&", ";", "|", "||", "(", ")", "<", ">"}


def hand_off_commands(output: str) -> list[str]:
    """The command lines the demo prints to try the mesh by hand (indented, between the two markers)."""
    block = output.split("Try it by hand", 1)[1].split(KEEP_MARKER, 1)[0]
    return [line.strip() for line in block.splitlines()[1:] if line.startswith("   ")]


def shell(line: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one pasted line in a plain bash whose PATH has no venv in it (as after `make demo`)."""
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", line], capture_output=True, text=True, timeout=60, env=environ
    )


def test_the_hand_off_commands_paste_into_a_shell_as_they_are(demo: Demo) -> None:
    commands = hand_off_commands(demo.output)
    assert len(commands) == 6, commands
    for line in commands:
        words = list(shlex.shlex(line, posix=True, punctuation_chars=True))
        assert not CONTROL_OPERATORS & set(words), f"unquoted shell syntax in: {line}"
        assert "#" not in words, f"a trailing comment (an interactive zsh passes it on): {line}"
    gammaxds = [line for line in commands if "gammaxds" in line.split()[0]]
    assert len(gammaxds) == 2, commands
    for line in gammaxds:
        program = Path(shlex.split(line)[0])
        assert program.is_absolute() and os.access(program, os.X_OK), line
    status = shell(next(line for line in gammaxds if " status " in line))
    assert status.returncode == 0, status.stderr
    assert "web-client" in status.stdout and "store-client" in status.stdout, status.stdout
    translate = shell(next(line for line in gammaxds if " translate " in line))
    assert translate.returncode == 0, translate.stderr
    assert "namespace: web" in translate.stdout
    edit = next(line for line in commands if line.startswith("${EDITOR:-vi} "))
    assert shell(edit, EDITOR="true").returncode == 0, edit
    curls = [line for line in commands if line.startswith("curl ")]
    assert len(curls) == 3 and any("&capture=proxy" in line for line in curls), curls
    for line in curls:
        if shutil.which("curl"):
            done = shell(f"{line} --silent --show-error --fail")
            assert done.returncode == 0, (line, done.stderr)
            body = done.stdout
        else:  # no curl here: what curl would send, from the words the shell would give it
            words = shlex.split(line)
            headers = dict(w.split(": ", 1) for w in words[2:-1:2]) if "-H" in words else {}
            url = words[-1]
            host, _, rest = url.removeprefix("http://").partition("/")
            port = int(host.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/{rest}", headers=headers)
            body = conn.getresponse().read().decode()
            conn.close()
        assert json.loads(body), line


def test_a_second_demo_finding_the_ports_taken_stops_at_once_in_one_line(demo: Demo) -> None:
    """The running demo's pods hold their ports: a second demo must not start and pass on their answers."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gammaxds", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 15
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "127.0.10.1:8080" in errors[0] and "earlier gammaxds demo" in errors[0], errors[0]
    assert "== " not in done.stdout  # no step ran
    # The first demo is untouched.
    status, body = get(demo.sidecars["store"], "ratings.store", "/")
    assert (status, body.get("service")) == (200, "ratings")


def test_a_pod_that_cannot_bind_stops_the_mesh_in_one_line(tmp_path: Path) -> None:
    """Taken after the demo's check (a race): the pod says so, and waiting for it ends with that line, not a
    pass on whatever answers the port, nor a time-out."""
    from gammaxds.demo.tour import Mesh

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        mesh = Mesh(tmp_path)
        try:
            mesh.spawn(
                [sys.executable, "-m", "gammaxds.demo.app", "--service", "ratings", "--pod", "ratings-x",
                 "--listen", f"127.0.0.1:{port}"],
                "ratings-x.log",
                "the demo pod ratings-x",
            )  # fmt: skip
            with pytest.raises(RuntimeError) as failed:
                mesh.wait("the demo pod ratings-x", lambda: mesh.said("ratings-x.log", " listening on "))
        finally:
            mesh.stop()
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("the demo pod ratings-x exited (code 1): cannot listen on 127.0.0.1:")
    assert f":{port} for the demo pod ratings-x" in message and "earlier gammaxds demo" in message
