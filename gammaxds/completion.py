"""`gammaxds completion bash|zsh`: a shell completion script, generated from the command's own parser.

The script comes from shtab, which writes a static script from an argparse parser: every subcommand, flag and
choice the parser has (a flag added tomorrow is completed tomorrow, with no list kept here), and pressing Tab
runs only the shell, never Python. argcomplete, the other well-kept choice, completes by running the
program itself on every Tab, which would import gammaxds (pydantic, protobuf) each time: a noticeable pause,
for nothing the parser cannot say ahead of time.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")

# Arguments that name files or directories, told by their metavar: completed with the shell's own path
# completion instead of nothing.
FILE_METAVARS = frozenset({"FILE", "PATH", "FILE|-"})
DIRECTORY_METAVARS = frozenset({"DIR"})


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)
        elif action.metavar in FILE_METAVARS:
            # shtab reads `complete` from the action, an attribute argparse's stubs do not declare.
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        elif action.metavar in DIRECTORY_METAVARS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of `parser` for `shell` (one of SHELLS)."""
    import shtab

    _mark_paths(parser)
    return shtab.complete(parser, shell=shell)


def run_completion(args: argparse.Namespace) -> int:
    from .cli import build_parser

    print(completion_script(build_parser(), args.shell), end="")
    return 0
