"""Fan-out cost: a push after a small change does O(changed) work per stream, plain ACKs cause no push,
per-stream state is a reference to the shared snapshot, and responses are encoded from shared bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import xds_views as v
from ads_client import AdsClient
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from xds_harness import Views
from xds_probe import delta_then_probe, probed, sotw_then_probe

from gammaxds.testing.gamma import until
from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, View
from gammaxds.xds import SnapshotCache, XdsServer
from gammaxds.xds.holdings import Holdings
from gammaxds.xds.snapshot import Encoder
from gammaxds.xds.sotw import names_fingerprint
from gammaxds.xds.stream import Stream
from gammaxds.xds.typestate import TypeState
from gammaxds.xds.wire import delta_response, sotw_response

Connect = Callable[..., AdsClient]
SIZE = 500


def big_view(ports: dict[str, int]) -> View:
    return v.view(ports)


def ports(changed: dict[str, int] | None = None) -> dict[str, int]:
    base = {f"c{i:04d}": 8000 + i for i in range(SIZE)}
    return {**base, **(changed or {})}


def count_calls(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[int]:
    calls = [0]
    original = getattr(cls, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def test_unchanged_types_keep_their_mapping_and_changed_names_are_known() -> None:
    encoder = Encoder()
    first = encoder.snapshot(big_view(ports()), 0.0)
    second = encoder.snapshot(big_view(ports({"c0007": 1})), 1.0, first)
    third = encoder.snapshot(big_view(ports({"c0007": 1, "c0009": 2})), 2.0, second)
    for type_url in (LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE):
        assert third.of_type(type_url) is first.of_type(type_url)  # O(1) for streams: same object
    eds = third.lineage_of(ENDPOINT_TYPE)
    assert eds is not None
    assert eds.changed_since(second.lineage_of(ENDPOINT_TYPE).generation) == {"c0009"}  # type: ignore[union-attr]
    assert eds.changed_since(first.lineage_of(ENDPOINT_TYPE).generation) == {"c0007", "c0009"}  # type: ignore[union-attr]
    assert eds.changed_since(-5) is None  # unknown ancestor: compare everything


def test_a_push_after_one_change_looks_at_the_changed_names_only(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = Encoder()
    first = encoder.snapshot(big_view(ports()), 0.0)
    second = encoder.snapshot(big_view(ports({"c0007": 1})), 1.0, first)
    state = TypeState(ENDPOINT_TYPE)
    state.subscribe_sotw(list(ports()))
    diff = state.diff_snapshot(first)
    assert len(diff.changed) == SIZE  # the first response: everything
    state.record_sent(1, list(diff.changed.values()), now=0.0, monotonic=0.0)
    state.rebase(first)
    lookups = count_calls(monkeypatch, Holdings, "get")
    diff = state.diff_snapshot(second)
    assert list(diff.changed) == ["c0007"] and diff.gone == [] and diff.absent == []
    assert lookups[0] <= 2  # not SIZE
    assert not state.in_sync(second) and state.in_sync(first)


def test_state_version_is_incremental_and_content_defined() -> None:
    encoder = Encoder()
    first = encoder.snapshot(big_view(ports()), 0.0)
    second = encoder.snapshot(big_view(ports({"c0007": 1})), 1.0, first)
    a, b = TypeState(ENDPOINT_TYPE), TypeState(ENDPOINT_TYPE)
    for state in (a, b):
        state.subscribe_sotw(list(ports()))
    a.record_sent(1, list(a.diff_snapshot(first).changed.values()), now=0.0, monotonic=0.0)
    a.rebase(first)
    a.record_sent(2, list(a.diff_snapshot(second).changed.values()), now=0.0, monotonic=0.0)
    b.record_sent(1, list(b.diff_snapshot(second).changed.values()), now=0.0, monotonic=0.0)
    assert a.sent_version == b.sent_version  # same content, reached differently
    assert a.sent_version != TypeState(ENDPOINT_TYPE).holdings.version


async def synced(client: AdsClient, eds: list[str]) -> None:
    """The Envoy startup sequence, every response ACKed."""
    for type_url, names_ in (
        (CLUSTER_TYPE, []),
        (ENDPOINT_TYPE, eds),
        (LISTENER_TYPE, []),
        (ROUTE_TYPE, ["out"]),
    ):
        if client.delta:
            client.delta_request(type_url, names_)
        else:
            client.request(type_url, names_)
        client.ack(await client.recv())


async def nothing_else(client: AdsClient) -> None:
    """Nothing else was sent: the next response is a probe's alone (the view is `probed`). ACKed, so the
    stream can settle again."""
    client.ack(await (delta_then_probe(client) if client.delta else sotw_then_probe(client)))


def settled(server: XdsServer, cache: SnapshotCache) -> bool:
    """Every stream is at rest: each type's latest response acknowledged, the client holding what the
    snapshot offers, and no push pending (a wake not yet taken by the sender). A probe would cost work of
    its own, so the work counters are read once this holds and the probes come after."""
    for stream in server.streams:
        snap = cache.snapshot(stream.key) if stream.key is not None else None
        if snap is None or stream._wake.is_set():
            return False
        if any(state.acked_seq != state.seq or not state.in_sync(snap) for state in stream.types.values()):
            return False
    return True


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_one_change_reaches_every_stream_with_o_changed_work(
    views: Views,
    connect: Connect,
    server: XdsServer,
    cache: SnapshotCache,
    monkeypatch: pytest.MonkeyPatch,
    delta: bool,
) -> None:
    base = probed(big_view(ports()))
    views.set(base)
    clients = [connect(delta=delta) for _ in range(3)]
    for client in clients:
        await synced(client, list(ports()))
        await nothing_else(client)
    await until(lambda: settled(server, cache), "every stream to take its ACKs")
    for stream in server.streams:
        assert stream.key is not None
        snap = cache.snapshot(stream.key)
        assert snap is not None
        for state in stream.types.values():
            # Per-stream state is a reference to the shared snapshot, not a copy per resource.
            lineage = snap.lineage_of(state.type_url)
            assert lineage is not None and state.holdings.generation == lineage.generation
            assert not state.holdings.has_overrides and state.in_sync(snap)
    pushes = count_calls(monkeypatch, Stream, "_push")
    lookups = count_calls(monkeypatch, Holdings, "get")
    serialised = cache.serialised
    # As the translator does: the same message objects for what did not change.
    endpoints = tuple(v.endpoints("c0042", 1) if e.cluster_name == "c0042" else e for e in base.endpoints)
    views.set(View(base.clusters, endpoints, base.listeners, base.routes))
    for client in clients:
        response = await client.recv()
        assert response.type_url == ENDPOINT_TYPE and len(response.resources) == 1
        client.ack(response)
    await until(lambda: settled(server, cache), "every stream to take the change and its ACK")
    work = (cache.serialised, pushes[0], lookups[0])
    for client in clients:
        await nothing_else(client)  # the one response per stream was all
    assert work[0] == serialised + 1  # the changed resource, once for all streams
    assert work[1] == len(clients)  # one push per stream; the ACKs caused none
    assert work[2] <= 4 * len(clients)  # O(changed) per stream, not O(resources)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_streams_that_connect_alike_get_the_same_first_responses_without_per_resource_work(
    views: Views,
    connect: Connect,
    server: XdsServer,
    cache: SnapshotCache,
    monkeypatch: pytest.MonkeyPatch,
    delta: bool,
) -> None:
    views.set(probed(big_view(ports())))
    puts = count_calls(monkeypatch, Holdings, "put")
    lookups = count_calls(monkeypatch, Holdings, "get")
    clients = [connect(delta=delta) for _ in range(3)]
    for client in clients:
        await synced(client, list(ports()))
    await until(lambda: settled(server, cache), "every stream to take its ACKs")
    work = (puts[0], lookups[0])
    first = [[r.SerializeToString() for r in client.received] for client in clients]
    for client in clients:
        await nothing_else(client)  # the four first responses were all
    await until(lambda: settled(server, cache), "every stream to take the probes' ACKs")
    assert len(first[0]) == 4 and first[1] == first[0] and first[2] == first[0]  # byte for byte
    eds = next(r for r in clients[0].received if r.type_url == ENDPOINT_TYPE)
    assert len(eds.resources) == SIZE
    # A connect is O(1) per stream: the view's shared offer, no record or comparison per resource.
    assert work[0] == 0 and work[1] <= 4 * len(clients)
    for stream in server.streams:
        assert stream.key is not None
        snap = cache.snapshot(stream.key)
        assert snap is not None and all(state.in_sync(snap) for state in stream.types.values())


def test_a_whole_offer_is_pending_until_acknowledged() -> None:
    snap = Encoder().snapshot(big_view(ports()), 0.0)
    state = TypeState(ENDPOINT_TYPE)
    state.subscribe_sotw([*ports(), "nowhere"])
    diff = state.diff_snapshot(snap)
    assert diff.offer is not None and len(diff.changed) == SIZE and diff.absent == ["nowhere"]
    version = state.record_sent(7, [], now=0.0, monotonic=0.0, offer=diff.offer)
    reference = TypeState(ENDPOINT_TYPE)
    reference.record_sent(1, list(diff.changed.values()), now=0.0, monotonic=0.0)
    assert version == reference.sent_version  # the same content, the same version
    assert state.held("c0001") is snap.of_type(ENDPOINT_TYPE)["c0001"] and state.held("nowhere") is None
    assert state.delivered_in("c0001") == 7  # CSDS: sent, not yet acknowledged
    state.record_ack("7", now=1.0, monotonic=1.0)
    assert state.delivered_in("c0001") == 0
    # "nowhere" does not exist: the next comparison is a full one, and finds it absent again.
    assert state.diff_snapshot(snap).absent == ["nowhere"]


async def test_an_ack_repeating_the_names_is_recognised_without_reading_them() -> None:
    state = TypeState(ENDPOINT_TYPE)
    request = DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["a", "b"], response_nonce="1")
    assert state.subscribe_sotw(request.resource_names, names_fingerprint(request))
    again = DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["a", "b"], response_nonce="2")
    assert not state.subscribe_sotw(again.resource_names, names_fingerprint(again))
    other = DiscoveryRequest(type_url=ENDPOINT_TYPE, resource_names=["a"], response_nonce="3")
    assert state.subscribe_sotw(other.resource_names, names_fingerprint(other))
    assert state.subscription.names == {"a"}


def test_subscriptions_with_the_same_names_share_one_set() -> None:
    a, b = TypeState(ENDPOINT_TYPE), TypeState(ENDPOINT_TYPE)
    a.subscribe_sotw(["x", "y"])
    b.subscribe_sotw(["y", "x"])
    assert a.subscription.names is b.subscription.names


def test_encoded_responses_are_what_protobuf_serialises() -> None:
    snap = Encoder().snapshot(v.view(), 0.0)
    resources = list(snap.of_type(CLUSTER_TYPE).values())
    sotw = sotw_response("v1", CLUSTER_TYPE, "7", [r.sotw_entry for r in resources])
    expected = DiscoveryResponse(
        version_info="v1", resources=[r.any for r in resources], type_url=CLUSTER_TYPE, nonce="7"
    )
    assert sotw.data == expected.SerializeToString(deterministic=True) and sotw.resources == 2
    entries = [r.delta_entry for r in resources]
    delta = delta_response("v2", CLUSTER_TYPE, "8", entries, removed=["gone", ""])
    parsed = DeltaDiscoveryResponse.FromString(delta.data)
    assert [(r.name, r.version) for r in parsed.resources] == [(r.name, r.version) for r in resources]
    assert list(parsed.removed_resources) == ["gone", ""] and parsed.nonce == "8"
    assert delta.data == parsed.SerializeToString(deterministic=True)
