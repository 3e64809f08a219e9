"""`gammaxds inject -f FILE|-`: read manifests, rewrite them, print YAML; and `bootstrap --output FILE`.

Exit codes: 0 done (notes on objects left unchanged go to stderr), 1 when the input cannot be read or an
object cannot be rewritten (one line per object, nothing on stdout), 2 for bad flag values.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from .manifests import rewrite_text
from .options import inject_config
from .rewrite import ConfigError


def _read(filename: str) -> str:
    """The input text; OSError and UnicodeDecodeError carry what went wrong."""
    if filename == "-":
        return sys.stdin.read()
    return Path(filename).read_text(encoding="utf-8")


def _emit(text: str) -> int:
    """Print to stdout; a reader that went away (`| head`) is not an error worth a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when flushing at exit: point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 0


def run_inject(args: argparse.Namespace) -> int:
    try:
        config = None if args.uninject else inject_config(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    source = "<stdin>" if args.filename == "-" else args.filename
    try:
        text = _read(args.filename)
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        print(f"error: cannot read {source}: {reason}", file=sys.stderr)
        return 1
    result = rewrite_text(text, source, config, remove=args.uninject)
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if result.errors:
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return _emit(result.text)


def write_file(path: str, text: str) -> int:
    """Write `text` to `path` whole or not at all (a reader never sees half a file): a temporary file beside
    it, renamed over it."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        print(f"error: cannot write {path}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0
