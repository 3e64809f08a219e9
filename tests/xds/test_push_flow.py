"""Pushes are debounced, coalesced per stream, and never wait for a slow stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import xds_views as v
from ads_client import AdsClient
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from xds_harness import Views
from xds_responses import messages, names

from gammaxds.translate.view import CLUSTER_TYPE, View
from gammaxds.xds import SnapshotCache

Connect = Callable[..., AdsClient]


def big_view(generation: int, clusters: int = 8, size: int = 200_000) -> View:
    """Clusters with large metadata, so a stream that does not read fills its HTTP/2 window fast."""
    out = []
    for i in range(clusters):
        c = v.cluster(f"c{i}")
        c.metadata.filter_metadata["gammaxds"].update({"generation": generation, "pad": "x" * size})
        out.append(c)
    return View(clusters=tuple(out))


def generation(response: object) -> int:
    cluster: Cluster = messages(response)[0]
    return int(cluster.metadata.filter_metadata["gammaxds"]["generation"])


async def test_burst_of_updates_becomes_one_push(
    views: Views, connect: Connect, cache: SnapshotCache
) -> None:
    views.set(v.view({"a": 1}))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    for i in range(10):  # 10 updates within 50 ms
        views.set(v.view({"a": 1, f"n{i}": i}), flush=False)
        await asyncio.sleep(0.005)
    pushed = await client.recv_all(0.4)
    assert len(pushed) == 1 and names(pushed[0]) == ["a", "n9"]  # one push, of the newest view
    assert cache.metrics.recomputes.value() == 2  # the initial view, then the burst


async def test_steady_updates_still_push_at_least_once_a_second(views: Views, connect: Connect) -> None:
    views.set(v.view({"a": 1}))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while loop.time() - start < 1.5:  # an update every 50 ms never leaves 100 ms of quiet
        i += 1
        views.set(v.view({"a": 1, f"n{i}": i}), flush=False)
        await asyncio.sleep(0.05)
    pushed = await client.recv_all(0.3)
    assert 1 <= len(pushed) <= 3


async def test_slow_stream_gets_newest_state_and_does_not_block_others(
    views: Views, connect: Connect
) -> None:
    views.set(big_view(0))
    slow = connect(read=False)
    fast = connect()
    for client in (slow, fast):
        client.request(CLUSTER_TYPE)
    assert generation(await fast.recv()) == 0
    for gen in range(1, 21):
        views.set(big_view(gen))
        response = await fast.recv(timeout=2)  # never held up by the stream nobody reads
        assert generation(response) == gen
        fast.ack(response)
    slow.start_reading()
    received = await slow.recv_all(0.5)
    # The slow stream gets a few responses (those already in flight), ending with the newest; not all 21.
    assert generation(received[-1]) == 20
    assert len(received) < 15
