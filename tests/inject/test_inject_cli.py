"""`gammaxds inject` and `gammaxds bootstrap --output` as a user runs them: a real process, its exit code, what
it prints on stdout and stderr, and that nothing ever ends in a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gammaxds.inject.manifests import load_documents

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "inject"
ERROR_CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "error.txt").exists())
GAMMAXDS = [sys.executable, "-m", "gammaxds"]


def gammaxds(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GAMMAXDS, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_the_error_cases_exist() -> None:
    assert len(ERROR_CASES) >= 8


@pytest.mark.parametrize("case", ERROR_CASES)
def test_invalid_input_is_refused_with_the_golden_lines(case: str) -> None:
    done = gammaxds("inject", "-f", "in.yaml", cwd=GOLDEN / case)
    assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr == (GOLDEN / case / "error.txt").read_text()


def test_stdin_gives_what_the_file_gives() -> None:
    case = GOLDEN / "deployment"
    done = gammaxds("inject", "-f", "-", stdin=(case / "in.yaml").read_text())
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == (case / "out.yaml").read_text()


def test_stdin_errors_name_stdin() -> None:
    done = gammaxds(
        "inject",
        "-f",
        "-",
        stdin="kind: Deployment\nmetadata: {name: x, namespace: y}\nspec: {replicas: 1}\n",
    )
    assert_one_line_error(done, 1, "<stdin>: Deployment/y/x: spec.template: missing")


def test_uninject_from_stdin_gives_the_source_back() -> None:
    case = GOLDEN / "pod"
    done = gammaxds("inject", "--uninject", "-f", "-", stdin=(case / "out.yaml").read_text())
    assert done.returncode == 0, done.stderr
    assert load_documents(done.stdout) == load_documents((case / "in.yaml").read_text())


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(
        gammaxds("inject", "-f", str(tmp_path / "nope.yaml")), 1, "No such file or directory"
    )
    assert_one_line_error(gammaxds("inject", "-f", str(tmp_path)), 1, "Is a directory")


def test_binary_input(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line_error(gammaxds("inject", "-f", str(path)), 1, "cannot read")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--service-cidr", "127.0.0.0/8"], "--service-cidr: invalid service CIDR '127.0.0.0/8'"),
        (["--service-cidr", "banana"], "--service-cidr: invalid service CIDR 'banana'"),
        (["--xds-address", "no-port"], "--xds-address: expected HOST:PORT"),
        (["--xds-address", "x:99999"], "--xds-address: port 99999"),
        (["--image", ""], "--image: not an image reference"),
        (["--proxy-image", "envoy v1"], "--proxy-image: not an image reference"),
    ],
)
def test_bad_flag_values(flags: list[str], fragment: str) -> None:
    done = gammaxds("inject", "-f", str(GOLDEN / "pod" / "in.yaml"), *flags)
    assert_one_line_error(done, 2, fragment)


def test_unknown_flags_and_a_missing_filename_are_usage_errors() -> None:
    for argv in (["inject"], ["inject", "-f", "x", "--bogus"]):
        done = gammaxds(*argv)
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        assert done.stderr.splitlines()[-1].startswith(("gammaxds inject: error: ", "gammaxds: error: "))


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """A reader that stops early (`| head`) gets no traceback from us, however much output is left."""
    source = (GOLDEN / "deployment" / "in.yaml").read_text()
    docs = []
    for i in range(300):  # about a megabyte injected: far beyond a pipe's buffer
        doc = yaml.safe_load(source)
        doc["metadata"]["name"] = f"reviews-{i}"
        docs.append(doc)
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    command = " ".join([*GAMMAXDS, "inject", "-f", str(path)]) + " | head -n 3"
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.splitlines() == ["apiVersion: apps/v1", "kind: Deployment", "metadata:"]
    assert done.stderr == "", done.stderr


def test_bootstrap_output_writes_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "envoy.yaml"
    argv = ["bootstrap", "--node-id", "p.ns", "--namespace", "ns", "--readiness-address", "0.0.0.0:15021"]
    done = gammaxds(*argv, "--output", str(target))
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert target.read_text() == gammaxds(*argv).stdout
    assert [p.name for p in tmp_path.iterdir()] == ["envoy.yaml"]  # no partial file left behind
    assert_one_line_error(gammaxds(*argv, "--output", str(tmp_path / "no" / "dir.yaml")), 1, "cannot write")
    clash = gammaxds(
        "bootstrap", "--node-id", "p", "--namespace", "n", "--readiness-address", "0.0.0.0:15000"
    )
    assert_one_line_error(clash, 2, "needs a port of its own")
