"""The subscription cases of the xDS protocol that a server most easily gets wrong, sent as a client would.

Each "nothing else arrives" is proven by the protocol, not by a quiet window: after the step under test the
client subscribes to a probe resource, and the next response must be the probe's alone (see `xds_probe`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import xds_views as v
from ads_client import AdsClient
from xds_harness import Views
from xds_probe import PROBE, collect, delta_then_probe, sotw_then_probe, with_probe
from xds_responses import messages, names

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, View

Connect = Callable[..., AdsClient]


def port_of(response: Any, name: str) -> int:
    for msg in messages(response):
        if msg.cluster_name == name:
            return int(msg.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value)
    raise AssertionError(f"{name} not in the response")


# -- 1. re-subscribing a name the client already holds ---------------------------------------------------


async def test_delta_resubscribing_a_held_name_sends_it_again(views: Views, connect: Connect) -> None:
    views.set(with_probe({"a": 8001}))
    client = connect(delta=True)
    client.delta_request(ENDPOINT_TYPE, ["a"])
    first = await client.recv()
    client.ack(first)
    # The client may have forgotten "a": subscribing again is how it asks for it.
    client.delta_request(ENDPOINT_TYPE, ["a"])
    again = await client.recv()
    assert names(again) == ["a"] and port_of(again, "a") == 8001
    assert again.resources[0].version == first.resources[0].version
    client.ack(again)
    # An ACK of that answer asks for nothing more.
    await delta_then_probe(client)


async def test_delta_resubscribing_an_absent_name_reports_it_removed_again(
    views: Views, connect: Connect
) -> None:
    views.set(with_probe({"a": 8001}))
    client = connect(delta=True)
    client.delta_request(ENDPOINT_TYPE, ["ghost"])
    first = await client.recv()
    assert list(first.removed_resources) == ["ghost"]
    client.ack(first)
    client.delta_request(ENDPOINT_TYPE, ["ghost"])
    again = await client.recv()
    assert (names(again), list(again.removed_resources)) == ([], ["ghost"])
    client.ack(again)
    await delta_then_probe(client)


async def test_sotw_re_requested_names_are_re_sent_once(views: Views, connect: Connect) -> None:
    """SotW keeps its behaviour: a request without a nonce (a client starting over) is answered with
    what it names, and the ACK of that answer causes no further response."""
    views.set(with_probe({"a": 8001}))
    client = connect()
    client.request(ENDPOINT_TYPE, ["a"])
    client.ack(await client.recv())
    client.request(ENDPOINT_TYPE, ["a"], nonce="", version="")
    again = await client.recv()
    assert names(again) == ["a"]
    client.ack(again)
    await sotw_then_probe(client, ["a"])


# -- 2. an explicit name beside the wildcard -------------------------------------------------------------


async def test_delta_explicit_name_beside_the_wildcard_is_sent(views: Views, connect: Connect) -> None:
    views.set(with_probe({"a": 8001, "b": 8002}))
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE, ["*"])
    cds = await client.recv()
    assert names(cds) == ["a", "b", PROBE]
    client.ack(cds)
    client.delta_request(CLUSTER_TYPE, ["a"])
    explicit = await client.recv()
    assert (names(explicit), list(explicit.removed_resources)) == (["a"], [])
    client.ack(explicit)
    await delta_then_probe(client)


async def test_delta_unsubscribing_a_name_still_covered_by_the_wildcard_sends_it(
    views: Views, connect: Connect
) -> None:
    views.set(with_probe({"a": 8001, "b": 8002}))
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE, ["*", "a"])
    client.ack(await client.recv())
    client.delta_request(CLUSTER_TYPE, unsubscribe=["a"])
    answer = await client.recv()
    # "*" still covers a: the client must keep it, so it is sent in resources, never reported removed.
    assert (names(answer), list(answer.removed_resources)) == (["a"], [])
    client.ack(answer)
    await delta_then_probe(client)
    # Still covered by "*": a change to a is sent.
    views.set(View(clusters=(v.cluster("a", 7), v.cluster("b"), v.cluster(PROBE))))
    assert names(await client.recv()) == ["a"]


async def test_delta_unsubscribing_a_name_the_wildcard_does_not_cover_reports_it_removed(
    views: Views, connect: Connect
) -> None:
    views.set(with_probe({"a": 8001}))
    client = connect(delta=True)
    client.delta_request(CLUSTER_TYPE, ["*", "ghost"])  # ghost does not exist: "*" does not cover it
    pushed = [await client.recv(), await client.recv()]
    assert [list(r.removed_resources) for r in pushed] == [[], ["ghost"]]
    for response in pushed:
        client.ack(response)
    client.delta_request(CLUSTER_TYPE, unsubscribe=["ghost"])
    answer = await client.recv()
    assert (names(answer), list(answer.removed_resources)) == ([], ["ghost"])
    client.ack(answer)
    await delta_then_probe(client)


async def test_delta_unsubscribing_a_name_without_the_wildcard_needs_no_answer(
    views: Views, connect: Connect
) -> None:
    views.set(with_probe({"a": 8001, "b": 8002}))
    client = connect(delta=True)
    client.delta_request(ENDPOINT_TYPE, ["a", "b"])
    client.ack(await client.recv())
    client.delta_request(ENDPOINT_TYPE, unsubscribe=["b"])  # the client drops b itself
    await delta_then_probe(client)


# -- 3. initial_resource_versions, per resource ----------------------------------------------------------


@pytest.mark.parametrize("wildcard", [[], ["*"]], ids=["legacy-wildcard", "star"])
async def test_delta_reconnect_sends_only_stale_resources_and_reports_removed_ones(
    views: Views, connect: Connect, wildcard: list[str]
) -> None:
    """Reconnect holding one stale version, one removed Service and one unchanged, in every type."""
    views.set(v.view({"same": 1, "stale": 2, "gone": 3}, listeners=("out", "old")))
    first = connect(delta=True)
    held: dict[str, dict[str, str]] = {}
    subscriptions = {
        CLUSTER_TYPE: wildcard,
        ENDPOINT_TYPE: ["same", "stale", "gone"],
        LISTENER_TYPE: wildcard,
        ROUTE_TYPE: ["out", "old"],
    }
    for type_url, subscribe in subscriptions.items():
        first.delta_request(type_url, subscribe)
        response = await first.recv()
        first.ack(response)
        held[type_url] = {r.name: r.version for r in response.resources}
    assert {len(h) for h in held.values()} == {3, 2}
    await first.close()

    # While the client is away: "stale" changes (cluster, endpoints), "gone" and the "old" listener go.
    base = v.view({"same": 1, "stale": 20}, route_to="stale")
    views.set(
        View(
            clusters=(v.cluster("same"), v.cluster("stale", timeout_s=4)),
            endpoints=base.endpoints,
            listeners=base.listeners,
            routes=base.routes,
        )
    )
    again = connect(delta=True)
    for type_url, subscribe in subscriptions.items():
        again.delta_request(type_url, subscribe, initial=held[type_url])
    # Each type's answer: only what differs, and what the server no longer has reported removed.
    expected = {
        CLUSTER_TYPE: ({"stale"}, {"gone"}),
        ENDPOINT_TYPE: ({"stale"}, {"gone"}),
        LISTENER_TYPE: (set(), {"old"}),
        ROUTE_TYPE: ({"out"}, {"old"}),
    }
    assert await collect(again, expected) == expected
    # Nothing else follows: the unchanged resources were never sent.
    views.set(
        View(
            clusters=(v.cluster("same"), v.cluster("stale", timeout_s=4), v.cluster(PROBE)),
            endpoints=(*base.endpoints, v.endpoints(PROBE, 8999)),
            listeners=base.listeners,
            routes=base.routes,
        )
    )
    cds = await again.recv()
    assert names(cds) == [PROBE]
    again.ack(cds)
    await delta_then_probe(again)
