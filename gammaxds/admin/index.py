"""`GET /` on the admin address: what each endpoint shows, as text for curl and as links for a browser.

One table, `ENDPOINTS`, is the list the index prints, the README's admin section repeats (a test keeps them
together) and the server routes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    path: str
    usage: str  # how to call it, e.g. with its query parameters
    shows: str  # one line: what it shows


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/", "/", "this list of endpoints"),
    Endpoint("/healthz", "/healthz", "200 while the process serves (liveness)"),
    Endpoint("/readyz", "/readyz", "200 once there is a configuration to send, else 503 (readiness)"),
    Endpoint(
        "/metrics",
        "/metrics",
        "Prometheus metrics: connected streams, pushes, NACKs, push and ACK latency, translation time",
    ),
    Endpoint(
        "/debug/config",
        "/debug/config?namespace=NS&capture=transparent|proxy&outbound=HOST:PORT",
        "the resources a sidecar of that view is sent (proto3 JSON), with each resource's version",
    ),
    Endpoint(
        "/debug/status",
        "/debug/status",
        "every route's status conditions, and the inputs not in force with file, field and reason (JSON)",
    ),
    Endpoint(
        "/debug/proxies",
        "/debug/proxies",
        "the connected sidecars: versions sent and acknowledged per type, the last NACK (JSON)",
    ),
    Endpoint(
        "/debug/graph",
        "/debug/graph",
        "which Service routes to which, per client namespace, with weights and invalid backends (JSON)",
    ),
    Endpoint(
        "/debug/describe/service",
        "/debug/describe/service?namespace=NS&name=NAME&from=NS",
        "what `gammaxds describe service` prints: routes, rules, backends and endpoints per port (JSON)",
    ),
    Endpoint(
        "/debug/describe/proxy",
        "/debug/describe/proxy?node=ID",
        "what `gammaxds describe proxy` prints: one sidecar's resources, each ACKED, NACKED or SENT (JSON)",
    ),
    Endpoint(
        "/ui",
        "/ui",
        "the dashboard: Services, routes and their status, the routing graph and the sidecars, live",
    ),
)


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type`, from its most specific matching range (RFC 9110 §12.5.1)."""
    main = media_type.split("/")[0]
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        kind = parts[0].lower()
        specificity = 2 if kind == media_type else 1 if kind == f"{main}/*" else 0 if kind == "*/*" else -1
        if specificity < best[0] or specificity < 0:
            continue
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return best[1]


def prefers_html(accept: str) -> bool:
    """A browser's Accept ranks text/html above text/plain; curl's `*/*` does not, and gets text."""
    return _quality(accept, "text/html") > _quality(accept, "text/plain")


def index_text() -> str:
    width = max(len(e.usage) for e in ENDPOINTS)
    lines = ["gammaxds admin endpoints", ""]
    lines += [f"{e.usage.ljust(width)}  {e.shows}" for e in ENDPOINTS]
    return "\n".join(lines) + "\n"


def index_html() -> str:
    """Links relative to `/`, so the page also works behind a proxy that serves it under a path prefix."""
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(e.path.lstrip("/") or ".")}"><code>{html.escape(e.usage)}</code></a>'
        f"</td><td>{html.escape(e.shows)}</td></tr>"
        for e in ENDPOINTS
    )
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gammaxds admin</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}td{{padding:.25em 1em .25em 0}}</style></head>
<body>
<h1>gammaxds admin</h1>
<table>
{rows}
</table>
</body>
</html>
"""
