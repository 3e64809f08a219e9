"""A real Envoy in proxy mode, configured by the gammaxds ADS server from hand-built views."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientStatusRequest, ConfigStatus
from proxy_harness import ANY_PORT, ControlPlane, Load, Sidecar, aget, wait_for_service
from proxy_views import proxy_view

from gammaxds.admin import start_admin_server
from gammaxds.translate.view import CLUSTER_TYPE, PUSH_ORDER, ROUTE_TYPE

EchoFactory = Callable[..., int]
SidecarFactory = Callable[..., Sidecar]

pytestmark = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


async def acked(control_plane: ControlPlane, type_url: str, timeout: float = 5.0) -> None:
    """Wait until every stream has acknowledged its latest response of `type_url`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        states = [s.types.get(type_url) for s in control_plane.server.streams]
        if states and all(st is not None and st.nonce and st.acked_seq == st.seq for st in states):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{type_url} not acknowledged within {timeout}s")


async def until_clusters(sidecar: Sidecar, expected: set[str], timeout: float = 10.0) -> None:
    """Wait until Envoy's active dynamic clusters are exactly `expected`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (active := await asyncio.to_thread(sidecar.envoy.active_clusters)) != expected:
        assert loop.time() < deadline, f"active clusters {sorted(active)}, expected {sorted(expected)}"
        await asyncio.sleep(0.05)


async def test_envoy_receives_config_and_routes(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, {"alpha": echo("alpha")}, "alpha"))
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    (stream,) = control_plane.server.streams
    assert stream.protocol == ("delta" if delta else "sotw") and stream.key == sidecar.key


async def test_a_change_moves_traffic(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    """How fast is a benchmark's figure (`make bench`); here, that the change arrives and is routed by."""
    sidecar = sidecar_factory(delta=delta)
    backends = {"alpha": echo("alpha"), "beta": echo("beta")}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "alpha"))
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "beta"))
    took = await wait_for_service(port, "beta", timeout=10)
    print(f"route change routed by Envoy after {took:.3f} s")
    status, body = await aget(port)
    assert (status, body.get("service")) == (200, "beta")


async def test_make_before_break_loses_no_request(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    ports = {"alpha": echo("alpha"), "beta": echo("beta")}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, {"alpha": ports["alpha"]}, "alpha"))
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    load = Load(port)
    load.start()
    try:
        for i in range(20):
            # Each move adds the new cluster and removes the old one in the same update.
            target = "beta" if i % 2 == 0 else "alpha"
            control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, {target: ports[target]}, target))
            await wait_for_service(port, target, timeout=5)
            await acked(control_plane, ROUTE_TYPE)
    finally:
        load.stop()
    print(f"make-before-break: {load.total} requests, {load.failures} failed, by service {load.services}")
    assert load.total > 500
    assert load.failures == 0, (load.statuses, load.errors[:5])
    # The last move went to alpha: beta's cluster is removed once routes no longer use it.
    await until_clusters(sidecar, {"alpha"})


async def test_rejected_resource_is_recorded_not_resent_and_last_good_config_keeps_serving(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    backends = {"alpha": echo("alpha"), "beta": echo("beta")}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "alpha"))
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    (stream,) = control_plane.server.streams
    routes = stream.types[ROUTE_TYPE]

    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "beta", bad_regex=True))
    for _ in range(200):
        if routes.nack is not None:
            break
        await asyncio.sleep(0.02)
    assert routes.nack is not None and "unclosed" in routes.nack.message, routes.nack
    rejected = routes.nonce
    # Barrier: an unrelated change (a new cluster) must be sent and acknowledged. Had the rejected routes
    # been sent again (the NACK answered with the same version), that response would have gone first.
    probe = proxy_view(ANY_PORT, {**backends, "probe": backends["beta"]}, "beta", bad_regex=True)
    control_plane.set_view(sidecar.key, probe)
    await until_clusters(sidecar, {"alpha", "beta", "probe"})
    await acked(control_plane, CLUSTER_TYPE)
    assert routes.nonce == rejected, "the rejected routes were sent again"
    assert (await aget(port))[1].get("service") == "alpha"  # the last good routes keep serving

    async with grpc.aio.insecure_channel(control_plane.server.target) as channel:
        csds = await csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel).FetchClientStatus(
            ClientStatusRequest()
        )
    (config,) = [c for c in csds.config[0].generic_xds_configs if c.type_url == ROUTE_TYPE]
    assert config.config_status == ConfigStatus.ERROR and "unclosed" in config.error_state.details

    admin = await start_admin_server("127.0.0.1:0", control_plane.cache, xds=control_plane.server)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", admin.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        metrics = (await reader.read()).decode()
        writer.close()
    finally:
        await admin.stop()
    assert 'gammaxds_nacks_total{type="RouteConfiguration"} 1' in metrics

    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "beta"))
    await wait_for_service(port, "beta", timeout=5)
    await acked(control_plane, ROUTE_TYPE)
    assert routes.nack is None


async def test_envoy_keeps_routing_while_the_control_plane_restarts(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    control_plane.set_view(
        sidecar.key, proxy_view(ANY_PORT, {"alpha": echo("alpha"), "beta": echo("beta")}, "alpha")
    )
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    await acked(control_plane, ROUTE_TYPE)

    load = Load(port)
    load.start()
    try:
        await control_plane.server.stop(0)
        await asyncio.sleep(1.0)
        assert (await aget(port))[1].get("service") == "alpha"
        await control_plane.restart()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not control_plane.server.streams and loop.time() < deadline:
            await asyncio.sleep(0.05)
        (stream,) = control_plane.server.streams
        for type_url in PUSH_ORDER:  # the reconnected Envoy is in sync again
            await acked(control_plane, type_url, timeout=10)
    finally:
        load.stop()
    assert load.failures == 0, (load.statuses, load.errors[:5])
    if delta:
        # The reconnecting Envoy said what it holds; nothing it already had is sent again.
        assert stream.resources_sent == 0, stream.resources_sent
    assert (await aget(port))[1].get("service") == "alpha"


async def test_removed_cluster_disappears_from_envoy(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    backends = {"alpha": echo("alpha"), "beta": echo("beta")}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "alpha"))
    await sidecar.start()
    assert await asyncio.to_thread(sidecar.envoy.active_clusters) == {"alpha", "beta"}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, {"alpha": backends["alpha"]}, "alpha"))
    await until_clusters(sidecar, {"alpha"})


async def test_changed_cluster_is_rewarmed_with_its_endpoints_without_failures(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    sidecar = sidecar_factory(delta=delta)
    backends = {"alpha": echo("alpha")}
    control_plane.set_view(sidecar.key, proxy_view(ANY_PORT, backends, "alpha"))
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    load = Load(port)
    load.start()
    try:
        for timeout_s in range(2, 7):
            view = proxy_view(ANY_PORT, backends, "alpha")
            view.clusters[0].connect_timeout.seconds = timeout_s  # the cluster changes, its endpoints do not
            control_plane.set_view(sidecar.key, view)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while True:  # until the new cluster is active, which needs its endpoints (it warms on them)
                dump = await asyncio.to_thread(sidecar.envoy.config_dump)
                clusters = next(c for c in dump["configs"] if "dynamic_active_clusters" in c)
                (active,) = clusters["dynamic_active_clusters"]
                if active["cluster"]["connect_timeout"] == f"{timeout_s}s":
                    break
                assert loop.time() < deadline, clusters
                await asyncio.sleep(0.02)
            assert not clusters.get("dynamic_warming_clusters")
    finally:
        load.stop()
    assert load.total > 50 and load.failures == 0, (load.statuses, load.errors[:5])


async def test_cluster_removed_and_re_added_under_the_same_name_routes_again(
    control_plane: ControlPlane, sidecar_factory: SidecarFactory, echo: EchoFactory, delta: bool
) -> None:
    """Envoy forgets a removed cluster's endpoints; when the cluster comes back it asks for them again,
    sometimes before the server has seen it let them go. It must get them (no cluster left warming), at
    every gap between the removal and the return."""
    sidecar = sidecar_factory(delta=delta)
    backends = {"alpha": echo("alpha"), "beta": echo("beta")}
    with_alpha = proxy_view(ANY_PORT, backends, "alpha")
    without_alpha = proxy_view(ANY_PORT, {"beta": backends["beta"]}, "beta")
    control_plane.set_view(sidecar.key, with_alpha)
    port = await sidecar.start()
    await wait_for_service(port, "alpha")
    for gap in (None, 0.0, 0.05, 0.15, 0.3, None, 0.0, 0.1):
        control_plane.set_view(sidecar.key, without_alpha)
        if gap is None:  # until Envoy has applied the removal
            await wait_for_service(port, "beta", timeout=5)
        else:
            await asyncio.sleep(gap)
        control_plane.set_view(sidecar.key, with_alpha)
        # Routed again within 2 s of its return: the cluster never waits for endpoints it will not get.
        await wait_for_service(port, "alpha", timeout=2.0)
        dump = await asyncio.to_thread(sidecar.envoy.config_dump)
        clusters = next(c for c in dump["configs"] if "dynamic_active_clusters" in c)
        assert not clusters.get("dynamic_warming_clusters"), (gap, clusters)
