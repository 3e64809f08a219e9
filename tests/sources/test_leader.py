"""Leader election on a Lease held by the fake API server, with two candidates in this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.sources.leader import LeaderElector
from gammaxds.testing.gamma import until

LEASE = 2.0  # seconds: test-sized, in the client-go ratios
TIMING: dict[str, Any] = {"lease_duration": LEASE, "renew_deadline": 1.5, "retry_period": 0.2}
# A candidate tries again after a jittered retry period: at most this long.
RETRY = TIMING["retry_period"] * 1.2


class Leading(asyncio.Event):
    """The elector's `leading` flag, recording every change, with a way to wait for its loss."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[bool] = []
        self._lost = asyncio.Event()

    def set(self) -> None:
        if not self.is_set():
            self.changes.append(True)
            self._lost.clear()
        super().set()

    def clear(self) -> None:
        if self.is_set():
            self.changes.append(False)
            self._lost.set()
        super().clear()

    async def lost(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self._lost.wait(), timeout)


class Candidate:
    """An elector running in a task, with a record of its leader-only work: running now, and every start and
    stop (with the time it stopped)."""

    def __init__(self, api: client.ApiClient, identity: str, **kwargs: Any) -> None:
        self.elector = LeaderElector(api, namespace="gammaxds-system", identity=identity, **TIMING, **kwargs)
        self.leading = self.elector.leading = Leading()
        self.working = False
        self.work_changes: list[bool] = []
        self.stopped_at: datetime | None = None
        self.task: asyncio.Task[None] | None = None

    async def work(self) -> None:
        self.working = True
        self.work_changes.append(True)
        try:
            await asyncio.Event().wait()
        finally:
            self.working = False
            self.work_changes.append(False)
            self.stopped_at = datetime.now(UTC)

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.work))

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=5.0)
        if not done:  # the cancellation was lost: stop it anyway, then say so
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            raise AssertionError(f"{self.elector.identity}: the elector kept running after it was cancelled")
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
        errors = []
        for c in running:
            if c.task is not None and not c.task.done():
                try:
                    await c.stop()
                except AssertionError as err:
                    errors.append(err)
        if errors:
            raise errors[0]


async def wait_for_leader(group: list[Candidate], timeout: float = 5.0) -> Candidate:
    waits = {asyncio.ensure_future(c.leading.wait()): c for c in group}
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    if not done:
        raise AssertionError(f"no leader within {timeout} s")
    return waits[done.pop()]


def lease(kube: FakeKube) -> dict[str, Any]:
    obj = kube.get("Lease", "gammaxds-system", "gammaxds")
    assert obj is not None
    return obj


def stamp(lease: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(lease["spec"][field])


async def test_exactly_one_of_two_replicas_leads(kube: FakeKube, api: client.ApiClient) -> None:
    async with candidates(api, "a", "b") as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)

        def renewed_for() -> float:
            held = lease(kube)
            return (stamp(held, "renewTime") - stamp(held, "acquireTime")).total_seconds()

        # Three lease durations of renewals, as the Lease itself records them.
        await until(lambda: renewed_for() >= 3 * LEASE, "three lease durations", timeout=3 * LEASE + 5)
        # Every change of either flag was recorded: the leader never lost the lease, the follower never led.
        assert leader.leading.changes == [True] and follower.leading.changes == []
        assert leader.work_changes == [True] and follower.work_changes == []
        assert leader.elector.is_leader and leader.working
        held = lease(kube)
        assert held["spec"]["holderIdentity"] == leader.elector.identity
        assert held["spec"]["leaseDurationSeconds"] == 2
        assert held["spec"]["leaseTransitions"] == 0
        assert follower.elector.leader == leader.elector.identity


async def test_a_cancelled_leader_releases_and_the_other_takes_over_at_once(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a", "b") as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)
        await leader.stop()
        assert not leader.working
        assert lease(kube)["spec"]["holderIdentity"] == ""
        started = asyncio.get_running_loop().time()
        await wait_for_leader([follower], timeout=LEASE)
        # The behaviour is this time: the follower's next try (a retry period, at most RETRY = 0.24 s here),
        # not the lease running out (2 s); 1 s is the former with headroom, well short of the latter.
        assert asyncio.get_running_loop().time() - started < 1.0
        assert follower.working
        assert lease(kube)["spec"]["leaseTransitions"] == 0  # released leases are not taken from anyone


async def test_a_killed_leader_is_replaced_within_the_lease_duration(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a", "b", release_on_cancel=False) as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)
        await leader.stop()  # dies without releasing: the lease must run out
        dead = lease(kube)
        assert dead["spec"]["holderIdentity"] == leader.elector.identity
        await wait_for_leader([follower], timeout=LEASE + 5)
        taken = lease(kube)
        assert taken["spec"]["holderIdentity"] == follower.elector.identity
        assert taken["spec"]["leaseTransitions"] == 1
        # The behaviour is this time, read from the Lease: taken over once the dead leader's last renewal
        # is a lease duration old (never before), and by the follower's next try after that (RETRY), with
        # 0.5 s of headroom.
        waited = (stamp(taken, "acquireTime") - stamp(dead, "renewTime")).total_seconds()
        assert LEASE < waited <= LEASE + RETRY + 0.5


async def test_a_leader_that_cannot_renew_steps_down_by_the_renew_deadline(
    kube: FakeKube, api: client.ApiClient
) -> None:
    async with candidates(api, "a") as group:
        [leader] = group
        await wait_for_leader(group)
        await kube.go_down()
        renewed = stamp(lease(kube), "renewTime")  # the last renewal: the server is down from here on
        await leader.leading.lost()
        assert leader.stopped_at is not None and not leader.working
        # The behaviour is this time, counted from the last renewal: it steps down once renewing has failed
        # for the renew deadline (noticed after a try: one retry period more, plus 0.2 s of headroom), and
        # in any case before the lease runs out and anyone else could take it.
        elapsed = (leader.stopped_at - renewed).total_seconds()
        assert elapsed < TIMING["renew_deadline"] + TIMING["retry_period"] + 0.2
        assert elapsed < LEASE
        await kube.come_up()
        await wait_for_leader(group)  # and campaigns again


async def test_a_lease_changed_under_us_is_not_overwritten(kube: FakeKube, api: client.ApiClient) -> None:
    async with candidates(api, "a") as group:
        [leader] = group
        await wait_for_leader(group)
        taken = lease(kube)
        # Another candidate took it over (as after a partition): a fresh renewTime, held for a long time.
        taken["spec"].update(holderIdentity="intruder", leaseDurationSeconds=3600)
        kube.apply(taken)
        await leader.leading.lost()
        assert leader.elector.leader == "intruder" and not leader.working
        assert lease(kube)["spec"]["holderIdentity"] == "intruder"


async def test_leadership_changes_are_logged(
    kube: FakeKube, api: client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gammaxds.sources.leader")

    def said(identity: str) -> list[tuple[int, str, str, bool]]:
        return [
            (r.levelno, r.getMessage(), r.leader, r.leading)  # type: ignore[attr-defined]
            for r in caplog.records
            if getattr(r, "event", None) == "leader" and r.identity == identity  # type: ignore[attr-defined]
        ]

    async with candidates(api, "a", "b") as group:
        leader = await wait_for_leader(group)
        follower = next(c for c in group if c is not leader)
        me, other = leader.elector.identity, follower.elector.identity
        await until(lambda: bool(said(other)), "the follower's report of the leader")
        assert said(me) == [
            (logging.INFO, f"{me}: became the leader (lease gammaxds-system/gammaxds)", me, True)
        ]
        assert said(other) == [
            (logging.INFO, f"{other}: the leader is {me} (lease gammaxds-system/gammaxds)", me, False)
        ]
        taken = lease(kube)
        taken["spec"].update(holderIdentity="intruder", leaseDurationSeconds=3600)
        kube.apply(taken)
        await leader.leading.lost()
        lost = said(me)[-1]
        assert lost[0] == logging.WARNING and lost[2:] == ("intruder", False)
        assert lost[1] == f"{me}: lost leadership (lease gammaxds-system/gammaxds); the leader is intruder"
