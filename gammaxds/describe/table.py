"""Text tables for `gammaxds describe`: the data of `service.py` and `proxy.py`, for people at a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned columns, as wide as their widest cell; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        out.append((indent + "  ".join([*cells, str(row[-1])])).rstrip())
    return out


def _endpoints(e: dict[str, int] | None) -> str:
    if e is None:
        return ""
    text = f"{e['ready']} ready"
    return text + (f", {e['fallback']} terminating" if e.get("fallback") else "")


def _backend(b: dict[str, Any]) -> str:
    if not b["valid"]:
        return f"{b['service']}:{b['port']} {b['share']:g}% INVALID: {b['problem']} (answered {b.get('answered', 500)})"
    return f"{b['service']}:{b['port']} {b['share']:g}% ({_endpoints(b.get('endpoints'))})"


def render_service(d: dict[str, Any]) -> str:
    ip = f" (cluster IP {d['clusterIP']})" if d.get("clusterIP") else " (no cluster IP)"
    lines = [f"Service {d['service']}{ip}, for clients in namespace {d['from']}"]
    for p in d["ports"]:
        name = f"/{p['name']}" if p["name"] else ""
        lines.append("")
        lines.append(f"Port {p['port']}{name} ({p['protocol'] or 'unsupported protocol'}): {p['why']}")
        if p.get("names"):
            lines.append(f"  routes: {', '.join(p['names'])}")
        if p["rules"]:
            rows = []
            for i, r in enumerate(p["rules"], 1):
                where = f"{r['route']} rule {r['rule']}"
                filters = "; ".join(r["filters"]) or "-"
                then = r.get("answer") or ", ".join(_backend(b) for b in r["backends"])
                if r.get("answer") and r["backends"]:
                    then = f"{r['answer']}: " + ", ".join(_backend(b) for b in r["backends"])
                rows.append([str(i), r["match"], where, filters, then])
            lines += table(["#", "MATCH", "ROUTE", "FILTERS", "THEN"], rows)
        default = p["default"]
        if isinstance(default, dict):
            lines.append(f"  → {default['service']}:{default['port']} ({_endpoints(default['endpoints'])})")
        else:
            lines.append(f"  otherwise: {default}")
    lines.append("")
    if d["problems"]:
        lines.append("Problems:")
        lines += [f"  {problem}" for problem in d["problems"]]
    else:
        lines.append("Problems: none")
    return "\n".join(lines) + "\n"


def render_proxy(d: dict[str, Any]) -> str:
    lines = [
        f"Proxy {d['node_id']}: namespace {d['namespace']}, capture {d['capture']}, {d['protocol']} stream "
        f"from {d['peer']}, connected {d['connected_at']}"
    ]
    for t in d["types"]:
        state = "in sync" if t["synced"] else "not in sync"
        lines.append("")
        lines.append(
            f"{t['label']}: sent version {t['sent_version'] or '-'}, acknowledged {t['acked_version'] or '-'} ({state})"
        )
        if t["error"]:
            lines.append(f"  NACK of version {t['error_version']}: {t['error']}")
        rows = [[r["name"], r["status"], r["version"], r["summary"]] for r in t["resources"]]
        if rows:
            lines += table(["NAME", "STATUS", "VERSION", "WHAT"], rows)
    return "\n".join(lines) + "\n"
