"""The control plane under test, in its own process: a synthetic mesh, the real ControlPlane, SnapshotCache and
ADS server, driven by JSON-line commands on stdin (see `proc.Worker`).

`python -m bench.cpserver S [EXTRA_JSON]` prints `{"target": HOST:PORT}` once it listens. Commands:
`track` (compute views with no stream, for the 0-stream baseline), `endpoint_change`, `route_change`, `put`
(replace or add one raw manifest), `streams`, `gc`. Each change answers `t0`, the CLOCK_MONOTONIC time at which
the new World was published (time.monotonic() is the same clock in every process on the host).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import sys
import time
from typing import Any

from gammaxds.serve import ControlPlane
from gammaxds.translate import ViewKey
from gammaxds.xds import start_xds_server

from .changes import Mesh
from .meshgen import MeshSpec
from .proc import profiling, serve_commands


class _NoSource:
    errors: list[Any] = []


async def main(services: int, extra: list[dict[str, Any]]) -> None:
    mesh = Mesh(MeshSpec(services=services, endpoints=10), extra)
    plane = ControlPlane(source=_NoSource())  # type: ignore[arg-type]
    plane.publish(mesh.world)
    server = await start_xds_server(plane.cache, "127.0.0.1:0")
    print(json.dumps({"target": server.target}), flush=True)

    def publish(world: Any) -> dict[str, Any]:
        t0 = time.monotonic()
        plane.publish(world)
        return {"t0": t0}

    async def track(namespaces: list[str], capture: str = "transparent") -> dict[str, Any]:
        for ns in namespaces:
            plane.cache.track(ViewKey(ns, capture))  # type: ignore[arg-type]
        plane.cache.flush()
        return {"ok": True}

    async def endpoint_change(service: int) -> dict[str, Any]:
        return publish(mesh.endpoint_change(service))

    async def route_change(service: int) -> dict[str, Any]:
        return publish(mesh.route_change(service))

    async def put(raw: dict[str, Any]) -> dict[str, Any]:
        return publish(mesh.put(raw))

    async def streams() -> dict[str, Any]:
        return {"streams": len(server.streams)}

    async def collect(trim: bool = False) -> dict[str, Any]:
        """A garbage collection; with `trim`, glibc then returns the free memory it kept to the OS."""
        gc.collect()
        if trim:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        return {"ok": True}

    await serve_commands(
        {
            "track": track,
            "endpoint_change": endpoint_change,
            "route_change": route_change,
            "put": put,
            "streams": streams,
            "gc": collect,
            **profiling(),
        }
    )
    await server.stop(0)
    plane.cache.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else []))
