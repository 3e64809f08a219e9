"""The snapshot cache: computed only for watched keys, serialised once, shared between views."""

from __future__ import annotations

import xds_views as v

from gammaxds.translate.view import CLUSTER_TYPE, View, ViewKey
from gammaxds.xds import SnapshotCache
from gammaxds.xds.snapshot import Snapshot

A, B = ViewKey("a"), ViewKey("b")


async def test_only_watched_keys_are_computed() -> None:
    cache = SnapshotCache()
    asked: list[ViewKey] = []
    view = v.view()

    def provider(key: ViewKey) -> View:
        asked.append(key)
        return view

    assert not cache.ready
    cache.update(provider)
    cache.flush()
    assert cache.ready and asked == []
    seen: list[Snapshot] = []
    cancel = cache.watch(A, seen.append)
    assert asked == [A] and len(seen) == 1  # a new key is computed at once
    cache.update(provider)
    cache.flush()
    assert asked == [A, A] and len(seen) == 1  # same content: watchers are not told
    cancel()
    cache.update(provider)
    cache.flush()
    assert asked == [A, A]


async def test_unchanged_message_objects_are_not_serialised_again() -> None:
    cache = SnapshotCache()
    view = v.view()
    cache.update(lambda key: view)
    cache.watch(A, lambda snap: None)
    first = cache.serialised
    assert first == 6  # 2 clusters, 2 assignments, a listener, a route configuration
    changed = View(
        clusters=(view.clusters[0], v.cluster("b", 7)),
        endpoints=view.endpoints,
        listeners=view.listeners,
        routes=view.routes,
    )
    cache.update(lambda key: changed)
    cache.flush()
    assert cache.serialised == first + 1
    snap = cache.snapshot(A)
    assert snap is not None and snap.of_type(CLUSTER_TYPE)["a"].message is view.clusters[0]


async def test_views_with_equal_content_share_resource_objects() -> None:
    cache = SnapshotCache()
    cache.update(lambda key: v.view())  # a fresh but equal view for every key
    cache.watch(A, lambda snap: None)
    cache.watch(B, lambda snap: None)
    a, b = cache.snapshot(A), cache.snapshot(B)
    assert a is not None and b is not None
    assert a.of_type(CLUSTER_TYPE)["a"] is b.of_type(CLUSTER_TYPE)["a"]
    assert a.of_type(CLUSTER_TYPE)["a"].any is b.of_type(CLUSTER_TYPE)["a"].any


async def test_same_view_object_shares_one_snapshot() -> None:
    cache = SnapshotCache()
    view = v.view()
    cache.update(lambda key: view)
    cache.watch(A, lambda snap: None)
    cache.watch(B, lambda snap: None)
    assert cache.snapshot(A) is cache.snapshot(B)


async def test_versions_are_content_hashes() -> None:
    cache = SnapshotCache()
    cache.update(lambda key: v.view())
    cache.watch(A, lambda snap: None)
    other = SnapshotCache()
    other.update(lambda key: v.view())
    other.watch(A, lambda snap: None)
    mine, theirs = cache.snapshot(A), other.snapshot(A)
    assert mine is not None and theirs is not None
    assert mine.of_type(CLUSTER_TYPE)["a"].version == theirs.of_type(CLUSTER_TYPE)["a"].version
    assert mine.of_type(CLUSTER_TYPE)["a"].version != mine.of_type(CLUSTER_TYPE)["b"].version


async def test_a_failing_view_keeps_its_last_snapshot() -> None:
    cache = SnapshotCache()
    cache.update(lambda key: v.view())
    cache.watch(A, lambda snap: None)
    before = cache.snapshot(A)

    def broken(key: ViewKey) -> View:
        raise RuntimeError("translator bug")

    cache.update(broken)
    cache.flush()
    assert cache.snapshot(A) is before
