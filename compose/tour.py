"""The `gammaxds demo` walk-through, run by the compose `tour` service from inside the `web-client` pod.

The steps are those of `make demo` (`gammaxds.demo.tour.tour`); only the way requests leave differs. Here the
sidecars capture transparently: a client dials a Service name (`reviews.store`, mapped to its cluster IP by the
pod's `extra_hosts`), iptables in the pod redirects the connection to the pod's Envoy, and Envoy routes it by
the cluster IP and port that were dialed.

- `web`: this process runs in the `web-client` pod's network namespace, so its own requests are captured by
  web-client's sidecar.
- `store`: the requests are made by the demo app of the `store-client` pod (`GET /__call?url=...`), so they
  leave from that pod and are captured by store-client's sidecar. `/__call` sends no extra headers, which the
  tour never needs from `store`.

The live-change step edits `routes/reviews.yaml` in the manifests volume that the control plane serves, and
the file is put back afterwards, so the tour can be run again (`docker compose run --rm tour`).
Exit code 0 only when every step behaved as described.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gammaxds.demo.tour import Answer, Tour, tour


def _decode(raw: bytes | str) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return {"text": text}
    return body if isinstance(body, dict) else {"text": str(body)}


@dataclass
class CapturedClient:
    """Requests from this pod: dial the Service name on port 80; capture hands the connection to the sidecar."""

    namespace: str

    def get(
        self, host: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> Answer:
        name, _, port = host.partition(":")
        conn = http.client.HTTPConnection(name, int(port or 80), timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host, **(headers or {})})
            resp = conn.getresponse()
            return Answer(resp.status, _decode(resp.read()), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()


@dataclass
class PodAppClient:
    """Requests from another pod: its demo app makes them (`/__call`), through that pod's sidecar."""

    namespace: str
    app_url: str

    def get(
        self, host: str, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> Answer:
        if headers:
            raise ValueError(f"requests from the {self.namespace} pod cannot carry headers ({headers})")
        target = urllib.parse.quote(f"http://{host}{path}", safe="")
        # The app waits up to 10 s for its own call; wait a little longer for its answer.
        url = f"{self.app_url}/__call?url={target}"
        try:
            with urllib.request.urlopen(url, timeout=max(timeout, 12.0)) as resp:
                body = _decode(resp.read())
        except urllib.error.HTTPError as err:  # 502: the app could not connect (its error says why)
            body = _decode(err.read())
        if "upstream_status" not in body:
            raise OSError(f"the {self.namespace} pod could not make the call: {body.get('error', body)}")
        upstream = body.get("upstream")
        return Answer(
            int(body["upstream_status"]),
            upstream if isinstance(upstream, dict) else {"text": str(upstream)},
            {},
        )


@dataclass
class ComposeMesh:
    """What `gammaxds.demo.tour.tour` needs of a mesh: a client per namespace and the manifests' parent."""

    workdir: Path
    sidecars: dict[str, CapturedClient | PodAppClient] = field(default_factory=dict)


# (client namespace, Service host, the app that must answer): every sidecar has its config and every backend
# app listens, so the tour's first requests do not race the start-up.
READY_CHECKS = (
    ("web", "ratings.store", "ratings"),
    ("store", "ratings.store", "ratings"),
    ("web", "reviews-v1.store", "reviews"),
    ("web", "reviews-v2.store", "reviews"),
)


def wait_ready(mesh: ComposeMesh, timeout: float) -> None:
    """Until each check answers 200 from the expected app, through the client's sidecar."""
    deadline = time.monotonic() + timeout
    for ns, host, service in READY_CHECKS:
        last = "no answer yet"
        while True:
            try:
                answer = mesh.sidecars[ns].get(host, "/", timeout=2.0)
                if answer.status == 200 and answer.body.get("service") == service:
                    break
                last = f"{answer.status} {answer.body}"
            except (OSError, http.client.HTTPException) as err:
                last = repr(err)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {ns} client cannot reach {host} after {timeout:.0f}s: {last}")
            time.sleep(0.5)
        print(f"   [{ns}] {host} answers through the sidecar", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--manifests",
        default="/mesh/manifests",
        type=Path,
        help="the directory the control plane serves (the live-change step edits it)",
    )
    parser.add_argument(
        "--store-app",
        default="http://store-client:8080",
        help="the demo app of the client pod in namespace store",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the mesh")
    args = parser.parse_args(argv)

    mesh = ComposeMesh(args.manifests.parent)
    mesh.sidecars["web"] = CapturedClient("web")
    mesh.sidecars["store"] = PodAppClient("store", args.store_app.rstrip("/"))
    route = mesh.workdir / "manifests" / "routes" / "reviews.yaml"
    if mesh.workdir / "manifests" != args.manifests or not route.is_file():
        print(f"error: {route} not found (--manifests must be a directory named manifests)", file=sys.stderr)
        return 1
    original = route.read_text()
    print("gammaxds compose tour: waiting for the sidecars of web-client and store-client ...", flush=True)
    try:
        wait_ready(mesh, args.timeout)
        t: Tour = tour(mesh)  # type: ignore[arg-type]  # duck-typed: workdir and sidecars
    except (RuntimeError, OSError, http.client.HTTPException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if route.read_text() != original:
            route.write_text(original)
            print(f"\n(put {route.name} back as it was: the 90/10 split)", flush=True)
    print("\n== Summary")
    for title, ok, _ in t.results:
        print(f"   {'ok    ' if ok else 'FAILED'} {title}")
    print(
        "\nTry it by hand (from the compose/ directory, while the mesh runs):\n"
        '   docker compose exec store-client-app python -c "import urllib.request as u; '
        "print(u.urlopen('http://reviews.store/reviews').read().decode())\"\n"
        "   docker compose exec controlplane gammaxds status --admin-address 127.0.0.1:9901\n"
        "   docker compose run --rm tour        # the whole tour again",
        flush=True,
    )
    return 0 if all(ok for _, ok, _ in t.results) else 1


if __name__ == "__main__":
    sys.exit(main())
