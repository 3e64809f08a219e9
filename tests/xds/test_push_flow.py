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
    pushed = await client.recv()
    assert names(pushed) == ["a", "n9"]  # the first push is already of the newest view
    client.ack(pushed)
    # Barrier: a later change must be the very next response, so no other push of the burst came between.
    views.set(v.view({"a": 1, "n9": 9, "probe": 0}))
    assert names(await client.recv()) == ["a", "n9", "probe"]
    assert cache.metrics.recomputes.value() == 3  # the initial view, the burst, the probe


async def test_steady_updates_still_push_at_least_once_a_second(views: Views, connect: Connect) -> None:
    """An update every 50 ms never leaves the 100 ms of quiet the debounce waits for; the one-second cap
    must push anyway. The cap is the behaviour under test, so time is what the test measures."""
    views.set(v.view({"a": 1}))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while loop.time() - start < 2.5:
        i += 1
        views.set(v.view({"a": 1, f"n{i}": i}), flush=False)
        await asyncio.sleep(0.05)
    last = f"n{i}"
    during = []  # pushed while the updates were still coming
    while not client.inbox.empty():
        during.append(client.inbox.get_nowait())
    # Two caps fit in 2.5 s (about 1.0 s and 2.0 s after the first update), each carrying a view the
    # updates had reached then, never the last one.
    assert len(during) >= 2, f"{len(during)} pushes during 2.5 s of steady updates"
    assert all(last not in names(r) for r in during)
    assert len(during) <= 4  # still debounced: not one push per update (50 of them)
    for response in during:
        client.ack(response)
    # Once the updates stop, the newest view is pushed after the quiet period.
    final = await client.recv()
    assert last in names(final)


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
    received = [await slow.recv()]
    while generation(received[-1]) != 20:  # until the newest state arrives (each recv has its deadline)
        received.append(await slow.recv())
    # The slow stream gets a few responses (those already in flight), ending with the newest; not all 21.
    assert generation(received[-1]) == 20
    assert len(received) < 15
