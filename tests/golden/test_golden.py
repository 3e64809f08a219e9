"""Every golden case translates to exactly its recorded views and status, real Envoy accepts every view, and
every case says in its first lines which rule it pins and what the output must show."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.describe.service import client_namespaces, describe_service
from gammaxds.describe.table import render_service
from gammaxds.envoycheck import validate
from gammaxds.model import Loaded, one_copy_each, parse_text
from gammaxds.translate import Translation, Translator
from gammaxds.translate.ir import ir_report
from gammaxds.translate.report import default_views, status_report, view_report

HERE = Path(__file__).parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "in.yaml").exists())
# A label line of the header: `# Rule: ...`, `# Expect: ...`, or a misspelling of either (`# Expected:`,
# `# Expect on X:`) that must not pass for a continuation line.
LABEL = re.compile(r"#\s*(Rule|Expect)")


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=False)


def load_case(case: Path) -> Loaded:
    """The case's input, with errors naming `in.yaml` rather than this checkout's absolute path."""
    return one_copy_each(parse_text((case / "in.yaml").read_text(), "in.yaml"))


def outputs(case: Path) -> dict[str, str]:
    loaded = load_case(case)
    translation = Translator().load(loaded.world())
    out = {"status.yaml": dump(status_report(translation, loaded))}
    for key in default_views(translation):
        out[f"{key.namespace}.{key.capture}.yaml"] = dump(
            view_report(translation, key.namespace, key.capture)
        )
    out["ir.yaml"] = dump(ir_report(translation))
    out["describe.txt"] = describe_all(translation, loaded)
    return out


def describe_all(translation: Translation, loaded: Loaded) -> str:
    """`gammaxds describe service` of every Service, for its own namespace and each namespace with consumer
    routes on it: the human view of the same translation, pinned beside the Envoy view."""
    parts = []
    for ns, name in sorted(translation.world.services):
        for client in client_namespaces(translation, ns, name):
            parts.append(render_service(describe_service(translation, ns, name, client, loaded.errors)))
    return "\n".join(parts)


def header_problem(text: str) -> str | None:
    """Why an `in.yaml` does not start with its header, or None when it does.

    The header is the file's first comment lines: `# Rule: ` (the GAMMA / Gateway API rule the case pins),
    then `# Expect: ` (what the outputs must show), each non-empty and each optionally continued by further
    comment lines. Without it a golden diff cannot be judged: nobody can tell a fix from a regression."""
    lines = text.splitlines()
    head: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    if not head or not head[0].startswith("# Rule: ") or not head[0].removeprefix("# Rule: ").strip():
        first = lines[0] if lines else ""
        return f"first line is not `# Rule: <the rule>`: {first[:80]!r}"
    for line in head[1:]:
        if line.startswith("# Expect: ") and line.removeprefix("# Expect: ").strip():
            return None
        if LABEL.match(line):
            return f"after the Rule, a label that is not `# Expect: <the outcome>`: {line[:80]!r}"
    return "no `# Expect: <the outcome>` line in the leading comment lines, after the Rule"


def rewrite_goldens(folder: Path, recorded: Mapping[str, Path], produced: Mapping[str, str]) -> None:
    """`--update-goldens`: write each produced output into `folder`, and remove each recorded one no longer
    produced (orphaned: that output no longer exists)."""
    for name, text in produced.items():
        (folder / name).write_text(text)
    for name in recorded.keys() - produced.keys():
        recorded[name].unlink()


def golden_diff(case: str, recorded: Mapping[str, Path], produced: Mapping[str, str]) -> list[str]:
    """The unified diff, golden → now, of each produced output (by file name) that differs from its recorded
    file; empty when every one is as recorded. Every name of `produced` must be in `recorded`."""
    diffs: list[str] = []
    for name, text in produced.items():
        old = recorded[name].read_text()
        if old != text:
            diffs += difflib.unified_diff(
                old.splitlines(),
                text.splitlines(),
                f"{case}/{name} (golden)",
                f"{case}/{name} (now)",
                lineterm="",
            )
    return diffs


def test_every_case_starts_with_rule_and_expect() -> None:
    problems = [
        f"{case}/in.yaml: {problem}"
        for case in CASES
        if (problem := header_problem((HERE / case / "in.yaml").read_text())) is not None
    ]
    assert not problems, "golden cases without their `# Rule:` / `# Expect:` header:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# Rule: r\n# Expect: e\napiVersion: v1\n", None),
        ("# Rule: r\n# more of r\n# Expect: e\n# more of e\n# a note\napiVersion: v1\n", None),
        ("apiVersion: v1\n", "first line is not `# Rule: <the rule>`"),
        ("\n# Rule: r\n# Expect: e\n", "first line is not `# Rule: <the rule>`"),
        ("# Rule:\n# Expect: e\n", "first line is not `# Rule: <the rule>`"),
        ("# Rule: r\napiVersion: v1\n# Expect: e\n", "no `# Expect: <the outcome>` line"),
        ("# Rule: r\n# Expected: e\n", "a label that is not `# Expect: <the outcome>`"),
        ("# Rule: r\n# Expect on echo:80: e\n", "a label that is not `# Expect: <the outcome>`"),
        ("# Rule: r\n# Rule: again\n# Expect: e\n", "a label that is not `# Expect: <the outcome>`"),
    ],
)
def test_header_problem(text: str, problem: str | None) -> None:
    """The header check itself: what passes, and that each way of getting it wrong is named."""
    found = header_problem(text)
    assert found is None if problem is None else found is not None and problem in found, found


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_goldens: bool) -> None:
    folder = HERE / case
    produced = outputs(folder)
    recorded = {p.name: p for p in [*folder.glob("*.yaml"), *folder.glob("*.txt")] if p.name != "in.yaml"}
    if update_goldens:
        rewrite_goldens(folder, recorded, produced)
        return
    assert recorded.keys() == produced.keys(), (
        f"views differ; run `make golden` and review the diff: {sorted(recorded.keys() ^ produced.keys())}"
    )
    diffs = golden_diff(case, recorded, produced)
    assert not diffs, (
        "translation differs from the golden files (run `make golden` and review):\n" + "\n".join(diffs[:300])
    )


@pytest.mark.parametrize("case", CASES)
def test_envoy_accepts_every_view(case: str) -> None:
    loaded = load_case(HERE / case)
    translation = Translator().load(loaded.world())
    for key in default_views(translation):
        error = validate(translation.view(key))
        assert error is None, f"Envoy rejects view {key}: {error}"
