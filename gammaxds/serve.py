"""The running control plane: a source feeds Worlds, the translator turns them into views, the cache and the
ADS server stream them. This module only wires the stages together; each stage lives in its own package.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from .model import World
from .model.status import DEFAULT_CONTROLLER
from .sources.base import Source
from .translate import Translation, Translator, View, ViewKey
from .translate.report import status_document
from .xds import SnapshotCache

log = logging.getLogger("gammaxds")


@dataclass
class ControlPlane:
    """Holds the latest World and the translator memo; hands the cache a provider for the newest World."""

    source: Source
    cache: SnapshotCache = field(default_factory=SnapshotCache)
    controller_name: str = DEFAULT_CONTROLLER
    on_translation: Callable[[Translation], None] | None = None
    translator: Translator = field(default_factory=Translator)
    world: World | None = None
    _translation: Translation | None = None

    def publish(self, world: World) -> None:
        """A source saw a change. Translation is deferred to the cache's debounced recompute, so a burst of
        changes is translated once, from the newest World."""
        self.world = world
        self._translation = None
        self.cache.update(self.view)

    @property
    def translation(self) -> Translation | None:
        if self._translation is None and self.world is not None:
            started = time.perf_counter()
            self._translation = self.translator.load(
                self.world
            )  # status is computed when asked for, off the push path
            self.cache.metrics.observe_translation(time.perf_counter() - started)
            log.debug("loaded a World of %d objects", len(self.world))
            if self.on_translation is not None:
                self.on_translation(self._translation)
        return self._translation

    def view(self, key: ViewKey) -> View:
        translation = self.translation
        assert translation is not None, "views are asked for only after a World was published"
        started = time.perf_counter()
        view = translation.view(key)
        self.cache.metrics.observe_translation(time.perf_counter() - started)
        return view

    def status(self) -> dict[str, Any]:
        """`/debug/status`: route conditions and the inputs that are not in force, with their reasons."""
        warnings: list[str] = getattr(self.source, "warnings", [])
        return status_document(self.translation, self.source.errors, warnings, self.controller_name)


async def run_until_signalled(main: Callable[[asyncio.Event], Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await main(stop)
