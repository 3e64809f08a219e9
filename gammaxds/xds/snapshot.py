"""A view's resources, encoded: what every stream of one view key is served from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from gammaxds.translate.view import PUSH_ORDER, View, ViewKey
from gammaxds.xds.resources import Resource, encode, state_version


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The encoded resources of one view. Immutable: streams hold on to it while they push."""

    view: View
    resources: Mapping[str, Mapping[str, Resource]]
    # Loop time of the first update that led to this snapshot: the start of push latency.
    updated_at: float
    digest: str = field(default="")

    def of_type(self, type_url: str) -> Mapping[str, Resource]:
        return self.resources.get(type_url, {})


class Encoder:
    """Encodes views, reusing what is already encoded.

    A message object seen before (the translator returns the same object for unchanged inputs) reuses its
    Resource without serialising; equal bytes from different objects share one Resource, so views with the
    same content share the very same Any objects.
    """

    def __init__(self) -> None:
        self._by_identity: dict[int, tuple[Message, Resource]] = {}
        self._by_content: dict[tuple[str, str], Resource] = {}
        self._by_view: dict[int, tuple[View, Snapshot]] = {}
        self.serialised = 0  # how many messages were serialised: lets tests prove reuse

    def snapshot(self, view: View, updated_at: float) -> Snapshot:
        known = self._by_view.get(id(view))
        if known is not None and known[0] is view:
            return known[1]
        resources: dict[str, dict[str, Resource]] = {}
        for type_url in PUSH_ORDER:
            resources[type_url] = {
                name: self._resource(type_url, name, msg)
                for name, msg in sorted(view.by_type[type_url].items())
            }
        digest = state_version(
            (f"{t}|{name}", r.version) for t, by_name in resources.items() for name, r in by_name.items()
        )
        snap = Snapshot(view, resources, updated_at, digest)
        self._by_view[id(view)] = (view, snap)
        return snap

    def _resource(self, type_url: str, name: str, msg: Message) -> Resource:
        known = self._by_identity.get(id(msg))
        if known is not None and known[0] is msg and known[1].type_url == type_url:
            return known[1]
        fresh = encode(type_url, name, msg)
        self.serialised += 1
        shared = self._by_content.setdefault((type_url, fresh.version), fresh)
        self._by_identity[id(msg)] = (msg, shared)
        return shared

    def retain(self, snapshots: list[Snapshot]) -> None:
        """Forget everything not used by these snapshots, so memory follows the live views only."""
        by_identity: dict[int, tuple[Message, Resource]] = {}
        by_content: dict[tuple[str, str], Resource] = {}
        by_view: dict[int, tuple[View, Snapshot]] = {}
        for snap in snapshots:
            by_view[id(snap.view)] = (snap.view, snap)
            for by_name in snap.resources.values():
                for res in by_name.values():
                    by_identity[id(res.message)] = (res.message, res)
                    by_content[(res.type_url, res.version)] = res
        self._by_identity, self._by_content, self._by_view = by_identity, by_content, by_view


def same_content(a: Snapshot | None, b: Snapshot) -> bool:
    return a is not None and a.digest == b.digest


__all__ = ["Encoder", "Snapshot", "ViewKey", "same_content"]
