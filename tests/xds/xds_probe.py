"""Proving that nothing else arrives, by the protocol rather than by a quiet window.

After the step under test the client subscribes to a probe resource, and the next response must be the
probe's alone. Requests on one stream are handled in order and a stream's pushes go out one after the other,
so anything the step wrongly caused is sent before the probe's response or in it.

The probe resources are endpoints and route configurations that nothing refers to: a client sees them only
when it subscribes to them by name, so adding them to a view changes nothing else a client is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import xds_views as v
from ads_client import AdsClient
from xds_responses import names

from gammaxds.translate.view import ENDPOINT_TYPE, View

PROBE = "probe"
# A SotW client cannot ask again for a name it holds without starting over, so each barrier on one SotW
# stream takes the next probe name.
PROBES = (PROBE, "probe-2", "probe-3", "probe-4")
# One message object per probe resource, shared by every view: an unchanged probe is never re-serialised.
_PROBE_ENDPOINTS = {name: v.endpoints(name, 8999 - i) for i, name in enumerate(PROBES)}
_PROBE_ROUTES = {name: v.routes(name, PROBE) for name in PROBES}


def with_probe(clusters: dict[str, int]) -> View:
    """A view whose clusters include the probe, so the probe's endpoints can be subscribed to."""
    return v.view({**clusters, PROBE: 8999})


def probed(view: View) -> View:
    """`view` plus the endpoints and a route configuration of every probe name."""
    return View(
        clusters=view.clusters,
        endpoints=tuple(sorted((*view.endpoints, *_PROBE_ENDPOINTS.values()), key=lambda e: e.cluster_name)),
        listeners=view.listeners,
        routes=tuple(sorted((*view.routes, *_PROBE_ROUTES.values()), key=lambda r: r.name)),
    )


async def delta_then_probe(client: AdsClient, type_url: str = ENDPOINT_TYPE) -> Any:
    """Subscribe to the probe; return the next response, which must be the probe's alone. (A delta client may
    subscribe to a name it holds: it is sent again, so one probe serves any number of barriers.)"""
    client.delta_request(type_url, [PROBE])
    response = await client.recv()
    assert response.type_url == type_url, f"something else was sent: {response}"
    assert (names(response), list(response.removed_resources)) == ([PROBE], []), "something else was sent"
    return response


async def sotw_then_probe(
    client: AdsClient, subscribed: list[str] | None = None, *, type_url: str = ENDPOINT_TYPE
) -> Any:
    """Add the next probe name to a SotW subscription of `type_url` (by default the names the client last
    asked for); the next response must carry that probe alone. The request acknowledges the latest response
    of `type_url`: after a NACK, probe on another type."""
    subscribed = client.names.get(type_url, []) if subscribed is None else subscribed
    probe = next(name for name in PROBES if name not in subscribed)
    client.request(type_url, [*subscribed, probe])
    response = await client.recv()
    assert response.type_url == type_url, f"something else was sent: {response}"
    assert names(response) == [probe], "something else was sent"
    return response


async def collect(
    client: AdsClient, expected: dict[str, tuple[set[str], set[str]]], deadline: float = 5.0
) -> dict[str, tuple[set[str], set[str]]]:
    """ACK every response and gather, per type, the names sent and reported removed, until they are
    `expected` (or the deadline passes: then what was gathered, for the assertion to show)."""
    got: dict[str, tuple[set[str], set[str]]] = {type_url: (set(), set()) for type_url in expected}
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while got != expected and (remaining := end - loop.time()) > 0:
        try:
            response = await client.recv(remaining)
        except TimeoutError:
            break
        sent, removed = got.setdefault(response.type_url, (set(), set()))
        sent.update(names(response))
        removed.update(response.removed_resources)
        client.ack(response)
    return got


async def recv_until(client: AdsClient, done: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
    """Responses until `done(the responses so far)` holds, or the deadline passes (then what came, for the
    assertions to show). Whether more follow is for a probe to tell."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out: list[Any] = []
    while not done(out) and (remaining := deadline - loop.time()) > 0:
        try:
            out.append(await client.recv(remaining))
        except TimeoutError:
            break
    return out
