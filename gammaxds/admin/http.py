"""Serving an aiohttp application on an admin address (`HOST:PORT`, port 0 for any, or `unix:PATH`).

Why aiohttp: request parsing, HEAD, keep-alive rules, malformed requests (400) and Unix sockets are the
library's job, not ours. What this module adds is what the admin address promises:
- the port is bound exclusively (SO_REUSEADDR, never SO_REUSEPORT), so a second server on the same port fails
  at start instead of sharing the port with the first;
- with port 0 the port the kernel chose is read back (`HttpServer.port`);
- every response closes its connection, so a script that sends one request and reads to EOF gets its answer;
- only GET and HEAD exist (405 otherwise), and a failing handler is a plain 500 with the error logged, never
  a traceback sent to the client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

METHODS = ("GET", "HEAD")


def text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> web.Response:
    return web.Response(status=status, body=body.encode(), headers={"Content-Type": content_type})


@web.middleware
async def _plain_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """405 for anything but GET and HEAD on any path; the router's 404 and 405 as one short text line; an
    unexpected error as 500 with its traceback in the log only."""
    if request.method not in METHODS:
        return web.Response(status=405, text="only GET and HEAD\n", headers={"Allow": ", ".join(METHODS)})
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise  # a redirect
        allow = {"Allow": err.headers["Allow"]} if "Allow" in err.headers else {}
        return web.Response(status=err.status, text=f"{err.reason.lower()}\n", headers=allow)
    except Exception:
        log.exception("admin handler failed for %s", request.path_qs)
        return web.Response(status=500, text="internal error\n")


async def _close_after_response(request: web.Request, response: web.StreamResponse) -> None:
    response.force_close()


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp logs a malformed request (no Host header in HTTP/1.1, a broken request line) with a traceback at
    ERROR. It is the client's mistake, and the client was answered 400 saying what it was: one debug line.
    Errors of our own handlers never get here (`_plain_errors` logs them)."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        err = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        self.debug("%s: %s", str(msg) % args, err)


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT → (host, port); an empty host is loopback, `[::1]` is `::1`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT or unix:PATH, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpServer:
    """Serves an aiohttp `Application` on one address until `stop`."""

    def __init__(self, app: web.Application) -> None:
        app.middlewares.append(_plain_errors)
        app.on_response_prepare.append(_close_after_response)
        # No access log: the dashboard polls every second, which would bury the control plane's own log.
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, logger=_ProtocolLog(log, {}))
        self.port = 0

    async def start(self, address: str) -> None:
        site: web.BaseSite
        if address.startswith("unix:"):
            path = address.removeprefix("unix:")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a socket file left by a previous run
            await self.runner.setup()
            site = web.UnixSite(self.runner, path)
        else:
            host, port = split_address(address)
            await self.runner.setup()
            site = web.TCPSite(self.runner, host, port, reuse_address=True, reuse_port=False)
        try:
            await site.start()
        except BaseException:
            await self.runner.cleanup()
            raise
        if not address.startswith("unix:"):
            self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        await self.runner.cleanup()
