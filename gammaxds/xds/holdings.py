"""What one client holds of one resource type: a shared snapshot mapping plus a few per-stream overrides."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from gammaxds.xds.resources import Resource, item_token, set_version


@dataclass(frozen=True, slots=True)
class Announced:
    """A version a reconnecting delta client says it holds (`initial_resource_versions`): we never sent it,
    so there are no contents to show for it."""

    name: str
    version: str
    token: int

    @classmethod
    def of(cls, name: str, version: str) -> Announced:
        return cls(name, version, item_token(name, version))


Entry = Resource | Announced
_MISSING = object()
_NO_BASE: Mapping[str, Resource] = {}


class Holdings:
    """name → the Entry the client holds.

    Why this shape: after a push a client holds exactly what its snapshot offers it (every name of a
    wildcard subscription, or the subscribed ones), so the snapshot's own mapping, restricted to a `scope`
    (the subscribed names at that time, or all), stands for it and is shared by every stream of the view.
    Between a push and the next `rebase` the few differences live in `overrides` (a delivered resource, or
    None: not held). A copy per stream would cost ~1.5 MB and O(resources) per push at 8,000 resources.

    `version` is the version of the whole set, kept up to date in O(1) per change (a sum of item tokens).
    """

    __slots__ = ("_base", "_overrides", "_scope", "_total", "generation")

    def __init__(self) -> None:
        self._base: Mapping[str, Resource] = _NO_BASE
        self._scope: frozenset[str] | None = None  # base names held: all (None) or these
        self._overrides: dict[str, Entry | None] = {}
        self._total = 0
        self.generation = 0  # the Lineage generation of `_base`; 0: none

    @property
    def version(self) -> str:
        return set_version(self._total)

    @property
    def overridden(self) -> Iterator[str]:
        """Names that may differ from the base: the only ones a push must look at besides the snapshot's
        own changes."""
        return iter(self._overrides)

    @property
    def has_overrides(self) -> bool:
        return bool(self._overrides)

    def get(self, name: str) -> Entry | None:
        entry = self._overrides.get(name, _MISSING)
        if entry is not _MISSING:
            return cast("Entry | None", entry)  # not the sentinel: a value of `_overrides`
        return self._from_base(name)

    def _from_base(self, name: str) -> Resource | None:
        res = self._base.get(name)
        if res is None or (self._scope is not None and name not in self._scope):
            return None
        return res

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def names(self) -> Iterator[str]:
        """Every held name (unordered)."""
        base, scope, overrides = self._base, self._scope, self._overrides
        if scope is None:
            in_base: Iterator[str] = iter(base)
        elif len(scope) < len(base):
            in_base = (name for name in scope if name in base)
        else:
            in_base = (name for name in base if name in scope)
        yield from (name for name in in_base if name not in overrides)
        yield from (name for name, entry in overrides.items() if entry is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self.names())

    def put(self, entry: Entry) -> None:
        old = self.get(entry.name)
        if old is not None:
            self._total -= old.token
        self._total += entry.token
        self._overrides[entry.name] = entry

    def drop(self, name: str) -> None:
        old = self.get(name)
        if old is None:
            return
        self._total -= old.token
        if self._from_base(name) is not None:
            self._overrides[name] = None
        else:
            del self._overrides[name]

    @property
    def empty(self) -> bool:
        """O(1): nothing held, nothing announced (a stream's first response of a type)."""
        return not self._overrides and not self._base

    def assume(
        self, base: Mapping[str, Resource], generation: int, scope: frozenset[str] | None, total: int
    ) -> None:
        """From empty, the client now holds `base` restricted to `scope`, whose tokens sum to `total`."""
        assert self.empty
        self._base, self.generation, self._scope, self._total = base, generation, scope, total

    def rebase(self, base: Mapping[str, Resource], generation: int, scope: frozenset[str] | None) -> None:
        """The client now holds exactly `base` restricted to `scope` (the caller checked): forget the
        overrides. The set's version is unchanged, since its content is."""
        self._base, self.generation, self._scope = base, generation, scope
        if self._overrides:
            self._overrides = {}
