"""The commands that run things (serve, bootstrap, status, demo); `cli.py` parses, these act."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from .model import World
from .serve import ControlPlane, run_until_signalled

log = logging.getLogger("gammaxds")


def _manifest_paths(args: argparse.Namespace) -> list[str]:
    if args.manifests:
        return list(args.manifests)
    examples = Path("examples")
    if not examples.is_dir():
        raise SystemExit("error: no --manifests given and no ./examples directory to serve by default")
    return [str(examples)]


async def _serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from .admin.server import start_admin_server
    from .xds import start_xds_server

    plane: ControlPlane
    tasks: dict[str, Coroutine[Any, Any, None]] = {}
    closers: list[Callable[[], Awaitable[Any]]] = []
    status_extra: dict[str, Callable[[], Any]] = {}
    if args.kubeconfig or args.in_cluster:
        from .sources import (
            KubernetesSource,
            LeaderElector,
            StatusUpdater,
            StatusWriter,
            api_client,
            default_identity,
            default_namespace,
        )
        from .translate import translate_status

        api = await api_client(args.kubeconfig, in_cluster=args.in_cluster)
        closers.append(api.close)
        kube = KubernetesSource(api)
        plane = ControlPlane(kube, controller_name=args.controller_name)
        # Every replica serves xDS from its own watch; only the elected leader writes route status.
        updater = StatusUpdater(
            StatusWriter(api, controller_name=args.controller_name), translate_status, kube.route_objects
        )
        elector = LeaderElector(
            api, namespace=default_namespace(), name="gammaxds", identity=default_identity()
        )

        def publish(world: World) -> None:
            plane.publish(world)
            updater.update(world)

        tasks["source"] = kube.run(publish)
        tasks["leader election"] = elector.run(updater.run)
        status_extra["leader"] = lambda: {"is_leader": elector.is_leader, "identity": default_identity()}
        status_extra["missing_kinds"] = lambda: sorted(kube.missing)
    else:
        from .sources.files import ManifestSource

        files = ManifestSource(_manifest_paths(args))
        plane = ControlPlane(files, controller_name=args.controller_name)
        tasks["source"] = files.run(plane.publish)

    def status() -> dict[str, Any]:
        return {**plane.status(), **{k: fn() for k, fn in status_extra.items()}}

    xds = await start_xds_server(plane.cache, args.xds_address)
    admin = await start_admin_server(args.admin_address, plane.cache, status, xds=xds)
    # The bound addresses: with port 0 the kernel picks the port, and this line is where to read it.
    admin_host = args.admin_address.rpartition(":")[0]
    print(f"gammaxds: xDS on {xds.target}, admin on http://{admin_host}:{admin.port}", flush=True)
    running = {asyncio.create_task(coro, name=name) for name, coro in tasks.items()}
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait({*running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not stopped and t.exception() is not None]
        for task in failed:
            log.error("%s failed: %r", task.get_name(), task.exception())
        return 1 if failed else 0
    finally:
        for task in (*running, stopped):
            task.cancel()
        await asyncio.gather(*running, stopped, return_exceptions=True)
        await admin.stop()
        await xds.stop()
        for close in closers:
            await close()


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    result: list[int] = []

    async def main(stop: asyncio.Event) -> None:
        result.append(await _serve(args, stop))

    asyncio.run(run_until_signalled(main))
    return result[0] if result else 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from .bootstrap import render_bootstrap

    try:
        text = render_bootstrap(
            args.node_id,
            args.namespace,
            xds_address=args.xds_address,
            capture=args.capture,
            outbound_address=args.outbound_address,
            admin_address=args.admin_address,
            delta=not args.sotw,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .bootstrap import status_table

    url = f"http://{args.admin_address}/debug/proxies"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            proxies = json.load(resp)
    except (urllib.error.URLError, OSError) as err:
        print(f"error: cannot reach the control plane's admin server at {url}: {err}", file=sys.stderr)
        return 1
    print(status_table(proxies))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.tour import run_demo

    return run_demo(keep=args.keep)
