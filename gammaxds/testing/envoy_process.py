"""Run a real Envoy for end-to-end tests and benchmarks: start it from a bootstrap, wait for its admin, read
its config."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ENVOY_BINARY = Path(sys.executable).parent / "envoy"
_names = itertools.count(1)


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (for listeners that cannot bind port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EnvoyError(RuntimeError):
    pass


class Envoy:
    """One Envoy process. The admin listener binds port 0; its real address is read from a file Envoy writes.

    Logs go to `<workdir>/<name>.log`; `logs()` returns them (print them when a test fails).
    """

    def __init__(self, bootstrap: dict[str, Any], workdir: Path, name: str | None = None) -> None:
        self.name = name or f"envoy-{next(_names)}"
        self.workdir = workdir
        self.config = json.loads(json.dumps(bootstrap))  # a private copy
        self.config["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}
        self.bootstrap_path = workdir / f"{self.name}.yaml"
        self.log_path = workdir / f"{self.name}.log"
        self.admin_path = workdir / f"{self.name}.admin"
        self.process: subprocess.Popen[bytes] | None = None
        self.admin_address = ""

    def start(self, log_level: str = "info") -> Envoy:
        if self.process is not None and self.process.poll() is None:
            raise EnvoyError(f"{self.name} is already running (pid {self.process.pid}): start it once")
        self.bootstrap_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.admin_path.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(ENVOY_BINARY),
                "-c",
                str(self.bootstrap_path),
                "--disable-hot-restart",  # no shared memory: many Envoys can run side by side
                "--concurrency",
                "1",
                "--log-level",
                log_level,
                "--admin-address-path",
                str(self.admin_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_admin(self, timeout: float = 20.0) -> str:
        """Wait until the admin listener is bound; returns HOST:PORT."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            if self.admin_path.exists() and (text := self.admin_path.read_text().strip()):
                self.admin_address = text
                return text
            time.sleep(0.02)
        raise EnvoyError(f"{self.name}: admin not up after {timeout}s\n{self.logs()}")

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until Envoy finished initialising (its first CDS and LDS are applied): /ready says LIVE."""
        deadline = time.monotonic() + timeout
        if not self.admin_address:
            self.wait_admin(timeout)
        while time.monotonic() < deadline:
            self._check_running()
            try:
                if self.admin("/ready").strip() == "LIVE":
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise EnvoyError(f"{self.name}: not ready after {timeout}s\n{self.logs()}")

    def admin(self, path: str, method: str = "GET") -> str:
        if not self.admin_address:
            self.wait_admin()
        request = urllib.request.Request(f"http://{self.admin_address}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as err:
            return str(err.read().decode())

    def config_dump(self, resource: str | None = None) -> dict[str, Any]:
        """`/config_dump`, optionally one kind (e.g. `dynamic_active_clusters`)."""
        path = "/config_dump" + (f"?resource={resource}" if resource else "")
        return dict(json.loads(self.admin(path)))

    def listener_port(self, name: str, timeout: float = 20.0) -> int:
        """The port Envoy bound for listener `name` (`/listeners`), once it is active.

        Why: a listener configured with port 0 gets a port from the kernel, read back here. A port picked
        in advance (bind, release, hand it to Envoy) can be taken by another process in between."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                for status in json.loads(self.admin("/listeners?format=json")).get("listener_statuses", []):
                    if status.get("name") == name:
                        port = int(status["local_address"]["socket_address"].get("port_value", 0))
                        if port:
                            return port
            time.sleep(0.02)
        raise EnvoyError(f"{self.name}: listener {name} not bound after {timeout}s\n{self.logs()}")

    def active_clusters(self) -> set[str]:
        dump = self.config_dump("dynamic_active_clusters")
        return {c["cluster"]["name"] for c in dump.get("configs", [])}

    def stats(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.admin(f"/stats?filter={prefix}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise EnvoyError(f"{self.name} exited with {self.process.returncode}\n{self.logs()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
