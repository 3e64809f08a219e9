"""Coalesce bursts of config updates into one recompute, without starving a steady stream of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Debouncer:
    """Calls `fire(first trigger time)` `quiet` s after the last trigger, or `max_delay` after the first.

    A burst (a file save touching ten objects, an EndpointSlice storm) becomes one push; updates that never
    pause still reach the sidecars at least every `max_delay` seconds.
    """

    def __init__(self, fire: Callable[[float], None], quiet: float = 0.1, max_delay: float = 1.0) -> None:
        self._fire = fire
        self.quiet = quiet
        self.max_delay = max_delay
        self._first: float | None = None
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending_since(self) -> float | None:
        """Loop time of the first trigger not yet fired."""
        return self._first

    def trigger(self) -> None:
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._first is None:
            self._first = self._last
        if self._task is None:
            self._task = loop.create_task(self._wait())

    def fire_now(self) -> None:
        """Fire at once if anything is pending (tests, shutdown)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._first is not None:
            self._run()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._first = None

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        while self._first is not None:
            deadline = min(self._last + self.quiet, self._first + self.max_delay)
            delay = deadline - loop.time()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        self._task = None
        self._run()

    def _run(self) -> None:
        first, self._first = self._first, None
        assert first is not None
        self._fire(first)
