"""`gammaxds serve --webhook-address`: the webhook wired to the control plane (its World, its API client).

Kept apart from `webhook` so the handler and server stay free of argparse and of the sources.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..model import World
from ..sources.kubeclient import call_json
from .cabundle import CABundleKeeper
from .certs import CertDir, CertError, generate_ca, issue_serving, server_context, service_dns_names
from .options import inject_config
from .rewrite import ConfigError
from .webhook import PATH, NamespaceLabels, WebhookError, WebhookServer

NAMESPACE_READ_TIMEOUT = 2.0


@dataclass
class RunningWebhook:
    """The started server, the background work that goes with it (for the serve loop), and its URL."""

    server: WebhookServer
    url: str
    keeper: CABundleKeeper | None = None
    tasks: dict[str, Coroutine[Any, Any, None]] = field(default_factory=dict)


def namespace_lookup(world: Callable[[], World | None], api: client.ApiClient | None) -> NamespaceLabels:
    """Labels of a namespace: from the World the control plane serves, else (a namespace the watch has not
    delivered yet) read from the API server when there is one; None when it exists nowhere.

    A review that arrives while the sources are still loading waits for the first World (up to the read
    timeout) rather than be answered as if no namespace asked for injection."""
    core = client.CoreV1Api(api) if api is not None else None

    async def loaded() -> World | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NAMESPACE_READ_TIMEOUT
        while (current := world()) is None and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return current

    async def labels(namespace: str) -> Mapping[str, str] | None:
        current = await loaded()
        obj = current.objects.get(("Namespace", "", namespace)) if current is not None else None
        if obj is not None:
            return dict(obj.metadata.labels)
        if core is None or not namespace:
            return None
        try:
            data = await asyncio.wait_for(
                call_json(core.read_namespace(namespace, _preload_content=False)), NAMESPACE_READ_TIMEOUT
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        meta = data.get("metadata") or {}
        return dict(meta.get("labels") or {})

    return labels


def _ip_sans(host: str) -> list[str]:
    """An address the webhook binds (not a wildcard) is also named in a generated certificate, for local use."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return []
    return [] if ip.is_unspecified else [str(ip)]


async def start_for_serve(
    args: argparse.Namespace, world: Callable[[], World | None], api: client.ApiClient | None
) -> RunningWebhook:
    """Start the webhook `args` ask for. WebhookError (one line) when it cannot start."""
    from ..sources.leader import default_namespace

    try:
        config = inject_config(args, prefix="inject-")
    except ConfigError as err:
        raise WebhookError(str(err)) from None
    service = args.webhook_service or f"gammaxds.{default_namespace()}"
    name, _, namespace = service.partition(".")
    if not name or not namespace or "." in namespace:
        raise WebhookError(f"--webhook-service: expected NAME.NAMESPACE, got {service!r}")
    host = args.webhook_address.rpartition(":")[0]
    cert_dir: CertDir | None = None
    ca_pem: bytes | None = None
    if args.webhook_cert_dir is not None:
        cert_dir = CertDir(args.webhook_cert_dir)
        try:
            context = server_context(cert_dir.load())
        except CertError as err:
            raise WebhookError(f"--webhook-cert-dir: {err}") from None
    else:
        ca = generate_ca(f"gammaxds webhook CA {socket.gethostname()}")
        context = server_context(issue_serving(ca, service_dns_names(name, namespace), _ip_sans(host)))
        ca_pem = ca.cert_pem
    server = WebhookServer(config, namespace_lookup(world, api), context, ca_pem=ca_pem, cert_dir=cert_dir)
    await server.start(args.webhook_address)
    running = RunningWebhook(server, f"https://{host or '0.0.0.0'}:{server.port}{PATH}")
    if cert_dir is not None:
        running.tasks["webhook certificate reload"] = server.reload_certificates()
    if ca_pem is not None and api is not None and args.webhook_config:
        running.keeper = CABundleKeeper(api, args.webhook_config, ca_pem)
        running.tasks["webhook CA bundle"] = running.keeper.run()
    return running
