"""The command line used the wrong way, as a subprocess: one line on stderr naming what is wrong, the exit code
(2 for usage, 1 for a failure), never a traceback, and nothing left running."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GAMMAXDS = [sys.executable, "-m", "gammaxds"]


def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GAMMAXDS, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--xds-address", "bogus"], "error: --xds-address bogus: expected HOST:PORT or unix:PATH"),
        (
            ["--xds-address", "no.such.host.invalid:1"],
            "error: --xds-address no.such.host.invalid:1: cannot resolve",
        ),
        (["--kubeconfig", "/nonexistent"], "error: --kubeconfig /nonexistent: no such file"),
        (["--in-cluster"], "error: --in-cluster: this is not a Kubernetes pod"),
    ],
)
def test_serve_refuses_bad_flags_in_one_line(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    done = subprocess.run(
        [*GAMMAXDS, "serve", "--admin-address", "127.0.0.1:0", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert one_error_line(done).startswith(message)


@pytest.mark.parametrize("flag", ["--xds-address", "--admin-address"])
def test_serve_on_a_port_in_use_fails_at_once(flag: str, taken_port: int) -> None:
    other = "--admin-address" if flag == "--xds-address" else "--xds-address"
    done = run("serve", flag, f"127.0.0.1:{taken_port}", other, "127.0.0.1:0")
    assert done.returncode == 1
    assert one_error_line(done) == (
        f"error: {flag} 127.0.0.1:{taken_port}: Address already in use; is another gammaxds serve running?"
    )


def test_a_second_serve_on_the_same_xds_port_does_not_start(tmp_path: Path) -> None:
    """gRPC's SO_REUSEPORT would let both listen and split the sidecars between them."""
    first = subprocess.Popen(
        [*GAMMAXDS, "serve", "--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        xds = line.split("xDS on ", 1)[1].split(",", 1)[0]
        done = run("serve", "--xds-address", xds, "--admin-address", "127.0.0.1:0")
        assert done.returncode == 1 and "Address already in use" in one_error_line(done)
        assert first.poll() is None  # the first one is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0  # and stops cleanly on SIGTERM


def test_usage_errors_exit_2() -> None:
    done = run("serve", "--no-such-flag")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
    assert "Traceback" not in done.stderr


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == "gammaxds 0.1.0"


def test_translate_into_a_closed_pipe_ends_quietly() -> None:
    """`gammaxds translate examples | head -1`: the reader goes away, the command ends, no traceback."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the output: the writer must wait for us
    proc = subprocess.Popen(
        [*GAMMAXDS, "translate", "examples"], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.readline()  # the first line arrived; the rest cannot fit in the pipe
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGPIPE, (proc.returncode, err)
    assert err == b""


def test_every_flag_has_help_and_stands_in_the_readme_table() -> None:
    """The README's command table is checked against the parser, so the two cannot drift apart."""
    import argparse

    from gammaxds.cli import build_parser

    readme = (ROOT / "README.md").read_text().splitlines()
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    problems = []

    def commands_of(name: str, parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
        """`describe service` and `describe proxy` as commands of their own."""
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not nested:
            return [(name, parser)]
        return [
            c for sub_name, sub in nested[0].choices.items() for c in commands_of(f"{name} {sub_name}", sub)
        ]

    for name, sub in [c for n, p in commands.choices.items() for c in commands_of(n, p)]:
        rows = " ".join(line for line in readme if line.startswith(f"| `gammaxds {name}"))
        if not rows:
            problems.append(f"{name}: no row in the README's command table")
        for action in sub._actions:
            flags = [f for f in action.option_strings if f.startswith("--") and f != "--help"]
            if not flags:
                continue
            if not action.help:
                problems.append(f"{name} {flags[0]}: no help text")
            if not any(f in rows for f in flags):
                problems.append(f"{name} {flags[0]}: not in the README's command table")
    assert not problems, "\n".join(problems)


def test_status_without_a_control_plane_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
        done = run("status", "--admin-address", f"127.0.0.1:{s.getsockname()[1]}")
    assert done.returncode == 1
    assert one_error_line(done).startswith("error: cannot reach the control plane's admin API at 127.0.0.1:")
