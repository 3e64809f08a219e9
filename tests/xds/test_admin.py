"""The admin endpoints, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import xds_views as v
from ads_client import AdsClient
from xds_harness import Views
from xds_probe import probed, sotw_then_probe

from gammaxds.admin import start_admin_server
from gammaxds.translate.view import CLUSTER_TYPE
from gammaxds.xds import SnapshotCache, XdsServer

Connect = Callable[..., AdsClient]


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_health_readiness_metrics_and_debug(
    views: Views, connect: Connect, cache: SnapshotCache, server: XdsServer
) -> None:
    admin = await start_admin_server("127.0.0.1:0", cache, lambda: {"routes": "ok"}, xds=server)
    try:
        assert await get(admin.port, "/healthz") == (200, "ok\n")
        assert (await get(admin.port, "/readyz"))[0] == 503
        views.set(probed(v.view()))
        assert (await get(admin.port, "/readyz"))[0] == 200

        client = connect()
        client.request(CLUSTER_TYPE)
        client.ack(await client.recv(), error="bad cluster")
        await sotw_then_probe(client)  # answered after the NACK, so the NACK has been handled

        status, metrics = await get(admin.port, "/metrics")
        assert status == 200
        assert "gammaxds_connected_streams 1" in metrics
        assert 'gammaxds_pushes_total{type="Cluster"} 1' in metrics
        assert 'gammaxds_nacks_total{type="Cluster"} 1' in metrics
        assert "gammaxds_push_latency_seconds_count" in metrics
        assert "gammaxds_translation_seconds_bucket" in metrics

        status, body = await get(admin.port, "/debug/config?namespace=other&capture=proxy")
        config = json.loads(body)
        assert status == 200 and [c["name"] for c in config["clusters"]] == ["a", "b"]
        assert config["routes"][0]["virtualHosts"][0]["routes"][0]["route"]["cluster"] == "a"
        assert (await get(admin.port, "/debug/config"))[0] == 400

        assert json.loads((await get(admin.port, "/debug/status"))[1]) == {"routes": "ok"}
        (proxy,) = json.loads((await get(admin.port, "/debug/proxies"))[1])
        assert proxy["node_id"] == "sidecar-1" and proxy["namespace"] == "default"
        assert proxy["types"]["Cluster"]["error"] == "bad cluster"
        assert (await get(admin.port, "/nope"))[0] == 404
    finally:
        await admin.stop()
