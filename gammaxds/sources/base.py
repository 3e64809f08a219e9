"""What every source is: a task that publishes a fresh World whenever its inputs change.

A source owns a mutable store keyed like the World (`key_of`); consumers only ever see immutable Worlds, so
the translator can run on one while the source keeps changing the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from ..model import Object, ObjectError, World, key_of
from ..model.world import Key

log = logging.getLogger(__name__)

Publish = Callable[[World], None]


@runtime_checkable
class Source(Protocol):
    """Runs until cancelled; calls `publish` after each change (or batch of changes), `synced` once loaded."""

    synced: asyncio.Event

    async def run(self, publish: Publish) -> None: ...

    @property
    def errors(self) -> list[ObjectError]: ...


class Store:
    """The objects a source currently holds, with the last World built from them.

    `world()` returns None when nothing changed since the last World, so sources publish only real changes
    (a relist or a re-saved file that yields the same objects publishes nothing).
    """

    def __init__(self) -> None:
        self.objects: dict[Key, Object] = {}
        self._published: dict[Key, Object] | None = None

    def put(self, obj: Object) -> None:
        self.objects[key_of(obj)] = obj

    def remove(self, key: Key) -> None:
        self.objects.pop(key, None)

    def replace_kind(self, kind: str, objects: Iterable[Object]) -> None:
        """Make `objects` the only ones of `kind` (a relist)."""
        for key in [k for k in self.objects if k[0] == kind]:
            del self.objects[key]
        for obj in objects:
            self.put(obj)

    def world(self) -> World | None:
        if self._published == self.objects:
            return None
        self._published = dict(self.objects)
        return World(dict(sorted(self._published.items())))

    def publish(self, publish: Publish) -> bool:
        """Hand the consumer a new World if the objects changed. A failing consumer is logged, not raised: the
        source must keep watching (the next change is published as usual)."""
        world = self.world()
        if world is None:
            return False
        try:
            publish(world)
        except Exception:
            log.exception("publishing a World failed")
        return True


def announcing(source: Source, publish: Publish) -> Publish:
    """`publish`, with one info line per World handed on: how many objects are in force and how many the
    model refused (`event: world`), so an operator sees each reload take effect, or not."""

    def announce(world: World) -> None:
        errors = source.errors
        refused = len({(e.kind, e.namespace, e.name, e.file, e.document) for e in errors})
        log.info(
            "World loaded: %d objects in force, %d refused",
            len(world),
            refused,
            extra={"event": "world", "objects": len(world), "refused": refused, "errors": len(errors)},
        )
        publish(world)

    return announce
