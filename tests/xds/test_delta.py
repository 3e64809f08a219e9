"""Incremental (delta) ADS against the real server, driven by a Python client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xds_views as v
from ads_client import AdsClient
from xds_harness import Views
from xds_probe import delta_then_probe, probed, recv_until
from xds_responses import kinds, names

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, View
from gammaxds.xds import XdsServer

Connect = Callable[..., AdsClient]


async def subscribe_all(client: AdsClient, eds: list[str], rds: list[str]) -> dict[str, dict[str, str]]:
    """Subscribe to the four types like Envoy does, ACK everything; returns name → version per type. Nothing
    else follows (proven with a probe: the view must be `probed`)."""
    held: dict[str, dict[str, str]] = {}
    for type_url, names_ in (
        (CLUSTER_TYPE, []),
        (ENDPOINT_TYPE, eds),
        (LISTENER_TYPE, []),
        (ROUTE_TYPE, rds),
    ):
        client.delta_request(type_url, names_)
        response = await client.recv()
        client.ack(response)
        held[type_url] = {r.name: r.version for r in response.resources}
    await delta_then_probe(client)
    return held


async def test_initial_fetch(views: Views, connect: Connect) -> None:
    views.set(v.view())
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE)
    cds = await client.recv()
    assert names(cds) == ["a", "b"] and list(cds.removed_resources) == []
    assert all(r.version for r in cds.resources)
    client.ack(cds)
    client.delta_request(ENDPOINT_TYPE, ["a"])
    assert names(await client.recv()) == ["a"]


async def test_nack_is_recorded_and_the_rejected_version_never_resent(
    views: Views, connect: Connect, server: XdsServer
) -> None:
    views.set(probed(v.view()))
    client = connect(delta=True)
    await subscribe_all(client, ["a", "b"], ["out"])
    views.set(
        probed(View(clusters=(v.cluster("a", timeout_s=9), v.cluster("b")), endpoints=v.view().endpoints))
    )
    pushed = await client.recv_many(4)
    assert kinds(pushed) == ["CDS", "EDS", "LDS", "RDS"]  # changes, then the listener and routes removed
    client.ack(pushed[0], error="cluster a rejected")
    await delta_then_probe(client)  # nothing more of the push, and no answer to the NACK
    (stream,) = server.streams
    assert stream.types[CLUSTER_TYPE].nack.message == "cluster a rejected"
    views.set(
        probed(View(clusters=(v.cluster("a", timeout_s=9), v.cluster("b")), endpoints=v.view().endpoints))
    )
    await delta_then_probe(client)
    # The next real change is sent, and only it.
    views.set(
        probed(
            View(
                clusters=(v.cluster("a", timeout_s=9), v.cluster("b", timeout_s=2)),
                endpoints=v.view().endpoints,
            )
        )
    )
    cds = await client.recv()
    assert names(cds) == ["b"]


async def test_unknown_subscribed_name_is_reported_removed_then_sent_when_it_appears(
    views: Views, connect: Connect
) -> None:
    views.set(probed(v.view({"a": 1})))
    client = connect(delta=True)
    client.delta_request(ENDPOINT_TYPE, ["a", "later"])
    pushed = await client.recv_many(2)
    assert names(pushed[0]) == ["a"]
    assert [list(r.removed_resources) for r in pushed] == [[], ["later"]]
    await delta_then_probe(client)  # and nothing else
    views.set(probed(v.view({"a": 1, "later": 2})))
    eds = await client.recv()
    assert names(eds) == ["later"] and list(eds.removed_resources) == []


async def test_unsubscribe_stops_updates_and_resubscribe_sends_again(views: Views, connect: Connect) -> None:
    views.set(probed(v.view()))
    client = connect(delta=True)
    client.delta_request(ENDPOINT_TYPE, ["a", "b"])
    client.ack(await client.recv())
    client.delta_request(ENDPOINT_TYPE, unsubscribe=["b"])
    await delta_then_probe(client)  # no removal for what the client dropped itself
    views.set(probed(v.view({"a": 8001, "b": 9})))
    await delta_then_probe(client)
    client.delta_request(ENDPOINT_TYPE, ["b"])
    assert names(await client.recv()) == ["b"]


async def test_star_wildcard_and_its_removal(views: Views, connect: Connect) -> None:
    views.set(v.view({"a": 1, "b": 2}))
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE, ["*"])
    client.ack(await client.recv())
    client.delta_request(CLUSTER_TYPE, ["a"], ["*"])  # explicit a, no longer everything
    explicit = await client.recv()  # a subscribed name is answered, even one the client holds
    assert (names(explicit), list(explicit.removed_resources)) == (["a"], [])
    client.ack(explicit)
    views.set(View(clusters=(v.cluster("a", 3), v.cluster("b", 3), v.cluster("c"))))
    assert names(await client.recv()) == ["a"]


async def test_removed_resources_come_after_the_changes(views: Views, connect: Connect) -> None:
    views.set(probed(v.view({"a": 1}, route_to="a")))
    client = connect(delta=True)
    await subscribe_all(client, ["a"], ["out"])
    views.set(probed(v.view({"b": 2}, route_to="b")))
    cds = await client.recv()
    assert names(cds) == ["b"] and list(cds.removed_resources) == []
    client.ack(cds)
    client.delta_request(ENDPOINT_TYPE, ["b"])
    pushed = await client.recv_many(4)
    assert kinds(pushed) == ["EDS", "RDS", "CDS", "EDS"]
    assert names(pushed[0]) == ["b"] and names(pushed[1]) == ["out"]
    assert list(pushed[2].removed_resources) == ["a"] and list(pushed[3].removed_resources) == ["a"]
    await delta_then_probe(client)  # and nothing else


async def test_changed_cluster_is_followed_by_its_unchanged_endpoints(views: Views, connect: Connect) -> None:
    views.set(probed(v.view()))
    client = connect(delta=True)
    await subscribe_all(client, ["a", "b"], ["out"])
    base = v.view()
    views.set(
        probed(
            View(
                clusters=(v.cluster("a", timeout_s=5), v.cluster("b")),
                endpoints=base.endpoints,
                listeners=(v.listener("out", 15009),),
                routes=(v.routes("out", "b"),),
            )
        )
    )
    pushed = await client.recv_many(4)
    assert kinds(pushed) == ["CDS", "EDS", "LDS", "RDS"]
    assert [names(r) for r in pushed] == [["a"], ["a"], ["out"], ["out"]]
    await delta_then_probe(client)  # and nothing else


async def test_reconnect_with_initial_versions_gets_only_what_changed(views: Views, connect: Connect) -> None:
    views.set(probed(v.view({"a": 1, "b": 2, "c": 3})))
    first = connect(delta=True)
    held = await subscribe_all(first, ["a", "b", "c"], ["out"])
    await first.close()
    views.set(probed(v.view({"a": 1, "b": 20, "d": 4})))  # b's endpoints change, c goes, d comes
    again = connect(delta=True)
    subscriptions = {
        CLUSTER_TYPE: [],
        ENDPOINT_TYPE: ["a", "b", "c"],
        LISTENER_TYPE: [],
        ROUTE_TYPE: ["out"],
    }
    for type_url, names_ in subscriptions.items():
        again.delta_request(type_url, names_, initial=held[type_url])

    def sent_and_removed(pushed: list[Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        sent = {(kinds([r])[0], name) for r in pushed for name in names(r)}
        removed = {(kinds([r])[0], name) for r in pushed for name in r.removed_resources}
        return sent, removed

    expected = ({("CDS", "d"), ("EDS", "b")}, {("CDS", "c"), ("EDS", "c")})
    # Every first request is answered (with nothing, when nothing differs): wait for all four answers.
    pushed = await recv_until(
        again, lambda rs: {r.type_url for r in rs} == set(subscriptions) and sent_and_removed(rs) == expected
    )
    sent, removed = sent_and_removed(pushed)
    assert sent == {("CDS", "d"), ("EDS", "b")}
    assert removed == {("CDS", "c"), ("EDS", "c")}
    await delta_then_probe(again)  # and nothing else: what did not change is never sent


async def test_ack_with_an_unknown_nonce_is_ignored(
    views: Views, connect: Connect, server: XdsServer
) -> None:
    views.set(probed(v.view()))
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE)
    await client.recv()
    client.delta_request(CLUSTER_TYPE, nonce="999", error="not ours")
    await delta_then_probe(client)  # not answered, and handled before the probe
    (stream,) = server.streams
    assert stream.types[CLUSTER_TYPE].nack is None
