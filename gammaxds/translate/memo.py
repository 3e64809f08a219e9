"""The translator's memo: a result is reused while every input it was built from is the very same object.

Identity, not equality, is what makes it cheap: comparing a Service by `is` costs nothing, and a source hands
over the same object for an unchanged input (see docs/architecture.md, "The memo and incremental
translation"). The same message object then reaches the snapshot cache, which skips re-serialising it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    """Results keyed by name, reused while every input is the identical object; entries unused by the latest
    World are dropped when the next World is loaded (two generations)."""

    def __init__(self) -> None:
        self.current: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}
        self.previous: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}
        self.built = 0

    def next_generation(self) -> None:
        self.previous, self.current = self.current, {}

    def get(self, key: Hashable, inputs: tuple[Any, ...], build: Callable[[], T]) -> T:
        for gen in (self.current, self.previous):
            hit = gen.get(key)
            if (
                hit is not None
                and len(hit[0]) == len(inputs)
                and all(a is b for a, b in zip(hit[0], inputs, strict=True))
            ):
                self.current[key] = hit
                return hit[1]  # type: ignore[no-any-return]
        value = build()
        self.current[key] = (inputs, value)
        self.built += 1
        return value
