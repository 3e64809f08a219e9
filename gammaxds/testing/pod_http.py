"""The HTTP client a mesh pod runs: the requests of `gammaxds.testing.http_client`, sent from inside the pod.

    python -m gammaxds.testing.pod_http '{"op": "http", "url": "http://10.96.0.10/", "headers": {"Host": "echo"}}'
    python -m gammaxds.testing.pod_http        # a session: one job a line on stdin, one answer a line on stdout

A job is a JSON object; with an argument the program runs that one job, prints its answer and exits (what
`Pod.http` and `Pod.http_many` run), without one it answers jobs until stdin ends (what `Pod.session` runs):

    {"op": "http", "url", "method", "headers", "body", "timeout"}
        one request on a new connection → {"status", "headers", "body", "error"} (`HttpResult`)
    {"op": "many", "url", "n", "method", "headers", "fields", "timeout"}
        n requests over one keep-alive connection → {"tally": [[[status, *fields], count], ...], "errors"}
        (`Tally`)

Only `url` (and `n`) are required; `method` is GET, `timeout` 5 seconds (each request's). A job that fails as a
whole (no such op, a URL without a host) is answered `{"error": "..."}`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .http_client import DEFAULT_TIMEOUT, many, request
from .jobs import answer_jobs, parse_job


def http_job(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """The job of one request on a new connection (`request`)."""
    return {
        "op": "http",
        "url": url,
        "method": method,
        "headers": dict(headers or {}),
        "body": body,
        "timeout": timeout,
    }


def many_job(
    url: str,
    n: int,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    fields: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """The job of `n` requests over one keep-alive connection, tallied by (status, *body[field]) (`many`)."""
    return {
        "op": "many",
        "url": url,
        "n": n,
        "method": method,
        "headers": dict(headers or {}),
        "fields": list(fields),
        "timeout": timeout,
    }


def run_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """One job → its answer (JSON-ready)."""
    op = job.get("op", "http")
    method = str(job.get("method", "GET"))
    headers = dict(job.get("headers") or {})
    timeout = float(job.get("timeout", DEFAULT_TIMEOUT))
    if op == "http":
        return request(str(job["url"]), method, headers, str(job.get("body") or ""), timeout).to_json()
    if op == "many":
        fields = [str(f) for f in job.get("fields") or ()]
        return many(str(job["url"]), int(job["n"]), method, headers, fields, timeout).to_json()
    raise ValueError(f"unknown op {op!r} (http or many)")


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        answer_jobs(run_job)
        return 0
    if args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(args) > 1:
        print("usage: python -m gammaxds.testing.pod_http [JOB]", file=sys.stderr)
        return 2
    print(json.dumps(run_job(parse_job(args[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
