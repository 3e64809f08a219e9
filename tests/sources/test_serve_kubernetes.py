"""`gammaxds serve --kubeconfig`, the command a user runs, against an API server: it syncs, serves the cluster's
mesh over xDS, follows changes, writes route status as the elected leader and releases its Lease on shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

from fakekube import FakeKube

from .objects import endpoint_slice, mesh, service


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def _eventually(what: str, check: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await asyncio.to_thread(check)
        except OSError:
            result = None
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _clusters(admin: str) -> set[str]:
    status, body = _get(f"{admin}/debug/config?namespace=web&capture=transparent")
    if status != 200:
        return set()
    return {c["name"] for c in json.loads(body)["clusters"]}


async def test_serve_against_kubernetes(kube: FakeKube, tmp_path: Path) -> None:
    for obj in mesh():
        kube.apply(obj)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    # Port 0 for both, read back from the line serve prints once both listen: nothing picked in advance.
    log = (tmp_path / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gammaxds", "serve", "--kubeconfig", str(kubeconfig),
        "--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0",
        env={**os.environ, "POD_NAMESPACE": "gammaxds-system"},
        stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert proc.stdout is not None
    printed = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    admin = printed.rsplit("admin on ", 1)[-1].strip()
    assert admin.startswith("http://127.0.0.1:"), printed
    try:
        await _eventually("/readyz", lambda: _get(f"{admin}/readyz")[0] == 200)
        clusters = await _eventually("the cluster's Services in the view", lambda: _clusters(admin))
        assert "outbound|80||cart.shop.svc.cluster.local" in clusters

        kube.apply(service("shop", "orders", ip="10.96.0.20"))
        kube.apply(endpoint_slice("shop", "orders-abc", "orders", "10.0.0.9"))
        await _eventually(
            "a new Service to reach the view",
            lambda: "outbound|80||orders.shop.svc.cluster.local" in _clusters(admin),
        )

        def ours() -> list[dict[str, Any]]:
            route = kube.get("HTTPRoute", "shop", "cart-split") or {}
            parents = (route.get("status") or {}).get("parents", [])
            return [p for p in parents if p.get("controllerName") == "gammaxds.io/mesh"]

        parents = await _eventually("route status written by the leader", ours)
        conditions = {c["type"]: c["status"] for c in parents[0]["conditions"]}
        assert conditions["Accepted"] == "True" and conditions["ResolvedRefs"] == "True"
        status = json.loads(_get(f"{admin}/debug/status")[1])
        assert status["leader"]["is_leader"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 15)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, output
    lease = kube.get("Lease", "gammaxds-system", "gammaxds")
    assert lease is not None and not lease["spec"].get("holderIdentity"), f"lease not released: {lease}"
