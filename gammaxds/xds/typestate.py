"""Per stream and type: what the client holds (as far as our responses go), nonces, ACKs and NACKs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gammaxds.xds.resources import Resource, state_version
from gammaxds.xds.subscription import Subscription

OUTSTANDING_LIMIT = 64


@dataclass(slots=True)
class Held:
    """A resource the client holds: from our response `seq`, or (seq 0, no resource) announced by a
    reconnecting delta client in `initial_resource_versions`."""

    version: str
    resource: Resource | None
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    seq: int
    version: str
    message: str
    at: float


@dataclass(slots=True)
class Diff:
    """The wanted resources against what the client holds."""

    target: dict[str, Resource]  # wanted and available, by name
    changed: dict[str, Resource]  # in target, not held at this version
    gone: list[str]  # held but no longer available
    absent: list[str]  # asked for by name, never available, not yet reported absent (delta)


class TypeState:
    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.subscription = Subscription(type_url)
        self.held: dict[str, Held] = {}
        self.reported_absent: set[str] = set()
        # The first request of a type is always answered, even with nothing: the client's init waits on it.
        self.reply_due = True
        self.nonce = ""
        self.seq = 0
        self.sent_version = ""
        self.acked_version = ""
        self.acked_seq = 0
        self.nack: Nack | None = None
        self.last_updated = 0.0
        self._outstanding: dict[str, tuple[int, str, float]] = {}

    def diff(self, available: Mapping[str, Resource]) -> Diff:
        names = self.subscription.interest(available)
        target = {name: available[name] for name in sorted(names) if name in available}
        changed = {
            name: res
            for name, res in target.items()
            if (held := self.held.get(name)) is None or held.version != res.version
        }
        gone = [name for name in self.held if name not in target]
        absent = [
            name
            for name in sorted(self.subscription.names)
            if name not in available and name not in self.held and name not in self.reported_absent
        ]
        return Diff(target, changed, gone, absent)

    def forget(self, names: Iterable[str]) -> None:
        """The client dropped these (unsubscribed): it no longer holds them, nor waits for their absence."""
        for name in names:
            self.held.pop(name, None)
            self.reported_absent.discard(name)

    def forget_unwanted(self) -> None:
        self.forget([name for name in self.held if not self.subscription.wants(name)])
        self.reported_absent &= self.subscription.names

    def record_sent(
        self,
        seq: int,
        delivered: Iterable[Resource],
        removed: Iterable[str] = (),
        absent: Iterable[str] = (),
        *,
        now: float,
        monotonic: float,
    ) -> str:
        """Update what the client holds after response `seq`; returns the version of that state."""
        for res in delivered:
            self.held[res.name] = Held(res.version, res, seq)
            self.reported_absent.discard(res.name)
        for name in removed:
            self.held.pop(name, None)
            if name in self.subscription.names:
                self.reported_absent.add(name)  # still asked for: its absence is now known to the client
        self.reported_absent.update(absent)
        self.seq, self.nonce = seq, str(seq)
        self.sent_version = state_version((name, h.version) for name, h in self.held.items())
        self.reply_due = False
        self.last_updated = now
        self._outstanding[self.nonce] = (seq, self.sent_version, monotonic)
        if len(self._outstanding) > OUTSTANDING_LIMIT:
            del self._outstanding[next(iter(self._outstanding))]
        return self.sent_version

    def is_outstanding(self, nonce: str) -> bool:
        return nonce in self._outstanding

    def record_ack(self, nonce: str, *, now: float, monotonic: float) -> float | None:
        """The client applied response `nonce`; returns seconds since it was sent, None if unknown."""
        entry = self._settle(nonce)
        if entry is None:
            return None
        seq, version, sent_at = entry
        if seq >= self.acked_seq:
            self.acked_seq, self.acked_version = seq, version
        if self.nack is not None and seq > self.nack.seq:
            self.nack = None  # a later response was accepted: the error is over
        self.last_updated = now
        return monotonic - sent_at

    def record_nack(self, nonce: str, message: str, *, now: float, monotonic: float) -> float | None:
        """The client rejected response `nonce` and keeps its previous config; returns seconds since sent."""
        entry = self._settle(nonce)
        if entry is None:
            return None
        seq, version, sent_at = entry
        self.nack = Nack(seq, version, message, now)
        self.last_updated = now
        return monotonic - sent_at

    def _settle(self, nonce: str) -> tuple[int, str, float] | None:
        entry = self._outstanding.get(nonce)
        if entry is None:
            return None
        # Responses are applied in order: an answer to `nonce` settles every earlier one too.
        for key in [k for k, v in self._outstanding.items() if v[0] <= entry[0]]:
            del self._outstanding[key]
        return entry
