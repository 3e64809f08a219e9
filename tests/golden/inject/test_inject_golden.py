"""`gammaxds inject` goldens: `tests/golden/inject/<case>/in.yaml` → `out.yaml` (and `notes.txt`, what stderr
said about objects left unchanged), or `error.txt` (the error lines) for input that must be refused. An
optional `args` file holds the case's flags. Each case is run through the real command line, in-process.

Every case is also checked for idempotence (injecting the output again gives it back byte for byte) and for
the uninject round trip (uninject(inject(x)) == x; for an input that is injected already, the converse).

Regenerate with `make golden` (`pytest tests/golden --update-goldens`).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from gammaxds.cli import main
from gammaxds.inject.manifests import dump_documents, load_documents
from gammaxds.inject.rewrite import ANNOTATION_STATUS

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # the translator goldens' header check, however pytest was started

from test_golden import golden_diff, header_problem, rewrite_goldens  # noqa: E402

CASES = sorted(p.name for p in HERE.iterdir() if (p / "in.yaml").exists())
OUTPUTS = ("out.yaml", "notes.txt", "error.txt")


def run(case: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`gammaxds inject -f in.yaml ARGS...` in the case's folder: (exit code, stdout, stderr)."""
    args = shlex.split((case / "args").read_text()) if (case / "args").exists() else []
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["inject", *argv, *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def produced(case: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    code, out, err = run(case, capsys, "-f", "in.yaml")
    if code != 0:
        assert code == 1 and out == "", (code, out)
        return {"error.txt": err}
    return {"out.yaml": out, **({"notes.txt": err} if err else {})}


@pytest.fixture
def in_case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = HERE / request.node.callspec.params["case"]
    monkeypatch.chdir(folder)  # messages name `in.yaml`, not this checkout's path
    return folder


def test_there_is_a_case_of_each_kind_and_situation() -> None:
    assert {"deployment", "statefulset", "daemonset", "job", "pod", "list", "already-injected"} <= set(CASES)
    assert {"opt-out-pod-template", "inbound-opt-in", "invalid-not-yaml", "invalid-no-pod-template"} <= set(
        CASES
    )


def test_every_case_starts_with_rule_and_expect() -> None:
    problems = [
        f"inject/{case}/in.yaml: {problem}"
        for case in CASES
        if (problem := header_problem((HERE / case / "in.yaml").read_text())) is not None
    ]
    assert not problems, "inject goldens without their `# Rule:` / `# Expect:` header:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, in_case: Path, update_goldens: bool, capsys: pytest.CaptureFixture[str]) -> None:
    now = produced(in_case, capsys)
    recorded = {name: in_case / name for name in OUTPUTS if (in_case / name).exists()}
    if update_goldens:
        rewrite_goldens(in_case, recorded, now)
        return
    assert recorded.keys() == now.keys(), f"outputs differ; run `make golden` and review: {sorted(recorded)}"
    diffs = golden_diff(case, recorded, now)
    assert not diffs, "inject output differs from the golden files (run `make golden`):\n" + "\n".join(
        diffs[:300]
    )


@pytest.mark.parametrize("case", CASES)
def test_errors_are_one_line_per_object(case: str, in_case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = produced(in_case, capsys)
    if "error.txt" not in now:
        return  # a case with output: its notes are checked by test_golden
    lines = now["error.txt"].splitlines()
    assert lines and all(line.startswith("error: in.yaml") for line in lines), lines


@pytest.mark.parametrize("case", CASES)
def test_injecting_twice_is_byte_identical(
    case: str, in_case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = produced(in_case, capsys)
    if "out.yaml" not in first:
        return  # an error case: there is no output to inject again
    (in_case / ".again.yaml").write_text(first["out.yaml"])
    try:
        code, again, _err = run(in_case, capsys, "-f", ".again.yaml")
    finally:
        (in_case / ".again.yaml").unlink()
    assert code == 0 and again == first["out.yaml"]


@pytest.mark.parametrize("case", CASES)
def test_uninject_removes_exactly_what_inject_added(
    case: str, in_case: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = produced(in_case, capsys)
    if "out.yaml" not in first:
        return
    source = (in_case / "in.yaml").read_text()
    injected_already = ANNOTATION_STATUS in json.dumps(load_documents(source))
    (in_case / ".out.yaml").write_text(first["out.yaml"])
    try:
        code, removed, _err = run(in_case, capsys, "--uninject", "-f", ".out.yaml")
        assert code == 0
        if injected_already:
            # The converse: what uninject gives back injects to exactly the input again.
            (in_case / ".removed.yaml").write_text(removed)
            code, again, _err = run(in_case, capsys, "-f", ".removed.yaml")
            assert code == 0 and load_documents(again) == load_documents(source)
            assert again == dump_documents(load_documents(source))
        else:
            assert load_documents(removed) == load_documents(source)
            assert removed == dump_documents(load_documents(source))
    finally:
        for name in (".out.yaml", ".removed.yaml"):
            (in_case / name).unlink(missing_ok=True)


@pytest.mark.parametrize("case", [c for c in CASES if (HERE / c / "out.yaml").exists()])
def test_injected_output_is_valid_against_the_kubernetes_schemas(case: str) -> None:
    """What `kubectl apply` would get: every object inject writes passes Kubernetes' own schemas, strictly."""
    from gammaxds.testing.kube_schema import assert_valid_manifests

    out = HERE / case / "out.yaml"
    assert_valid_manifests(out.read_text(), str(out.relative_to(HERE)))
