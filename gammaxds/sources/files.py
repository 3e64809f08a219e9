"""Manifest files and directories as a source, re-read when they change (woken by inotify, else polling).

Every file keeps its last good objects: a file that no longer parses, or an object in it that became invalid,
is reported and leaves the previous objects in force, so a half-saved edit never wipes a Service's routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..model import Object, ObjectError, key_of, parse_text
from ..model.load import duplicates, manifest_files, reading_order
from .base import Publish, Store
from .watch import ManifestWatcher, WatchUnavailable

log = logging.getLogger(__name__)

MANIFEST_DEBOUNCE = 0.02
"""The snapshot cache's debounce behind this source (`gammaxds serve --manifests`): the source already settles a
save into one World, so a longer wait would only delay every edit; 20 ms still joins the files that a checkout or
an editor writes together."""

Signature = tuple[int, int, int]  # mtime_ns, size, inode
_UNSETTLED: Signature = (-1, -1, -1)  # the file changed while being read


@dataclass
class _File:
    """What one file contributes: its objects with their documents, in document order (duplicates
    included: `duplicates` picks the copy in force across all files), and the errors of its latest reading."""

    signature: Signature | None = None
    objects: list[tuple[Object, int | None]] = field(default_factory=list)
    errors: list[ObjectError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ManifestSource:
    """`*.yaml`/`*.yml`/`*.json` files (directories searched recursively), re-read when they change.

    A change is applied once the file's (mtime, size, inode) has been the same on two consecutive looks, so a
    file caught in the middle of being written (a `kubectl`-style truncate then write) is read only after the
    writer is done, and a file that changes while being read is read again.

    `watch="inotify"` (the default) looks when inotify says something changed (`watch.ManifestWatcher`), then
    again `settle` seconds later: an edit is in force about 0.1 s after it is saved. (A writer pausing longer
    than `settle` in the middle of a file can have its first part applied for a moment, as one pausing longer
    than `interval` can when polling: editors and `kubectl` write a file in one go.) Where inotify is missing or
    fails (its limits reached, a network filesystem) the source warns once and polls instead, as with
    `watch="poll"`: a look every `interval` seconds. Polling is this loop rather than watchfiles' own
    (`force_polling`) because that one compares mtimes only, needs the paths to exist, and reports a file as
    soon as it sees it change, so the two-looks rule would have to be built on top of it anyway.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        interval: float = 0.25,
        watch: Literal["inotify", "poll"] = "inotify",
        settle: float = 0.04,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.interval = interval
        self.watch = watch
        self.settle = settle
        self.watching: Literal["inotify", "poll"] | None = None  # what run() uses: inotify may fall back
        self.synced = asyncio.Event()
        self._files: dict[Path, _File] = {}
        self._pending: dict[Path, Signature | None] = {}  # changes seen once, applied when seen again
        self._store = Store()
        self._errors: list[ObjectError] = []

    @property
    def errors(self) -> list[ObjectError]:
        """Why some inputs are not (or no longer) in force, for `/debug/status`."""
        return list(self._errors)

    @property
    def warnings(self) -> list[str]:
        """What the files hold that gammaxds does not read (other kinds), for `/debug/status`."""
        return [w for p in reading_order(self._files) for w in self._files[p].warnings]

    async def run(self, publish: Publish) -> None:
        watcher = ManifestWatcher(self.paths) if self.watch == "inotify" else None
        self.watching = "poll"
        try:
            if watcher is not None:
                try:
                    await watcher.start()  # before the load: a change made during it is an event
                    self.watching = "inotify"
                except WatchUnavailable as err:
                    self._fall_back(err)
                    watcher = None
            await asyncio.to_thread(self.load)
            self._store.publish(publish)
            self.synced.set()
            if watcher is not None:
                try:
                    await self._follow(watcher, publish)
                except WatchUnavailable as err:
                    watcher.close()  # the watches that still work would only wake us for nothing
                    self._fall_back(err)
            while True:
                await asyncio.sleep(self.interval)
                if await asyncio.to_thread(self.poll):
                    self._store.publish(publish)
        finally:
            if watcher is not None:
                watcher.close()

    async def _follow(self, watcher: ManifestWatcher, publish: Publish) -> None:
        """Look when inotify says something changed, then `settle` seconds after a look that saw a change
        (the second look, however many events come in between). Raises WatchUnavailable when inotify fails."""
        while True:
            if self._pending:
                await watcher.after(self.settle)
            else:
                await watcher.changed()
            if await asyncio.to_thread(self.poll):
                self._store.publish(publish)

    def _fall_back(self, err: WatchUnavailable) -> None:
        self.watching = "poll"
        why, every = err.reason, self.interval
        log.warning("cannot watch %s with inotify (%s); polling every %gs instead", err.path, why, every)

    def load(self) -> None:
        """Read every file now (the initial load: no settling)."""
        for path in manifest_files(self.paths):
            self._read(path, _signature(path))
        self._rebuild()

    def poll(self) -> bool:
        """Look for added, changed and deleted files; apply those that settled. True when any was applied."""
        current = {p: _signature(p) for p in manifest_files(self.paths)}
        for path in self._files.keys() - current.keys():
            current[path] = None  # deleted (or no longer matched)
        applied = False
        for path, sig in current.items():
            known = self._files.get(path)
            if (known.signature if known else None) == sig:
                self._pending.pop(path, None)
                continue
            if self._pending.get(path, ...) != sig:
                self._pending[path] = sig  # first sighting: wait one more poll
                continue
            del self._pending[path]
            if sig is None:
                log.info("manifest %s removed", path)
                self._files.pop(path, None)
            else:
                self._read(path, sig)
            applied = True
        if applied:
            self._rebuild()
        return applied

    def _read(self, path: Path, sig: Signature | None) -> None:
        state = self._files.setdefault(path, _File())
        state.signature = sig
        try:
            text = path.read_text()
        except OSError as err:
            error = ObjectError("?", "", str(path), "", f"cannot read: {err.strerror}", str(path))
            state.errors = [error.kept("previous version") if state.objects else error]
            self._report(state.errors)
            return
        if _signature(path) != sig:
            state.signature = _UNSETTLED  # written while we read: read again on the next polls
            return
        loaded = parse_text(text, str(path))
        if any(e.whole_file for e in loaded.errors):
            # Nothing in the file can be matched to what it held before: all of that stays in force.
            state.errors = [e.kept("previous version") if state.objects else e for e in loaded.errors]
            self._report(state.errors)
            return
        objects = list(zip(loaded.objects, (doc for _file, doc in loaded.origins), strict=True))
        now = {key_of(o) for o, _doc in objects}
        before = {key_of(o): (o, doc) for o, doc in state.objects}
        errors: list[ObjectError] = []
        for error in loaded.errors:
            key = (error.kind, error.namespace, error.name)
            if key not in now and key in before:
                objects.append(before[key])  # the object's last valid version stays
                now.add(key)
                error = error.kept("previous version")
            errors.append(error)
        state.objects, state.errors, state.warnings = objects, errors, loaded.warnings
        self._report(errors)
        for warning in loaded.warnings:
            log.info("%s", warning)

    def _report(self, errors: list[ObjectError]) -> None:
        for err in errors:
            log.warning("invalid manifest: %s", err)

    def _rebuild(self) -> None:
        entries = [
            (obj, str(path), doc)
            for path in reading_order(self._files)
            for obj, doc in self._files[path].objects
        ]
        objects, dup_errors = duplicates(entries)
        for err in dup_errors:
            log.warning("duplicate object: %s", err)
        self._store.objects = objects
        self._errors = [e for p in reading_order(self._files) for e in self._files[p].errors] + dup_errors
