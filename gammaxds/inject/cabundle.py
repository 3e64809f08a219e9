"""A generated webhook CA into the MutatingWebhookConfiguration's `caBundle`, so the API server trusts us.

Each replica generates its own CA at start, so the bundle holds several: every replica adds its own and keeps
the others' (the API server may dial either replica through the Service, and must trust both). What it drops:
expired CAs, an older CA of the same replica (same subject, e.g. before a container restart), and beyond
`KEEP` CAs the oldest. The keeper re-checks every `interval`, so a bundle reset by a re-applied manifest, a
configuration created after gammaxds started, or a CA pruned by another replica is put back within a minute.

Writes are JSON merge patches of the whole `webhooks` list carrying the `metadata.resourceVersion` they were
computed from: a concurrent writer (the other replica) makes the API answer `409 Conflict`, and the patch is
recomputed from a fresh read.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from ..sources.kubeclient import Backoff, call_json

log = logging.getLogger(__name__)

KEEP = 8
# What RBAC must allow on that one MutatingWebhookConfiguration (deploy/kubernetes/10-rbac.yaml).
CONFIG_VERBS = ("get", "patch")
ATTEMPTS = 5


def _certs(bundle_b64: Any) -> list[x509.Certificate]:
    if not isinstance(bundle_b64, str) or not bundle_b64:
        return []
    try:
        return list(x509.load_pem_x509_certificates(base64.b64decode(bundle_b64, validate=True)))
    except ValueError:
        return []  # not a PEM bundle: nothing worth keeping (the API server could not use it either)


def _age(cert: x509.Certificate) -> tuple[datetime.datetime, int]:
    return cert.not_valid_before_utc, cert.serial_number


def merged_bundle(bundle_b64: Any, ours: bytes, *, now: datetime.datetime | None = None) -> str:
    """The caBundle (base64 of PEM) that trusts `ours` and the other replicas' CAs still in `bundle_b64`."""
    now = now or datetime.datetime.now(datetime.UTC)
    mine = x509.load_pem_x509_certificate(ours)
    others = [
        c
        for c in _certs(bundle_b64)
        if c.not_valid_after_utc > now and c.subject != mine.subject and c != mine
    ]
    others.sort(key=_age, reverse=True)
    # One order whichever replica computes it (oldest first), so replicas that agree never rewrite it.
    keep = sorted([*others[: KEEP - 1], mine], key=_age)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in keep)
    return base64.b64encode(pem).decode()


def with_bundle(config: dict[str, Any], ours: bytes) -> list[dict[str, Any]]:
    """The configuration's `webhooks`, each one's `clientConfig.caBundle` trusting `ours`."""
    out = []
    for hook in config.get("webhooks") or []:
        client_config = dict(hook.get("clientConfig") or {})
        client_config["caBundle"] = merged_bundle(client_config.get("caBundle"), ours)
        out.append({**hook, "clientConfig": client_config})
    return out


async def ensure_ca_bundle(api: client.ApiClient, name: str, ca_pem: bytes) -> bool:
    """Make every webhook of MutatingWebhookConfiguration `name` trust `ca_pem`. True when it was patched,
    False when it already did. ApiException for anything else (404: the configuration does not exist)."""
    hooks = client.AdmissionregistrationV1Api(api)
    for _attempt in range(ATTEMPTS):
        config = await call_json(hooks.read_mutating_webhook_configuration(name, _preload_content=False))
        webhooks = with_bundle(config, ca_pem)
        if webhooks == (config.get("webhooks") or []):
            return False
        patch = {"metadata": {"resourceVersion": config["metadata"]["resourceVersion"]}, "webhooks": webhooks}
        try:
            await call_json(
                hooks.patch_mutating_webhook_configuration(
                    name,
                    patch,
                    # Accepted at run time (it picks the patch type); missing from the stubs.
                    _content_type="application/merge-patch+json",  # type: ignore[call-arg]
                    _preload_content=False,
                )
            )
        except ApiException as err:
            if err.status != 409:
                raise
            log.debug("MutatingWebhookConfiguration %s changed under us; reading it again", name)
            continue
        return True
    raise ApiException(status=409, reason=f"still conflicting after {ATTEMPTS} attempts")


class CABundleKeeper:
    """Keeps our CA in the configuration's caBundle for as long as the server runs (see the module doc)."""

    def __init__(self, api: client.ApiClient, name: str, ca_pem: bytes, *, interval: float = 30.0) -> None:
        self.api, self.name, self.ca_pem, self.interval = api, name, ca_pem, interval
        self.patches = 0
        self.in_place = asyncio.Event()  # set once the bundle trusts us

    async def run(self) -> None:
        backoff = Backoff(cap=self.interval)
        reported: int | None = None  # the HTTP status last logged, so a lasting problem is logged once
        while True:
            delay = self.interval
            try:
                if await ensure_ca_bundle(self.api, self.name, self.ca_pem):
                    self.patches += 1
                    log.info("MutatingWebhookConfiguration %s: caBundle now trusts this replica", self.name)
                self.in_place.set()
                backoff.reset()
                reported = None
            except ApiException as err:
                if reported != err.status:
                    log.warning(
                        "cannot put the webhook CA into MutatingWebhookConfiguration %s: HTTP %s %s%s",
                        self.name,
                        err.status,
                        err.reason,
                        " (apply deploy/kubernetes/40-webhook.yaml)" if err.status == 404 else "",
                    )
                    reported = err.status
                delay = backoff.next()
            except (OSError, ValueError, TimeoutError) as err:
                log.warning("cannot reach the API server for the webhook CA bundle: %s", err)
                delay = backoff.next()
            await asyncio.sleep(delay)
