"""Plain HTTP/1.1 requests for tests: the same code runs in the test process and inside the mesh's pods.

A pod runs it through `python -m gammaxds.testing.pod_http` (see there); a test talking to a sidecar on loopback
imports it directly. Both get the same behaviour:

- `request`: one request on a new connection, as `curl` makes one. A failure to get a response is not an
  exception: it is an `HttpResult` with status 0 and `error` saying why ("ConnectionRefusedError: ...").
- `Connection`: requests to one server over one keep-alive connection, reopened when the server closes it.
- `many`: N requests over one `Connection`, tallied by status and chosen fields of the JSON body (`Tally`).

Response header names are lowercased; a header sent several times is joined with ", " (as HTTP allows), so a
header that a route adds beside the backend's own shows both values. No HTTP proxy is ever used: a request goes
exactly where it is dialled (a sidecar, or a Service IP that capture redirects).

Standard library only: a pod's client process imports nothing beyond this package.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

DEFAULT_TIMEOUT = 5.0
KEPT_ERRORS = 5  # how many error messages a `Tally` keeps (the first ones)


@dataclass
class HttpResult:
    """One HTTP exchange; `status` is 0 and `error` set when there was no response."""

    status: int
    headers: dict[str, str]
    body: str
    error: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """A response header by name, whatever its case."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HttpResult:
        return cls(int(data["status"]), dict(data["headers"]), str(data["body"]), data.get("error"))


@dataclass
class Tally:
    """What `many` requests got: counts keyed by (status, *the requested body fields); status 0 counts the
    requests that got no response, and `errors` holds the first messages of those."""

    counts: dict[tuple[Any, ...], int]
    errors: list[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, *key: Any) -> int:
        """Requests whose key starts with `key` (e.g. `count(200)` or `count(200, "echo-v1")`)."""
        return sum(n for k, n in self.counts.items() if k[: len(key)] == key)

    def by(self, index: int) -> dict[Any, int]:
        """Counts summed by one position of the key (0 is the status, 1 the first field, ...)."""
        out: dict[Any, int] = {}
        for k, n in self.counts.items():
            out[k[index]] = out.get(k[index], 0) + n
        return out

    def to_json(self) -> dict[str, Any]:
        return {"tally": [[list(k), n] for k, n in self.counts.items()], "errors": self.errors}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls({tuple(k): n for k, n in data["tally"]}, list(data.get("errors", [])))


def split_url(url: str) -> tuple[str, int, str]:
    """`http://HOST[:PORT]/PATH?QUERY` → (host, port, request target); the port defaults to 80."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, target


def response_headers(response: http.client.HTTPResponse) -> dict[str, str]:
    """The response's headers, names lowercased, repeated headers joined with ", " in order."""
    out: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def describe_error(exc: BaseException) -> str:
    """How a failed exchange is reported: `ConnectionRefusedError: [Errno 111] Connection refused`."""
    return f"{type(exc).__name__}: {exc}"


class Connection:
    """Requests to one server over one keep-alive connection: opened by the first request, reopened by the
    next one after the server closed it (or after a request failed).

    With `retries`, a request that fails is sent again on a new connection, up to that many times: for a
    caller that wants answers and reuses a connection the server may have closed while it was idle. The
    default, 0, leaves every failure to the caller, so a count of failures is a count of what the server did.
    """

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT, retries: int = 0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """Send one request, return the response and its whole body.

        Raises OSError or http.client.HTTPException when there is no response (after the retries; any other
        exception is not retried); the connection is closed then, and the next request opens a new one.
        """
        for attempt in range(self.retries + 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, target, body=body, headers=dict(headers or {}))
                response = self._conn.getresponse()
                data = response.read()
            except BaseException as exc:
                self.close()
                if attempt == self.retries or not isinstance(exc, (OSError, http.client.HTTPException)):
                    raise
                continue
            if response.will_close:
                self.close()
            return response, data
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request(
    url: str,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> HttpResult:
    """One request on a new connection; any failure to get a response lands in `error` (status 0)."""
    try:
        host, port, target = split_url(url)
        with Connection(host, port, timeout) as conn:
            response, data = conn.request(method, target, headers, body or None)
    except Exception as exc:  # whatever went wrong is the answer: a pod's session must outlive a bad request
        return HttpResult(0, {}, "", describe_error(exc))
    return HttpResult(response.status, response_headers(response), data.decode("utf-8", "replace"))


def _body_fields(data: bytes, fields: Sequence[str]) -> list[Any]:
    """The values of `fields` in a JSON object body; None for each when the body is not one."""
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return [None] * len(fields)
    return [parsed.get(name) for name in fields]


def many(
    url: str,
    n: int,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    fields: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> Tally:
    """`n` requests over one keep-alive connection (reopened when the server closes it), tallied by
    (status, *body[field] for field in fields); e.g. `fields=("pod",)` counts which backend answered."""
    host, port, target = split_url(url)
    counts: dict[tuple[Any, ...], int] = {}
    errors: list[str] = []
    with Connection(host, port, timeout) as conn:
        for _ in range(n):
            try:
                response, data = conn.request(method, target, headers)
                key = (response.status, *_body_fields(data, fields))
            except Exception as exc:  # counted as no response; the next request opens a new connection
                errors.append(describe_error(exc))
                key = (0, *[None] * len(fields))
            counts[key] = counts.get(key, 0) + 1
    return Tally(counts, errors[:KEPT_ERRORS])
