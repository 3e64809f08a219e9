"""Two replicas wired as `gammaxds serve --in-cluster` wires them: both watch, only the leader writes status."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fakekube import FakeKube

from gammaxds.model import World
from gammaxds.sources import KubernetesSource, LeaderElector, StatusUpdater, api_client
from gammaxds.testing.gamma import until
from gammaxds.translate import translate_status

from .objects import http_route, mesh
from .waiting import WatchedWriter, versions_in

ROUTES = {("HTTPRoute", "shop", "cart-split"), ("GRPCRoute", "shop", "cart-grpc")}


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name
        self.worlds: list[World] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, kubeconfig: Path) -> None:
        self.api = await api_client(str(kubeconfig))
        self.source = KubernetesSource(self.api)
        self.writer = WatchedWriter(self.api)
        self.updater = StatusUpdater(self.writer, translate_status, self.source.route_objects, interval=0.05)
        self.elector = LeaderElector(
            self.api,
            namespace="gammaxds-system",
            identity=self.name,
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )

        def publish(world: World) -> None:
            self.worlds.append(world)  # (the xDS snapshot would be set here)
            self.updater.update(world)

        self.tasks = [
            asyncio.create_task(self.source.run(publish)),
            asyncio.create_task(self.elector.run(self.updater.run)),
        ]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.api.close()


async def test_both_replicas_serve_the_world_and_only_the_leader_writes(
    kube: FakeKube, tmp_path: Path
) -> None:
    for obj in mesh():
        kube.apply(obj)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    replicas = [Replica("a"), Replica("b")]
    for r in replicas:
        await r.start(kubeconfig)
    try:
        await asyncio.wait_for(asyncio.gather(*(r.source.synced.wait() for r in replicas)), 5)
        await until(lambda: kube.status_writes == 2, "both routes' status")
        kube.apply(http_route("shop", "cart-split", "cart", "nowhere"))
        await until(lambda: kube.status_writes == 3, "the changed route's status")
        leader = next(r for r in replicas if r.elector.is_leader)
        other = next(r for r in replicas if r is not leader)
        # The leader has since passed over the routes as they are after its writes, writing nothing more.
        await leader.writer.pass_over(ROUTES, versions_in(kube))
        assert kube.status_writes == 3  # nobody writes twice, nobody fights
        assert sorted(r.writer.writes for r in replicas) == [0, 3]
        assert [r.elector.is_leader for r in replicas].count(True) == 1
        for r in replicas:
            assert r.worlds[-1].http_routes[("shop", "cart-split")].metadata.generation == 2
        # The leader goes away; the other takes over writing.
        await leader.stop()
        replicas.remove(leader)
        await asyncio.wait_for(other.elector.leading.wait(), 2)
        kube.apply(http_route("shop", "cart-split", "cart", "cart-v2"))
        await until(lambda: other.writer.writes == 1, "the new leader's write")
    finally:
        for r in replicas:
            await r.stop()
