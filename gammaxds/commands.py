"""The commands that run things (serve, bootstrap, status, demo); `cli.py` parses, these act."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .serve import ControlPlane, run_until_signalled
from .sources.base import Source

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

    source: Source
    on_translation = None
    closers = []
    if args.kubeconfig or args.in_cluster:
        from .sources.cluster import cluster_source

        source, on_translation, close = await cluster_source(args)
        closers.append(close)
    else:
        from .sources.files import ManifestSource

        source = ManifestSource(_manifest_paths(args))
    plane = ControlPlane(source, controller_name=args.controller_name, on_translation=on_translation)
    xds = await start_xds_server(plane.cache, args.xds_address)
    admin = await start_admin_server(args.admin_address, plane.cache, plane.status, xds=xds)
    print(f"gammaxds: xDS on {args.xds_address}, admin on http://{args.admin_address}", flush=True)
    running = asyncio.create_task(source.run(plane.publish), name="source")
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if running in done and running.exception() is not None:
            log.error("source failed: %r", running.exception())
            return 1
        return 0
    finally:
        running.cancel()
        stopped.cancel()
        await asyncio.gather(running, stopped, return_exceptions=True)
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
