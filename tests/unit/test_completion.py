"""`gammaxds completion bash|zsh`: a script the shell accepts, that completes what the parser has."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gammaxds.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def script(shell: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gammaxds", "completion", shell], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def subcommands() -> list[str]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(commands.choices)


def complete(path: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for `line` (Tab at its end), with the script loaded the way `source` loads it."""
    words = line.split(" ")
    program = f"""
source {path}
COMP_WORDS=({" ".join(f"'{w}'" for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
_shtab_gammaxds
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    done = subprocess.run(
        ["bash", "--norc", "-c", program], capture_output=True, text=True, timeout=30, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return sorted(w.strip() for w in done.stdout.splitlines() if w.strip())


def test_the_bash_script_is_valid_bash_and_completes_subcommands_flags_and_choices(tmp_path: Path) -> None:
    text = script("bash")
    path = tmp_path / "gammaxds.bash"
    path.write_text(text)
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "complete " in text and "-F _shtab_gammaxds gammaxds" in text
    assert {"serve", "translate", "bootstrap", "status", "demo", "completion"} <= set(subcommands())
    for name in subcommands():
        assert name in text, f"{name} is not in the completion script"
    assert complete(path, "gammaxds se") == ["serve"]
    assert complete(path, "gammaxds serve --log-f") == ["--log-format"]
    assert complete(path, "gammaxds serve --log-format ") == ["json", "text"]
    assert complete(path, "gammaxds completion ") == ["bash", "zsh"]


def test_paths_complete_as_files(tmp_path: Path) -> None:
    path = tmp_path / "gammaxds.bash"
    path.write_text(script("bash"))
    (tmp_path / "mesh.yaml").write_text("")
    (tmp_path / "certs").mkdir()
    assert complete(path, "gammaxds serve --manifests me", cwd=tmp_path) == ["mesh.yaml"]
    assert complete(path, "gammaxds inject -f me", cwd=tmp_path) == ["mesh.yaml"]
    assert "certs" in complete(path, "gammaxds serve --webhook-cert-dir c", cwd=tmp_path)[0]


def test_the_zsh_script_is_a_compdef_for_gammaxds(tmp_path: Path) -> None:
    text = script("zsh")
    assert text.startswith("#compdef gammaxds")
    for name in subcommands():
        assert name in text
    if shutil.which("zsh"):  # where zsh is installed, it must also accept the script
        path = tmp_path / "_gammaxds"
        path.write_text(text)
        checked = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("shell", ["fish", ""])
def test_an_unknown_shell_is_a_usage_error(shell: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gammaxds", "completion", shell], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "invalid choice" in done.stderr.splitlines()[-1]
