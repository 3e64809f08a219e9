"""Manifest files and directories as a source, re-read when they change (polling: no inotify needed).

Every file keeps its last good objects: a file that no longer parses, or an object in it that became invalid,
is reported and leaves the previous objects in force, so a half-saved edit never wipes a Service's routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..model import Object, ObjectError, key_of, parse_text
from ..model.load import manifest_files
from ..model.world import Key
from .base import Publish, Store

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]  # mtime_ns, size, inode
_UNSETTLED: Signature = (-1, -1, -1)  # the file changed while being read


@dataclass
class _File:
    """What one file contributes: the objects in force, and the errors of its latest reading."""

    signature: Signature | None = None
    objects: dict[Key, Object] = field(default_factory=dict)
    errors: list[ObjectError] = field(default_factory=list)


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _whole_file_error(err: ObjectError) -> bool:
    """Errors that name no object (unreadable, not YAML, a document that is not an object): the file's
    previous objects cannot be matched to what is there now, so all of them stay."""
    return err.kind == "?"


class ManifestSource:
    """`*.yaml`/`*.yml`/`*.json` files (directories searched recursively), polled every `interval` seconds.

    A change is applied once the file's (mtime, size, inode) has been the same on two consecutive polls, so a
    file caught in the middle of being written is read only after the writer is done.
    """

    def __init__(self, paths: Sequence[str | Path], *, interval: float = 0.25) -> None:
        self.paths = [Path(p) for p in paths]
        self.interval = interval
        self.synced = asyncio.Event()
        self._files: dict[Path, _File] = {}
        self._pending: dict[Path, Signature | None] = {}  # changes seen once, applied when seen again
        self._store = Store()
        self._errors: list[ObjectError] = []

    @property
    def errors(self) -> list[ObjectError]:
        """Why some inputs are not (or no longer) in force, for `/debug/status`."""
        return list(self._errors)

    async def run(self, publish: Publish) -> None:
        await asyncio.to_thread(self.load)
        self._store.publish(publish)
        self.synced.set()
        while True:
            await asyncio.sleep(self.interval)
            if await asyncio.to_thread(self.poll):
                self._store.publish(publish)

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
            state.errors = [ObjectError("?", "", str(path), "", f"cannot read: {err.strerror}", str(path))]
            self._report(path, state.errors)
            return
        if _signature(path) != sig:
            state.signature = _UNSETTLED  # written while we read: read again on the next polls
            return
        loaded = parse_text(text, str(path))
        state.errors = loaded.errors
        if any(_whole_file_error(e) for e in loaded.errors):
            self._report(path, loaded.errors, keep=len(state.objects))
            return
        objects = {key_of(o): o for o in loaded.objects}
        for err in loaded.errors:
            key = (err.kind, err.namespace, err.name)
            if key not in objects and key in state.objects:
                objects[key] = state.objects[key]  # the object's last valid version stays
        state.objects = objects
        if loaded.errors:
            self._report(path, loaded.errors)
        for warning in loaded.warnings:
            log.info("%s", warning)

    def _report(self, path: Path, errors: list[ObjectError], keep: int = 0) -> None:
        kept = f"; keeping the {keep} objects it held before" if keep else ""
        for err in errors:
            log.warning("invalid manifest: %s%s", err, kept)

    def _rebuild(self) -> None:
        objects: dict[Key, Object] = {}
        origin: dict[Key, Path] = {}
        for path in sorted(self._files):
            for key, obj in self._files[path].objects.items():
                if key in origin:
                    log.warning("%s %s/%s is in both %s and %s; using %s", *key, origin[key], path, path)
                objects[key] = obj
                origin[key] = path
        self._store.objects = objects
        self._errors = [e for p in sorted(self._files) for e in self._files[p].errors]
