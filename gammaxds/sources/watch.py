"""Wake-ups for the manifests source from inotify (through `watchfiles`), following the paths as they come and go.

The watcher only says *that* something under the manifests may have changed. What changed, and whether it has
settled, is for the source's own scan to decide (the same (mtime, size, inode) comparison as when polling), so
an event that is missed or merged with others can delay a change but never apply a wrong one. This is also why
`watchfiles`' grouping is not trusted to settle a write: it returns a batch once a step passes with no *new*
(change, path) pair, so a file still being written (the same pair again and again) does not hold it back.

What is watched, recomputed after every batch of events (`Plan`):
- every named directory that exists, recursively, re-armed when a subdirectory appears in it (`notify`
  watches new subdirectories itself, but fails silently when that hits the watch limit);
- flat, the nearest existing ancestor of every named path, which sees the path itself created, deleted, or
  replaced by a rename (a file saved by rename, a directory deleted and made again, a symlink swapped, a path
  that does not exist yet). Events there count only for the named paths and their ancestors, and, for a named
  file, for anything beside it (a Kubernetes ConfigMap volume swaps the `..data` symlink the file points into).

When the plan changes the watches are re-armed, and the caller scans after that, so whatever happened while
no watch was in place is found by the scan.

inotify is not always there or not always enough: `WatchUnavailable` says why (its instance or watch limit is
reached, a directory cannot be read, a network filesystem where changes made on other machines raise no event),
and the source falls back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change
from watchfiles._rust_notify import RustNotify

log = logging.getLogger(__name__)

# watchfiles returns a batch once `STEP_MS` passes with no new (change, path) pair, so a change is reported
# 1-2 steps after it happened; a steady stream of new paths (a directory being copied in) is cut every
# `DEBOUNCE_MS`.
STEP_MS = 20
DEBOUNCE_MS = 400

# Filesystems where inotify sees only the changes made through this kernel, never those made by another
# machine (an NFS export edited on the server, an SMB share, sshfs): polling is the only way to notice those.
REMOTE_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "ceph",
        "afs",
        "lustre",
        "gpfs",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
    }
)


class WatchUnavailable(Exception):
    """inotify cannot (or cannot reliably) watch `path`: the caller polls instead."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    """What to watch for a list of manifest paths, as they are on disk right now."""

    trees: tuple[Path, ...]  # existing directories, resolved (a swapped symlink is a new tree), recursive
    anchors: tuple[Path, ...]  # the nearest existing ancestor of each path, flat
    wanted: frozenset[str]  # event paths in `anchors` that matter: the paths, their ancestors, the anchors
    beside: frozenset[str]  # anchors holding a named file: every event in them matters

    def relevant(self, path: str) -> bool:
        """Whether an event at `path` reported by a flat watch can change what the named paths hold."""
        return path in self.wanted or os.path.dirname(path) in self.beside


def plan(paths: Iterable[str | Path]) -> Plan:
    trees: list[Path] = []
    anchors: list[Path] = []
    wanted: set[str] = set()
    beside: set[str] = set()
    for given in paths:
        path = Path(os.path.abspath(given))  # absolute without resolving: the form events are reported in
        if path.is_dir():
            trees.append(path.resolve())
        anchor = path.parent
        wanted.add(str(path))
        while not anchor.is_dir() and anchor != anchor.parent:
            wanted.add(str(anchor))
            anchor = anchor.parent
        wanted.add(str(anchor))
        anchors.append(anchor)
        if path.is_file():
            beside.add(str(anchor))
    return Plan(
        trees=tuple(_outermost(trees)),
        anchors=tuple(dict.fromkeys(anchors)),
        wanted=frozenset(wanted),
        beside=frozenset(beside),
    )


def _outermost(dirs: list[Path]) -> list[Path]:
    """Directories not inside another one of the list (a recursive watch of the outer one covers them)."""
    unique = sorted(set(dirs))
    return [d for d in unique if not any(o != d and o in d.parents for o in unique)]


def remote_filesystem(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` if it is one in `REMOTE_FILESYSTEMS` (read from
    /proc/self/mountinfo: the mount with the longest mount point above the resolved path)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    resolved = path.resolve()
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        point = Path(_unescape(parts[4]))
        if (point == resolved or point in resolved.parents) and (best is None or len(point.parts) > best[0]):
            best = (len(point.parts), rest.split()[0])
    if best is not None and best[1] in REMOTE_FILESYSTEMS:
        return best[1]
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\\040`)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _reason(err: BaseException) -> str:
    """One short line for an inotify failure, naming the limit to raise where one was hit."""
    text = str(err)
    if "watch limit" in text:
        return "the inotify watch limit is reached (sysctl fs.inotify.max_user_watches)"
    if "Too many open files" in text:
        return "the inotify instance limit is reached (sysctl fs.inotify.max_user_instances)"
    if isinstance(err, PermissionError):
        return "permission denied"
    return text.splitlines()[0] if text else type(err).__name__


def _new_directory(change: int, path: str) -> bool:
    """A directory created in (or moved into) a tree. `notify` adds its watch by itself but says nothing when
    that fails (the watch limit reached), so the tree is re-armed, which does say: then the source polls."""
    return change == Change.added and os.path.isdir(path)


class _Pump:
    """One `RustNotify` (watchfiles' own watcher: it has armed its watches when it returns, and it raises at
    once when it cannot, which `awatch` leaves to its first iteration) and the thread that waits on it."""

    def __init__(
        self,
        dirs: Sequence[Path],
        *,
        recursive: bool,
        relevant: Callable[[str], bool],
        wake: Callable[[WatchUnavailable | None, bool], None],
        step_ms: int,
        debounce_ms: int,
    ) -> None:
        self.dirs = dirs
        self._recursive = recursive
        self._relevant = relevant
        self._wake = wake
        self._step_ms, self._debounce_ms = step_ms, debounce_ms
        self._stop = threading.Event()
        # Raises FileNotFoundError (a path went away since the plan), OSError or RuntimeError (no inotify).
        self._notify = RustNotify([str(d) for d in dirs], False, False, 0, recursive, False)
        self._thread = threading.Thread(target=self._loop, name=f"manifest-watch {dirs[0]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                got = self._notify.watch(self._debounce_ms, self._step_ms, 0, self._stop)
                if isinstance(got, set) and any(self._relevant(path) for _, path in got):
                    self._wake(None, self._recursive and any(_new_directory(c, p) for c, p in got))
        except Exception as err:  # the watcher broke
            if not self._stop.is_set():
                self._wake(WatchUnavailable(self.dirs[0], _reason(err)), False)
        finally:
            self._notify.close()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        self._thread.join()


class ManifestWatcher:
    """Waits for changes under manifest paths; `start`, then `changed` or `after`, and `close`."""

    def __init__(
        self, paths: Sequence[str | Path], *, step_ms: int = STEP_MS, debounce_ms: int = DEBOUNCE_MS
    ) -> None:
        self.paths = list(paths)
        self.step_ms, self.debounce_ms = step_ms, debounce_ms
        self.plan: Plan | None = None
        self._pumps: list[_Pump] = []
        self._dirty = asyncio.Event()
        self._failure: WatchUnavailable | None = None
        self._stale = False  # a tree gained a directory: re-arm it, whatever the plan says
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Arm the watches. Raises WatchUnavailable when inotify cannot watch the paths."""
        self._loop = asyncio.get_running_loop()
        await self._follow()

    async def changed(self) -> None:
        """Return once something under the paths may have changed (the caller then scans)."""
        await self._dirty.wait()
        await self._follow()

    async def after(self, seconds: float) -> None:
        """Return after `seconds`, whatever happened meanwhile: the caller's next scan covers it. (A change
        seen once is looked at again only this long after, however many events come in between.)"""
        await asyncio.sleep(seconds)
        await self._follow()

    def close(self) -> None:
        """Stop watching; the threads end within a step."""
        for pump in self._pumps:
            pump.stop()
        self._pumps = []

    def _wake(self, failure: WatchUnavailable | None, rearm: bool) -> None:
        """Called from a pump's thread."""
        loop = self._loop
        if loop is None:
            return

        def mark() -> None:
            if failure is not None and self._failure is None:
                self._failure = failure
            self._stale |= rearm
            self._dirty.set()

        with contextlib.suppress(RuntimeError):  # the loop closed while the thread was still waiting
            loop.call_soon_threadsafe(mark)

    async def _follow(self) -> None:
        """Take in the events so far and re-arm the watches if what exists on disk changed."""
        self._dirty.clear()
        if self._failure is not None:
            raise self._failure
        for _ in range(10):  # a path can vanish between the plan and the watch: plan again
            try:
                wanted = await asyncio.to_thread(plan, self.paths)
            except OSError as err:  # a path that cannot even be looked at (permission denied on the way)
                self.close()
                raise WatchUnavailable(Path(err.filename or self.paths[0]), _reason(err)) from err
            if wanted == self.plan and not self._stale:
                return
            self._stale = False
            try:
                await self._arm(wanted)
                return
            except FileNotFoundError:
                continue
        raise WatchUnavailable(Path(self.paths[0]), "the paths keep appearing and disappearing")

    async def _arm(self, wanted: Plan) -> None:
        old, self._pumps, self.plan = self._pumps, [], None
        for pump in old:
            pump.stop()
        for pump in old:  # release their inotify watches before taking new ones (the limits are per user)
            await asyncio.to_thread(pump.join)
        for d in (*wanted.trees, *wanted.anchors):
            if kind := await asyncio.to_thread(remote_filesystem, d):
                raise WatchUnavailable(d, f"on {kind}, where inotify misses changes made elsewhere")
        for dirs, recursive, relevant in (
            (wanted.trees, True, lambda _path: True),
            (wanted.anchors, False, wanted.relevant),
        ):
            if not dirs:
                continue
            try:
                self._pumps.append(await self._pump(dirs, recursive, relevant))
            except FileNotFoundError:
                self.close()
                raise
            except Exception as err:  # OSError, RuntimeError (no inotify); anything else: poll all the same
                self.close()
                raise WatchUnavailable(dirs[0], _reason(err)) from err
        self.plan = wanted
        log.debug("watching %s recursively, %s flat", wanted.trees, wanted.anchors)

    async def _pump(self, dirs: Sequence[Path], recursive: bool, relevant: Callable[[str], bool]) -> _Pump:
        """A new pump, made in a worker thread (arming walks the tree); stopped even if we are cancelled
        while it is being made, so no thread goes on watching for nobody."""
        making = asyncio.ensure_future(
            asyncio.to_thread(
                _Pump,
                dirs,
                recursive=recursive,
                relevant=relevant,
                wake=self._wake,
                step_ms=self.step_ms,
                debounce_ms=self.debounce_ms,
            )
        )
        try:
            return await asyncio.shield(making)
        except asyncio.CancelledError:

            def stop_once_made(made: asyncio.Future[_Pump]) -> None:
                if made.exception() is None:
                    made.result().stop()

            making.add_done_callback(stop_once_made)
            raise
