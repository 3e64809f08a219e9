"""The mutating admission webhook: `POST /inject` with an AdmissionReview v1, over HTTPS.

For a Pod CREATE in a namespace labelled `gammaxds.io/inject=enabled` it answers `allowed: true` with a JSON
Patch (`patchType: JSONPatch`) from the pod to what `gammaxds inject` makes of it (the same rewriter);
anything else is allowed unchanged.

**Which namespaces.** The shipped MutatingWebhookConfiguration's namespaceSelector already sends only pods of
labelled namespaces; the server checks again, because a configuration edited by hand (or a direct caller) may
not have it. The labels come from the control plane's own source, the World it serves xDS from (the
Kubernetes watch, or the Namespaces of the manifests); a namespace the World does not hold yet (just created)
is read from the API server when there is one. A namespace found nowhere is not enabled.

**Errors.** A body that is no AdmissionReview v1 (not JSON, no `request.uid`) gets HTTP 400 with a one-line
reason: without a uid there is no review to answer, and the API server treats the 400 as a failed call, which
`failurePolicy: Ignore` turns into admitting the pod unchanged. A real review of a pod the rewriter refuses
(a container named like ours, a bad annotation, ...) is answered `allowed: true`, no patch, with the reason in
`status.message` and in `warnings`, which kubectl shows: a pod is never blocked for want of a sidecar, and the
person who created it sees why it has none.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from .certs import CertDir, CertError, load_into
from .patch import json_patch
from .rewrite import InjectConfig, InjectError, describe, inject

log = logging.getLogger(__name__)

PATH = "/inject"
ADMISSION_API = "admission.k8s.io/v1"
NAMESPACE_LABEL = "gammaxds.io/inject"
ENABLED = "enabled"
MAX_BODY = 8 * 1024 * 1024  # an AdmissionReview carries the object (etcd's limit is 1.5 MiB) and more

# A namespace's labels, or None when the namespace is not known; may raise when it cannot tell.
NamespaceLabels = Callable[[str], Awaitable[Mapping[str, str] | None]]


class WebhookError(RuntimeError):
    """The webhook cannot start (address in use, certificate unusable); the message says which, in one line."""


class BadReview(ValueError):
    """A body that is no AdmissionReview v1 request: answered with HTTP 400."""


def _response(
    uid: str, *, patch: list[dict[str, Any]] | None = None, warning: str | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warning:
        response["status"] = {"code": 200, "message": warning}
        response["warnings"] = [warning]
    return {"apiVersion": ADMISSION_API, "kind": "AdmissionReview", "response": response}


def parse_review(body: bytes) -> dict[str, Any]:
    """The review's `request`; BadReview (one line) when the body is not an AdmissionReview v1 request."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReview("the body is not JSON (expected an AdmissionReview)") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise BadReview("the body is not an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_API:
        raise BadReview(f"apiVersion must be {ADMISSION_API}, not {review.get('apiVersion')!r}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("the AdmissionReview has no request")
    if not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid: missing (the response must echo it)")
    return request


def _is_pod_create(request: Mapping[str, Any]) -> bool:
    kind = request.get("kind") or {}
    return (
        isinstance(kind, Mapping)
        and kind.get("group", "") == ""
        and kind.get("version") == "v1"
        and kind.get("kind") == "Pod"
        and request.get("operation") == "CREATE"
        and not request.get("subResource")
    )


async def review(
    request: Mapping[str, Any], config: InjectConfig, namespace_labels: NamespaceLabels
) -> dict[str, Any]:
    """The AdmissionReview answering `request` (already parsed): the decision described in the module doc."""
    uid = str(request["uid"])
    if not _is_pod_create(request):
        return _response(uid)
    pod = request.get("object")
    if not isinstance(pod, dict):
        return _response(uid, warning="gammaxds: request.object: missing; the pod was not injected")
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    namespace = str(request.get("namespace") or meta.get("namespace") or "")
    try:
        labels = await namespace_labels(namespace)
    except Exception as err:
        log.warning("webhook: cannot read the labels of namespace %s: %s", namespace, err)
        return _response(uid, warning=f"gammaxds: cannot tell whether namespace {namespace} is meshed: {err}")
    if labels is None or labels.get(NAMESPACE_LABEL) != ENABLED:
        log.debug("webhook: namespace %s is not labelled %s=%s", namespace, NAMESPACE_LABEL, ENABLED)
        return _response(uid)
    # The pod as the rewriter names it (with its namespace, which a CREATE's object may lack); the patch is
    # taken against the same copy, so it never touches metadata.namespace.
    named = copy.deepcopy(pod)
    if isinstance(named.get("metadata"), dict) and namespace:
        named["metadata"].setdefault("namespace", namespace)
    try:
        outcome = inject(named, config)
    except InjectError as err:
        log.warning("webhook: not injected: %s", err)
        return _response(uid, warning=f"gammaxds: the pod was not injected: {err}")
    patch = json_patch(named, outcome.object)
    if patch:
        log.info("webhook: injected %s", describe(named))
    return _response(uid, patch=patch)


@dataclass
class WebhookServer:
    """The HTTPS server of `POST /inject`. Start with `start()`; `ca_pem` is the CA to trust when the
    certificate was generated (None when it came from files)."""

    config: InjectConfig
    namespace_labels: NamespaceLabels
    context: ssl.SSLContext
    ca_pem: bytes | None = None
    cert_dir: CertDir | None = None
    reload_interval: float = 10.0
    reviews: int = 0
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, repr=False)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = parse_review(body)
        except BadReview as err:
            log.warning("webhook: bad request from %s: %s", request.remote, err)
            return web.Response(status=400, text=f"{err}\n")
        self.reviews += 1
        return web.json_response(await review(parsed, self.config, self.namespace_labels))

    async def start(self, address: str) -> WebhookServer:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise WebhookError(f"--webhook-address: expected HOST:PORT (port 0-65535), got {address!r}")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port), ssl_context=self.context)
        try:
            await site.start()
        except (OSError, OverflowError) as err:
            await runner.cleanup()
            if isinstance(err, socket.gaierror):
                reason = f"cannot resolve {host}: {err.strerror}"
            elif isinstance(err, OSError) and err.errno:
                reason = os.strerror(err.errno)  # not asyncio's "error while attempting to bind on ..."
            else:
                reason = str(err)
            raise WebhookError(f"cannot serve the webhook on {address}: {reason}") from None
        self._runner = runner
        # TCPSite's server is the one loop.create_server returned: an asyncio.Server, which has `sockets`.
        server = cast(asyncio.Server | None, site._server)
        assert server is not None and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reload_certificates(self) -> None:
        """Runs as long as the server: a swapped tls.crt/tls.key is served to new connections within
        `reload_interval` (a Secret rotated by cert-manager, without a restart). A broken swap keeps the
        certificate in use and is logged."""
        while self.cert_dir is not None:
            await asyncio.sleep(self.reload_interval)
            if not self.cert_dir.changed():
                continue
            try:
                load_into(self.context, self.cert_dir.load())
                log.info("webhook: certificate reloaded from %s", self.cert_dir.directory)
            except (CertError, ssl.SSLError) as err:
                log.warning("webhook: keeping the certificate in use; the new one is unusable: %s", err)
