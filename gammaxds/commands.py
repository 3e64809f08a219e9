"""The commands that run things (serve, bootstrap, status, demo); `cli.py` parses, these act."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
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


class StartupError(RuntimeError):
    """`serve` cannot start: one line naming the flag and what is wrong with it."""


async def _kube_client(args: argparse.Namespace) -> Any:
    from kubernetes_asyncio.config.config_exception import ConfigException

    from .sources import api_client

    if args.kubeconfig and not Path(args.kubeconfig).is_file():
        raise StartupError(f"--kubeconfig {args.kubeconfig}: no such file")
    try:
        return await api_client(args.kubeconfig, in_cluster=args.in_cluster)
    except ConfigException as err:
        if args.in_cluster:
            raise StartupError(
                f"--in-cluster: this is not a Kubernetes pod ({err}); use --kubeconfig FILE outside a cluster"
            ) from None
        raise StartupError(f"--kubeconfig {args.kubeconfig}: not a usable kubeconfig: {err}") from None
    except OSError as err:
        raise StartupError(f"--kubeconfig {args.kubeconfig}: {err.strerror or err}") from None


def _bindable(flag: str, address: str) -> None:
    """Refuse, in one line, an address that is malformed or whose port is taken, before the server tries it
    (gRPC would also log its own multi-line complaint)."""
    if address.startswith("unix:"):
        return
    from .bootstrap import split_host_port

    try:
        host, port = split_host_port(address)
    except ValueError:
        raise StartupError(f"{flag} {address}: expected HOST:PORT or unix:PATH") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise StartupError(f"{flag} {address}: cannot resolve {host}: {err.strerror or err}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
        try:
            probe.bind(sockaddr)
        except OSError as err:
            raise StartupError(
                f"{flag} {address}: {err.strerror or err}; is another gammaxds serve running?"
            ) from None


async def _listen(what: str, flag: str, address: str, start: Callable[[], Awaitable[Any]]) -> Any:
    """Start one server; a port in use or an address that cannot be bound is a one-line error."""
    _bindable(flag, address)
    try:
        return await start()
    except (OSError, RuntimeError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).split(";")[0]
        raise StartupError(
            f"{flag} {address}: cannot serve {what} there ({reason}); is another gammaxds serve running?"
        ) from None


async def _serve(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from .admin.server import start_admin_server
    from .sources.base import announcing
    from .xds import SnapshotCache, start_xds_server

    plane: ControlPlane
    tasks: dict[str, Coroutine[Any, Any, None]] = {}
    status_extra: dict[str, Callable[[], Any]] = {}
    kube_api = None  # the API client, when there is a cluster: the webhook's namespace reads and CA bundle
    async with contextlib.AsyncExitStack() as running_servers:
        try:
            if args.kubeconfig or args.in_cluster:
                from .sources import (
                    KubernetesSource,
                    LeaderElector,
                    StatusUpdater,
                    StatusWriter,
                    default_identity,
                    default_namespace,
                )
                from .translate import translate_status

                api = await _kube_client(args)
                running_servers.push_async_callback(api.close)
                kube_api = api
                kube = KubernetesSource(api)
                plane = ControlPlane(kube, controller_name=args.controller_name)
                # Every replica serves xDS from its own watch; only the elected leader writes route status.
                updater = StatusUpdater(
                    StatusWriter(api, controller_name=args.controller_name),
                    translate_status,
                    kube.route_objects,
                )
                elector = LeaderElector(
                    api, namespace=default_namespace(), name="gammaxds", identity=default_identity()
                )

                def publish(world: World) -> None:
                    plane.publish(world)
                    updater.update(world)

                tasks["source"] = kube.run(announcing(kube, publish))
                tasks["leader election"] = elector.run(updater.run)
                status_extra["leader"] = lambda: {
                    "is_leader": elector.is_leader,
                    "identity": default_identity(),
                }
                status_extra["missing_kinds"] = lambda: sorted(kube.missing)
            else:
                from .sources.files import MANIFEST_DEBOUNCE, ManifestSource

                files = ManifestSource(_manifest_paths(args))
                cache = SnapshotCache(debounce=MANIFEST_DEBOUNCE)
                plane = ControlPlane(files, cache=cache, controller_name=args.controller_name)
                tasks["source"] = files.run(announcing(files, plane.publish))

            def status() -> dict[str, Any]:
                return {**plane.status(), **{k: fn() for k, fn in status_extra.items()}}

            xds = await _listen(
                "xDS",
                "--xds-address",
                args.xds_address,
                lambda: start_xds_server(plane.cache, args.xds_address),
            )
            running_servers.push_async_callback(xds.stop)
            admin = await _listen(
                "the admin API",
                "--admin-address",
                args.admin_address,
                lambda: start_admin_server(
                    args.admin_address,
                    plane.cache,
                    status,
                    xds=xds,
                    translation_fn=lambda: plane.translation,
                    errors_fn=lambda: plane.source.errors,
                ),
            )
            running_servers.push_async_callback(admin.stop)
            webhook = None
            if args.webhook_address:
                from .inject.serving import start_for_serve
                from .inject.webhook import WebhookError

                try:
                    webhook = await start_for_serve(args, lambda: plane.world, kube_api)
                except WebhookError as err:
                    raise StartupError(str(err)) from None
                running_servers.push_async_callback(webhook.server.stop)
                tasks.update(webhook.tasks)
        except StartupError:
            for coro in tasks.values():
                coro.close()  # never started
            raise
        # The bound addresses: with port 0 the kernel picks the port, and this line is where to read it.
        admin_host = args.admin_address.rpartition(":")[0]
        print(f"gammaxds: xDS on {xds.target}, admin on http://{admin_host}:{admin.port}", flush=True)
        if webhook is not None:
            print(f"gammaxds: admission webhook on {webhook.url}", flush=True)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from .logs import configure

    configure(args.log_level, args.log_format)
    result: list[int] = []

    async def main(stop: asyncio.Event) -> None:
        result.append(await _serve(args, stop))

    try:
        asyncio.run(run_until_signalled(main))
    except StartupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
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
            readiness_address=args.readiness_address,
            access_log=args.access_log == "on",
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.output:
        from .inject.command import write_file

        return write_file(args.output, text)
    print(text, end="")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .admin.client import AdminUnreachable, admin_get
    from .bootstrap import status_table

    try:
        proxies = admin_get(args.admin_address, "/debug/proxies", timeout=5)
    except AdminUnreachable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(status_table(proxies))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.tour import run_demo

    return run_demo(keep=args.keep)
