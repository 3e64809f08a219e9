"""State-of-the-world ADS against the real server, driven by a Python client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import xds_views as v
from ads_client import AdsClient, make_node
from xds_harness import Views
from xds_probe import PROBE, probed, sotw_then_probe
from xds_responses import kinds, messages, names

from gammaxds.testing.gamma import until
from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, View, ViewKey
from gammaxds.xds import SnapshotCache, XdsServer, start_xds_server

Connect = Callable[..., AdsClient]


async def subscribe_all(client: AdsClient, eds: list[str], rds: list[str]) -> None:
    """Walk the client through the Envoy startup sequence, ACKing every response; nothing else follows
    (proven with a probe: the view must be `probed`)."""
    for type_url, names_ in (
        (CLUSTER_TYPE, []),
        (ENDPOINT_TYPE, eds),
        (LISTENER_TYPE, []),
        (ROUTE_TYPE, rds),
    ):
        client.request(type_url, names_)
        client.ack(await client.recv())
    await sotw_then_probe(client)


def stream_of(server: XdsServer):  # type: ignore[no-untyped-def]
    (stream,) = server.streams
    return stream


async def test_initial_fetch_sends_every_type_requested(views: Views, connect: Connect) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    cds = await client.recv()
    assert cds.type_url == CLUSTER_TYPE and names(cds) == ["a", "b"]
    client.ack(cds)
    client.request(ENDPOINT_TYPE, ["a", "b"])
    eds = await client.recv()
    assert names(eds) == ["a", "b"]
    client.ack(eds)
    client.request(LISTENER_TYPE)
    lds = await client.recv()
    assert names(lds) == ["out"]
    client.ack(lds)
    client.request(ROUTE_TYPE, ["out"])
    rds = await client.recv()
    assert names(rds) == ["out"]
    client.ack(rds)
    await sotw_then_probe(client)  # nothing else is sent


async def test_ack_is_recorded_per_type(views: Views, connect: Connect, server: XdsServer) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    cds = await client.recv()
    state = stream_of(server).types[CLUSTER_TYPE]
    assert state.sent_version == cds.version_info and state.acked_version == ""
    client.ack(cds)
    await sotw_then_probe(client)  # answered after the ACK: the ACK has been handled
    assert state.acked_version == cds.version_info


async def test_nack_is_recorded_and_not_answered_with_the_same_version(
    views: Views, connect: Connect, server: XdsServer, cache: SnapshotCache
) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    cds = await client.recv()
    client.ack(cds, error="cluster a: bad connect_timeout")
    await sotw_then_probe(client)  # the NACK is not answered (the probe is on EDS: CDS is not acknowledged)
    state = stream_of(server).types[CLUSTER_TYPE]
    assert state.nack is not None and state.nack.message == "cluster a: bad connect_timeout"
    assert cache.metrics.nacks.value(type="Cluster") == 1
    # The same view recomputed (no real change) is not a reason to send again.
    views.set(probed(v.view()))
    await sotw_then_probe(client)
    assert kinds(client.received) == ["CDS", "EDS", "EDS"]  # the one CDS response, then the probes


async def test_next_real_change_after_a_nack_is_sent(
    views: Views, connect: Connect, server: XdsServer
) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv(), error="rejected")
    await sotw_then_probe(client)
    views.set(probed(v.view({"a": 8001, "b": 8002, "c": 8003})))
    cds = await client.recv()
    assert names(cds) == ["a", "b", "c"]
    client.ack(cds)
    # Answered after the ACK (and after the push's bounded wait for c's endpoint subscription).
    await sotw_then_probe(client)
    assert stream_of(server).types[CLUSTER_TYPE].nack is None


async def test_stale_nonce_is_ignored(views: Views, connect: Connect) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(ENDPOINT_TYPE, ["a", "b"])
    first = await client.recv()
    client.ack(first)
    views.set(probed(v.view({"a": 9001, "b": 8002})))
    second = await client.recv()
    assert names(second) == ["a"]
    # A request answering the first response (stale) that narrows the names is ignored...
    client.request(ENDPOINT_TYPE, ["a"], nonce=first.nonce, version=first.version_info)
    # (nothing answers it; had it dropped b, the probe request, naming b, would get b sent again)
    await sotw_then_probe(client, ["a", "b"])
    # ...so "b" is still subscribed and its change is sent.
    views.set(probed(v.view({"a": 9001, "b": 9002})))
    assert names(await client.recv()) == ["b"]


async def test_unknown_names_are_remembered_and_sent_when_they_appear(views: Views, connect: Connect) -> None:
    views.set(probed(v.view({"a": 8001})))
    client = connect()
    client.request(ENDPOINT_TYPE, ["a", "later"])
    eds = await client.recv()
    assert names(eds) == ["a"]
    client.ack(eds)
    await sotw_then_probe(client)
    views.set(probed(v.view({"a": 8001, "later": 8009})))
    assert names(await client.recv()) == ["later"]


async def test_unsubscribe_and_resubscribe(views: Views, connect: Connect) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(ENDPOINT_TYPE, ["a", "b"])
    client.ack(await client.recv())
    client.request(ENDPOINT_TYPE, ["a"])  # unsubscribe b
    await sotw_then_probe(client)
    views.set(probed(v.view({"a": 8001, "b": 9002})))
    await sotw_then_probe(client)
    client.request(ENDPOINT_TYPE, ["a", "b"])  # resubscribe: b is sent again
    eds = await client.recv()
    assert names(eds) == ["b"]
    assert messages(eds)[0].endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value == 9002


@pytest.mark.parametrize("wildcard", [[], ["*"]], ids=["legacy", "star"])
async def test_wildcard_gets_every_cluster(views: Views, connect: Connect, wildcard: list[str]) -> None:
    views.set(v.view({"a": 1, "b": 2, "c": 3}))
    client = connect()
    client.request(CLUSTER_TYPE, wildcard)
    assert names(await client.recv()) == ["a", "b", "c"]


async def test_explicit_names_after_legacy_wildcard_narrow_the_subscription(
    views: Views, connect: Connect
) -> None:
    views.set(probed(v.view({"a": 1, "b": 2})))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    client.request(CLUSTER_TYPE, ["a"])
    await sotw_then_probe(client)
    views.set(probed(v.view({"a": 1, "b": 2, "c": 3})))
    await sotw_then_probe(client)  # c is not wanted
    views.set(probed(View(clusters=(v.cluster("a", timeout_s=3), v.cluster("b"), v.cluster("c")))))
    assert names(await client.recv()) == ["a"]


async def test_removed_cluster_is_absent_from_the_next_full_state(views: Views, connect: Connect) -> None:
    views.set(v.view({"a": 1, "b": 2}))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    views.set(v.view({"a": 1}))
    assert names(await client.recv()) == ["a"]


async def test_changed_cluster_is_followed_by_its_endpoints_then_listeners_and_routes(
    views: Views, connect: Connect
) -> None:
    views.set(probed(v.view()))
    client = connect()
    await subscribe_all(client, ["a", "b"], ["out"])
    changed = v.view()
    changed = View(
        clusters=(v.cluster("a", timeout_s=5), v.cluster("b")),
        endpoints=changed.endpoints,  # same endpoints
        listeners=(v.listener("out", 15002),),
        routes=(v.routes("out", "b"),),
    )
    views.set(probed(changed))
    pushed = await client.recv_many(4)
    assert kinds(pushed) == ["CDS", "EDS", "LDS", "RDS"]
    assert names(pushed[1]) == ["a"]  # unchanged, but its cluster changed
    await sotw_then_probe(client)  # and nothing else


async def test_route_moves_before_the_old_cluster_is_removed(views: Views, connect: Connect) -> None:
    views.set(probed(v.view({"a": 1}, route_to="a")))
    client = connect()
    await subscribe_all(client, ["a"], ["out"])
    views.set(probed(v.view({"b": 2}, route_to="b")))
    pushed = await client.recv_many(3)  # includes the bounded wait for b's EDS subscription
    assert kinds(pushed) == ["CDS", "RDS", "CDS"]
    assert names(pushed[0]) == ["a", "b"]  # make: the old cluster stays while routes move
    assert names(pushed[2]) == ["b"]  # break: then it goes
    await sotw_then_probe(client)  # and nothing else


async def test_new_eds_cluster_waits_for_its_endpoint_subscription_before_routes(
    views: Views, connect: Connect, server: XdsServer
) -> None:
    server.ctx.new_cluster_wait = 30.0  # held back for far longer than the quiet window below
    views.set(probed(v.view({"a": 1}, route_to="a")))
    client = connect()
    await subscribe_all(client, ["a"], ["out"])
    views.set(probed(v.view({"a": 1, "b": 2}, route_to="b")))
    cds = await client.recv()
    assert names(cds) == ["a", "b"]
    client.ack(cds)
    # No probe can prove this: the held-back push is the one any probe's answer would wait behind.
    assert await client.recv_all(1.0) == []  # routes are held back...
    client.request(ENDPOINT_TYPE, ["a", PROBE, "b"])  # ...until the client asks for b's endpoints
    pushed = await client.recv_many(2)
    assert kinds(pushed) == ["EDS", "RDS"]
    assert names(pushed[0]) == ["b"]


async def test_stream_without_namespace_is_refused(views: Views, connect: Connect) -> None:
    views.set(v.view())
    client = connect(node=make_node(key=None))
    client.request(CLUSTER_TYPE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata.namespace" in (err.value.details() or "")


async def test_views_are_selected_by_node_metadata(views: Views, connect: Connect) -> None:
    proxy = ViewKey("shop", "proxy", "127.0.0.1:16001")
    views.set(v.view({"a": 1}))
    views.set(v.view({"shop-only": 1}), proxy)
    client = connect(node=make_node("shop-1", proxy))
    client.request(CLUSTER_TYPE)
    assert names(await client.recv()) == ["shop-only"]


async def test_state_of_a_closed_stream_is_freed(
    views: Views, connect: Connect, server: XdsServer, cache: SnapshotCache
) -> None:
    views.set(v.view())
    client = connect()
    client.request(CLUSTER_TYPE)
    await client.recv()
    assert len(server.streams) == 1 and cache.keys() == [ViewKey("default")]
    await client.close()
    await until(lambda: not server.streams, "the closed stream to be dropped")
    assert cache.keys() == [] and cache.snapshot(ViewKey("default")) is None


async def test_server_listens_on_a_unix_socket(views: Views, tmp_path: Path) -> None:
    cache = SnapshotCache()
    cache.update(lambda key: v.view())
    server = await start_xds_server(cache, f"unix:{tmp_path}/xds.sock")
    client = AdsClient(server.target)
    try:
        client.request(CLUSTER_TYPE)
        assert names(await client.recv()) == ["a", "b"]
    finally:
        await client.close()
        await server.stop(0)
