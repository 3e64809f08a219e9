"""The pod end of a `mesh.PodSession`: JSON jobs read one a line, each answered with one JSON line.

A program that a test drives from inside a pod (`pod_http`, `grpc_echo session`) runs `answer_jobs` on its
stdin and stdout; the test process writes a job and reads its answer (`PodSession.exchange`), so one process
serves many requests without a process start each. A job that is no JSON object, or whose handler raises, is
answered `{"error": "..."}` and the session goes on.

Standard library only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

Job = dict[str, Any]
Handler = Callable[[Job], Any]


def parse_job(line: str) -> Job:
    """One line → its job; ValueError when the line is not a JSON object."""
    job = json.loads(line)
    if not isinstance(job, dict):
        raise ValueError(f"a job is a JSON object, not {type(job).__name__}")
    return job


def answer(handler: Handler, line: str) -> Any:
    """The answer to one line: the handler's result, or `{"error": ...}` saying why there is none."""
    try:
        job = parse_job(line)
    except ValueError as exc:
        return {"error": f"not a JSON job: {exc}"}
    try:
        return handler(job)
    except Exception as exc:  # a bad job is answered, so the session stays usable
        return {"error": f"{type(exc).__name__}: {exc}"}


def answer_jobs(handler: Handler, lines: Iterable[str] | None = None, out: TextIO | None = None) -> None:
    """Answer every non-blank line of `lines` (default stdin) with one JSON line on `out` (default stdout),
    flushed at once: the other end waits for it. Returns when the input ends."""
    stream = sys.stdout if out is None else out
    for line in sys.stdin if lines is None else lines:
        if line.strip():
            stream.write(json.dumps(answer(handler, line)) + "\n")
            stream.flush()
