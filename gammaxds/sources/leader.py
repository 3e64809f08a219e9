"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection package does it.

Every replica serves xDS from its own watch; only the leader writes route status, so replicas never fight
over it. A replica takes the Lease when it is free or expired (renewTime + leaseDurationSeconds < now),
renews it every `retry_period`, and stops leading once it has failed to renew for `renew_deadline` (shorter
than the lease, so it stops before anyone else may start). Every write carries the Lease's resourceVersion,
so two replicas can never both succeed in taking it. On shutdown the Lease is released (holder cleared,
duration 1 s) so another replica takes over at once instead of after the lease runs out. Becoming the leader,
losing the lease and seeing another replica lead are logged at info (`event: leader`).

Why not `kubernetes_asyncio.leaderelection` (read as of kubernetes_asyncio 36.1): it gets optimistic
concurrency right (`LeaseLock.update` replaces the Lease object read by `LeaseLock.get`, resourceVersion
included, so a concurrent writer gets 409), but it is not safe to build on:
- `LeaderElection.run` cancels the leader's task (`onstarted_leading`) only after `renew_loop` returns, not
  in a `finally`: when `run` is cancelled (shutdown) or `renew_loop` raises, the leader's work goes on
  running with nobody renewing the Lease, so two replicas write status at once once it expires. Nor does it
  await the cancelled task before `onstopped_leading` runs.
- `LeaseLock.get` catches only `ApiException`; a connection error (`aiohttp.ClientConnectionError`, a
  timeout) raises out of `try_acquire_or_renew` and ends `run`: a follower stops campaigning for good, and a
  leader stops renewing while, by the defect above, its work keeps running.
- `renew_loop` bounds no single call: a request that hangs is not cut off at the renew deadline, so a
  leader can keep leading past the moment another replica may take the Lease. It also measures the deadline
  from after its sleep, not from the last successful renewal, and with `time.time()`, the wall clock (as do
  `observed_time_milliseconds` and the expiry check): a clock step moves both.
- `try_acquire_or_renew` stamps `datetime.fromtimestamp(time.time())`, local time without a zone, and
  `LeaseLock.time_str_to_iso` appends `Z`: on a host whose TZ is not UTC, renewTime and acquireTime are off
  by the UTC offset, and any candidate that reads expiry from renewTime (this one does) misjudges it.
- No release on stop (client-go's ReleaseOnCancel): a restarted leader leaves the others waiting a full
  lease duration. `run` campaigns once and returns after a loss. leaseTransitions is never counted; the
  expiry check uses the candidate's own lease duration, not the Lease's leaseDurationSeconds; the jitter
  factor is validated but never applied, so candidates retry in lockstep.
- `Config` refuses periods under 1 s (so the tests' second-scale timings cannot be used), and a fractional
  `lease_duration` it accepts crashes `LeaseLock.update_lease` (`int("15.5")`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .kubeclient import call_json

log = logging.getLogger(__name__)

LEASE_VERBS = ("create", "get", "update")  # what RBAC must allow on leases in the election namespace
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity() -> str:
    """The pod name (the hostname in a pod) plus a random suffix, so a restarted pod is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    """The pod's own namespace in a cluster; `POD_NAMESPACE` or `gammaxds-system` elsewhere."""
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return os.environ.get("POD_NAMESPACE", "gammaxds-system")


def _micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class LeaderElector:
    """One candidate. `run(work)` campaigns, runs `work` while leading, and campaigns again after a loss.

    Defaults are client-go's: lease 15 s, renew deadline 10 s, retry period 2 s.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str = "gammaxds",
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_cancel: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name = namespace, name
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self.release_on_cancel = release_on_cancel
        self.clock = clock
        self.leading = asyncio.Event()
        self.leader: str | None = None  # the holder last observed (ourselves while leading)

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self, work: Callable[[], Awaitable[None]] | None = None) -> None:
        """Until cancelled: acquire the Lease, lead (running `work`) until it is lost, repeat."""
        try:
            while True:
                await self._acquire()
                log.info(
                    "%s: became the leader (lease %s/%s)",
                    self.identity,
                    self.namespace,
                    self.name,
                    extra=self._fields(leader=self.identity, leading=True),
                )
                self.leading.set()
                try:
                    await self._lead(work)
                finally:
                    self.leading.clear()
                log.warning(
                    "%s: lost leadership (lease %s/%s)%s",
                    self.identity,
                    self.namespace,
                    self.name,
                    f"; the leader is {self.leader}" if self.leader not in (None, self.identity) else "",
                    extra=self._fields(leader=self.leader or "", leading=False),
                )
        finally:
            if self.release_on_cancel and self.leader == self.identity:
                await self._release()

    def _fields(self, **more: Any) -> dict[str, Any]:
        """The structured fields of an election log event (see `gammaxds.logs`)."""
        lease = f"{self.namespace}/{self.name}"
        return {"event": "leader", "identity": self.identity, "lease": lease, **more}

    def _observe(self, holder: str) -> None:
        """Another candidate holds the Lease: say so when that is news."""
        if holder != self.leader:
            log.info(
                "%s: the leader is %s (lease %s/%s)",
                self.identity,
                holder,
                self.namespace,
                self.name,
                extra=self._fields(leader=holder, leading=False),
            )
        self.leader = holder

    async def _acquire(self) -> None:
        while not await self._try_acquire_or_renew():
            await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))

    async def _lead(self, work: Callable[[], Awaitable[None]] | None) -> None:
        task = asyncio.create_task(self._work(work)) if work else None
        try:
            await self._renew_until_lost()
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _work(self, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leader work failed; restarting it in %.1f s", self.retry_period)
                await asyncio.sleep(self.retry_period)

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.retry_period)
            left = self.renew_deadline - (loop.time() - renewed)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as the
            # renewal completes, and the elector would then keep running (and never release the Lease).
            try:
                async with asyncio.timeout(max(left, 0.001)):
                    ok = await self._try_acquire_or_renew()
            except TimeoutError:
                ok = False
            if ok:
                renewed = loop.time()
            elif self.leader not in (None, self.identity) or loop.time() - renewed >= self.renew_deadline:
                return  # someone else holds it, or we could not renew in time

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards. Errors count as a failed attempt."""
        now = self.clock()
        try:
            lease = await self._get()
            if lease is None:
                await self._create(now)
                self.leader = self.identity
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or None
            if holder not in (None, self.identity) and not self._expired(spec, now):
                self._observe(holder)
                return False
            new_spec = {
                **spec,
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "renewTime": _micro_time(now),
            }
            if holder != self.identity:
                new_spec["acquireTime"] = _micro_time(now)
                new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
            await self._replace(lease, new_spec)
            self.leader = self.identity
            return True
        except ApiException as err:
            level = logging.DEBUG if err.status == 409 else logging.WARNING
            log.log(
                level,
                "%s: lease %s/%s: HTTP %s %s",
                self.identity,
                self.namespace,
                self.name,
                err.status,
                err.reason,
            )
        except Exception as err:
            log.warning("%s: lease %s/%s: %s", self.identity, self.namespace, self.name, err)
        return False

    def _expired(self, spec: dict[str, Any], now: datetime) -> bool:
        renewed = _parse_time(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds")
        if renewed is None or not isinstance(duration, int):
            return True
        return renewed + timedelta(seconds=duration) < now

    async def _release(self) -> None:
        """Give the Lease up so the next candidate need not wait for it to expire."""
        try:
            lease = await asyncio.wait_for(self._get(), self.retry_period)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = _micro_time(self.clock())
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}
            await asyncio.wait_for(self._replace(lease, spec), self.retry_period)
            log.info("%s: released the lease %s/%s", self.identity, self.namespace, self.name)
        except Exception as err:
            log.warning(
                "%s: could not release the lease %s/%s: %s", self.identity, self.namespace, self.name, err
            )
        finally:
            self.leader = None

    async def _get(self) -> dict[str, Any] | None:
        try:
            return await call_json(
                self.leases.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    async def _create(self, now: datetime) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        # The stubs want a V1Lease; the client serialises a plain dict as it is.
        await call_json(
            self.leases.create_namespaced_lease(
                self.namespace,
                body,  # type: ignore[arg-type]
                _preload_content=False,
            )
        )

    async def _replace(self, lease: dict[str, Any], spec: dict[str, Any]) -> None:
        body = {**lease, "spec": spec}  # carries metadata.resourceVersion: a concurrent change gets 409
        # The stubs want a V1Lease; the client serialises a plain dict as it is.
        await call_json(
            self.leases.replace_namespaced_lease(
                self.name,
                self.namespace,
                body,  # type: ignore[arg-type]
                _preload_content=False,
            )
        )
