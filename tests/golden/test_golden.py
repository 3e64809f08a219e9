"""Every golden case translates to exactly its recorded views and status, and real Envoy accepts every view."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.envoycheck import validate
from gammaxds.model import Loaded, parse_text
from gammaxds.translate import Translator
from gammaxds.translate.report import default_views, status_report, view_report

HERE = Path(__file__).parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "in.yaml").exists())


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=120, default_flow_style=False)


def load_case(case: Path) -> Loaded:
    """The case's input, with errors naming `in.yaml` rather than this checkout's absolute path."""
    return parse_text((case / "in.yaml").read_text(), "in.yaml")


def outputs(case: Path) -> dict[str, str]:
    loaded = load_case(case)
    translation = Translator().load(loaded.world())
    out = {"status.yaml": dump(status_report(translation, loaded))}
    for key in default_views(translation):
        out[f"{key.namespace}.{key.capture}.yaml"] = dump(
            view_report(translation, key.namespace, key.capture)
        )
    return out


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, update_goldens: bool) -> None:
    folder = HERE / case
    produced = outputs(folder)
    recorded = {p.name: p for p in folder.glob("*.yaml") if p.name != "in.yaml"}
    if update_goldens:
        for name, text in produced.items():
            (folder / name).write_text(text)
        for name in recorded.keys() - produced.keys():
            recorded[name].unlink()  # orphaned: that view no longer exists
        return
    assert recorded.keys() == produced.keys(), (
        f"views differ; run `make golden` and review the diff: {sorted(recorded.keys() ^ produced.keys())}"
    )
    diffs = []
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
