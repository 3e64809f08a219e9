"""The control plane of `gammaxds serve --manifests DIR` in its own process, with the manifests source in a chosen
watch mode, driven by JSON-line commands on stdin (see `proc.Worker`).

`python -m bench.manifests_server DIR inotify|poll` prints `{"target": HOST:PORT, "watching": MODE}` once the
manifests are loaded and ADS listens. Command `published(after)` answers `t`, the CLOCK_MONOTONIC time of the
first World published at or after `after` (null if none yet): the moment the source put an edit in force.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import sys
import time
from typing import Any

from gammaxds.model import World
from gammaxds.serve import ControlPlane
from gammaxds.sources.files import MANIFEST_DEBOUNCE, ManifestSource
from gammaxds.xds import SnapshotCache, start_xds_server

from .proc import serve_commands


async def main(directory: str, watch: str) -> None:
    source = ManifestSource([directory], watch=watch)  # type: ignore[arg-type]
    # before: the previous release's polling and 0.1 s cache debounce; after: what `gammaxds serve` runs now
    debounce = MANIFEST_DEBOUNCE if watch == "inotify" else 0.1
    plane = ControlPlane(source, cache=SnapshotCache(debounce=debounce))
    times: list[float] = []

    def publish(world: World) -> None:
        times.append(time.monotonic())
        plane.publish(world)

    task = asyncio.create_task(source.run(publish))
    await asyncio.wait_for(source.synced.wait(), 30)
    server = await start_xds_server(plane.cache, "127.0.0.1:0")
    print(json.dumps({"target": server.target, "watching": source.watching}), flush=True)

    async def published(after: float) -> dict[str, Any]:
        i = bisect.bisect_left(times, after)
        return {"t": times[i] if i < len(times) else None}

    await serve_commands({"published": published})
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await server.stop(0)
    plane.cache.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
