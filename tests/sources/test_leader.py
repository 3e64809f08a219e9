"""Leader election on a Lease held by the fake API server, with two candidates in this process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.sources.leader import LeaderElector

LEASE = 2.0  # seconds: test-sized, in the client-go ratios
TIMING: dict[str, Any] = {"lease_duration": LEASE, "renew_deadline": 1.5, "retry_period": 0.2}


class Candidate:
    """An elector running in a task, with a record of whether its leader-only work is running."""

    def __init__(self, api: client.ApiClient, identity: str, **kwargs: Any) -> None:
        self.elector = LeaderElector(api, namespace="gammaxds-system", identity=identity, **TIMING, **kwargs)
        self.working = False
        self.task: asyncio.Task[None] | None = None

    async def work(self) -> None:
        self.working = True
        try:
            await asyncio.Event().wait()
        finally:
            self.working = False

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.work))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def candidates(api: client.ApiClient, *names: str, **kwargs: Any) -> AsyncIterator[list[Candidate]]:
    running = [Candidate(api, n, **kwargs) for n in names]
    for c in running:
        c.start()
    try:
        yield running
    finally:
        for c in running:
            if c.task is not None and not c.task.done():
                await c.stop()


async def wait_for_leader(group: list[Candidate], timeout: float = 5.0) -> Candidate:
    async def wait() -> Candidate:
        while True:
            leaders = [c for c in group if c.elector.is_leader]
            if leaders:
                return leaders[0]
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(wait(), timeout)


async def test_exactly_one_of_two_replicas_leads(kube: FakeKube, api: client.ApiClient) -> None:
    async with candidates(api, "a", "b") as group:
        leader = await wait_for_leader(group)
        for _ in range(int(3 * LEASE / 0.05)):  # three lease durations of renewals
            assert [c.elector.is_leader for c in group].count(True) == 1
            assert [c.working for c in group].count(True) <= 1
            await asyncio.sleep(0.05)
        assert leader.elector.is_leader and leader.working
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == leader.elector.identity
        assert lease["spec"]["leaseDurationSeconds"] == 2
        assert lease["spec"]["leaseTransitions"] == 0
        follower = next(c for c in group if c is not leader)
        assert follower.elector.leader == leader.elector.identity


async def test_a_cancelled_leader_releases_and_the_other_takes_over_at_once(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a", "b") as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)
        await leader.stop()
        assert not leader.working
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None and lease["spec"]["holderIdentity"] == ""
        started = asyncio.get_running_loop().time()
        await wait_for_leader([follower], timeout=LEASE)
        assert asyncio.get_running_loop().time() - started < 1.0  # a retry period or so, not a lease
        assert follower.working
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert (
            lease is not None and lease["spec"]["leaseTransitions"] == 0
        )  # released leases are not taken from anyone


async def test_a_killed_leader_is_replaced_within_the_lease_duration(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a", "b", release_on_cancel=False) as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)
        await leader.stop()  # dies without releasing: the lease must run out
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None and lease["spec"]["holderIdentity"] == leader.elector.identity
        started = asyncio.get_running_loop().time()
        await wait_for_leader([follower], timeout=LEASE + 0.5)
        assert asyncio.get_running_loop().time() - started <= LEASE + 0.5
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == follower.elector.identity
        assert lease["spec"]["leaseTransitions"] == 1


async def test_a_leader_that_cannot_renew_steps_down_by_the_renew_deadline(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a") as group:
        [leader] = group
        await wait_for_leader(group)
        await kube.go_down()
        started = asyncio.get_running_loop().time()
        while leader.elector.is_leader:
            await asyncio.sleep(0.02)
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < TIMING["renew_deadline"] + TIMING["retry_period"] + 0.2
        assert elapsed < LEASE  # before anyone else could take the lease
        assert not leader.working
        await kube.come_up()
        await wait_for_leader(group)  # and campaigns again


async def test_a_lease_changed_under_us_is_not_overwritten(kube: FakeKube, api: client.ApiClient) -> None:
    async with candidates(api, "a") as group:
        [leader] = group
        await wait_for_leader(group)
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None
        # Another candidate took it over (as after a partition): a fresh renewTime, held for a long time.
        lease["spec"].update(holderIdentity="intruder", leaseDurationSeconds=3600)
        kube.apply(lease)
        while leader.elector.is_leader:
            await asyncio.sleep(0.02)
        assert leader.elector.leader == "intruder" and not leader.working
        lease = kube.get("Lease", "gammaxds-system", "gammaxds")
        assert lease is not None and lease["spec"]["holderIdentity"] == "intruder"
