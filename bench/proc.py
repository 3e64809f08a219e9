"""Child processes for benchmarks: JSON lines over stdin/stdout, and CPU and memory read from /proc."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .report import ROOT

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_json(module: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m module args` in a fresh interpreter; its last stdout line is a JSON object."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    return env


class Worker:
    """A long-lived child answering one JSON line per JSON command line (stderr is kept for errors)."""

    def __init__(self, module: str, *args: str) -> None:
        self.name = module
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=child_env(),
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            del self.stderr[:-200]

    def call_first_line(self) -> dict[str, Any]:
        """The line a child prints unprompted once it is up (e.g. the address it listens on)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} died while starting:\n{''.join(self.stderr)[-4000:]}")
        return dict(json.loads(line))

    def call(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise RuntimeError(f"{self.name} died during {cmd}:\n{''.join(self.stderr)[-4000:]}")
        reply = dict(json.loads(line))
        if "error" in reply:
            raise RuntimeError(f"{self.name} {cmd}: {reply['error']}\n{''.join(self.stderr)[-4000:]}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError, ValueError):
                self.call("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def serve_commands(handlers: dict[str, Any]) -> None:
    """The child side of `Worker`: read commands from stdin, await the handler, write its reply."""
    import asyncio
    import traceback

    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            print(json.dumps({"ok": True}), flush=True)
            return
        try:
            reply = await handlers[cmd](**msg)
        except Exception as err:
            traceback.print_exc()
            reply = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(reply), flush=True)


def profiling() -> dict[str, Any]:
    """`profile_start` and `profile_stop(top)` commands: cProfile of the child, the top functions as text."""
    import cProfile
    import io
    import pstats

    profiler: list[cProfile.Profile] = []

    async def start() -> dict[str, Any]:
        profiler[:] = [cProfile.Profile()]
        profiler[0].enable()
        return {"ok": True}

    async def stop(top: int = 30) -> dict[str, Any]:
        profiler[0].disable()
        out = io.StringIO()
        pstats.Stats(profiler[0], stream=out).sort_stats("tottime").print_stats(top)
        return {"text": out.getvalue()}

    return {"profile_start": start, "profile_stop": stop}
