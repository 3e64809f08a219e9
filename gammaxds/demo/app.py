"""The demo and test backend: an HTTP app that says who answered and echoes what it received.

Every response is JSON: the app's service, version and pod name, and the request's method, path, host and
headers, so a test or a person can see which backend answered and what the sidecar changed on the way.
Query parameters steer it for tests: `status=NNN` answers with that status, `delay=SECONDS` waits first,
`fail=N&key=K` answers 503 to the first N requests carrying key K (for retries). `GET /__requests` lists the
requests seen (for mirroring); `GET /__call?url=...` makes an outbound request (through the sidecar when
`HTTP_PROXY` is set) and returns what came back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class EchoApp:
    def __init__(self, service: str, version: str = "v1", pod: str = "", history: int = 1000) -> None:
        self.service = service
        self.version = version
        self.pod = pod or f"{service}-{version}"
        self.requests: deque[dict[str, Any]] = deque(maxlen=history)
        self.failures: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        seen = {"method": method, "path": target, "host": headers.get("host", ""), "headers": headers}
        body: dict[str, Any] = {"service": self.service, "version": self.version, "pod": self.pod, **seen}
        if parts.path == "/__requests":
            with self.lock:
                return 200, {**body, "requests": list(self.requests)}
        with self.lock:
            self.requests.append(seen)
        if parts.path == "/__call":
            return self.call(query.get("url", ""), body)
        if "delay" in query:
            time.sleep(float(query["delay"]))
        if "fail" in query:
            key = query.get("key", "")
            with self.lock:
                self.failures[key] += 1
                if self.failures[key] <= int(query["fail"]):
                    return 503, body
        return int(query.get("status", 200)), body

    def call(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        except OSError as err:
            return 502, {**body, "error": str(err)}
        try:
            answer: Any = json.loads(text)
        except ValueError:
            answer = text
        return 200, {**body, "upstream_status": status, "upstream": answer}


def make_server(app: EchoApp, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = app.handle(self.command, self.path, headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-served-by", app.pod)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    return ThreadingHTTPServer((host, port), Handler)


def port_in_use(address: str, port: int, what: str, reason: str) -> str:
    """The one line that says a port the demo needs is taken, and what to do about it. Said before anything
    starts: leftovers of an earlier demo on that port would answer the tour's requests, and make it pass
    for the wrong reason."""
    return (
        f"cannot listen on {address}:{port} for {what}: {reason}; most likely an earlier gammaxds demo is "
        f"still running: stop it (`ss -ltnp 'sport = :{port}'` names the process) and run the demo again"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True)
    parser.add_argument("--version", default="v1")
    parser.add_argument("--pod", default=os.environ.get("POD_NAME", ""))
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        server = make_server(EchoApp(args.service, args.version, args.pod), host or "0.0.0.0", int(port))
    except OSError as err:
        what, reason = f"the demo pod {args.pod or args.service}", err.strerror or str(err)
        print(f"error: {port_in_use(host or '0.0.0.0', int(port), what, reason)}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{args.service} {args.version} listening on {args.listen}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
