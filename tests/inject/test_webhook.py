"""The admission webhook over real HTTPS: a TLS handshake verified against the generated CA (by the Service's DNS
name, as the API server dials it), real AdmissionReview v1 JSON, the JSON Patch applied with an independent
RFC 6902 implementation (jsonpatch) and compared with what `gammaxds inject` makes of the same pod; the CA
bundle written into a MutatingWebhookConfiguration through kubernetes_asyncio against the fake API server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
import yaml
from fakekube import FakeKube
from kubernetes_asyncio import client

from gammaxds.inject.cabundle import KEEP, CABundleKeeper, ensure_ca_bundle, merged_bundle
from gammaxds.inject.certs import CertDir, generate_ca, issue_serving, server_context, service_dns_names
from gammaxds.inject.manifests import load_documents
from gammaxds.inject.rewrite import InjectConfig, inject
from gammaxds.inject.serving import namespace_lookup
from gammaxds.inject.webhook import WebhookError, WebhookServer
from gammaxds.model import World, parse_text

REPO = Path(__file__).resolve().parents[2]
SERVICE_NAME = "gammaxds.gammaxds-system.svc"
NAMESPACES = """\
apiVersion: v1
kind: Namespace
metadata: {name: store, labels: {gammaxds.io/inject: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web}
"""
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "reviews-v1-7d9f-", "labels": {"app": "reviews"}},
    "spec": {
        "containers": [{"name": "app", "image": "gammaxds:0.1.0", "ports": [{"containerPort": 8080}]}],
        "restartPolicy": "Always",
    },
}


def world_of(text: str) -> World:
    return parse_text(text, "namespaces.yaml").world()


def review(obj: Any, *, namespace: str = "store", kind: str = "Pod", operation: str = "CREATE") -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
        },
    }


class Generated:
    """A CA and a serving certificate for the webhook's Service, as `serve` generates them."""

    def __init__(self, ip: str | None = None) -> None:
        self.ca = generate_ca(f"test webhook CA {uuid.uuid4().hex[:8]}")  # one per replica, as per pod name
        self.pair = issue_serving(
            self.ca, service_dns_names("gammaxds", "gammaxds-system"), [ip] if ip else []
        )

    def client_context(self, ca_pem: bytes | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=(ca_pem or self.ca.cert_pem).decode())


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[WebhookServer, Generated]]:
    certs = Generated()
    world = world_of(NAMESPACES)
    server = WebhookServer(
        InjectConfig(),
        namespace_lookup(lambda: world, None),
        server_context(certs.pair),
        ca_pem=certs.ca.cert_pem,
    )
    await server.start("127.0.0.1:0")
    yield server, certs
    await server.stop()


async def post(
    server: WebhookServer, context: ssl.SSLContext, body: bytes, *, hostname: str = SERVICE_NAME
) -> tuple[int, Any]:
    """POST /inject over TLS to 127.0.0.1, verifying the certificate for `hostname` (the Service's name)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"https://127.0.0.1:{server.port}/inject",
            data=body,
            headers={"Content-Type": "application/json"},
            ssl=context,
            server_hostname=hostname,
        ) as resp,
    ):
        text = await resp.text()
        return resp.status, (json.loads(text) if resp.content_type == "application/json" else text)


def patched(obj: dict, response: Mapping[str, Any]) -> dict:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(obj, ops)


def cli_inject(obj: dict) -> dict:
    """What `gammaxds inject -f -` prints for this object (a real process)."""
    done = subprocess.run(
        [sys.executable, "-m", "gammaxds", "inject", "-f", "-"],
        input=yaml.safe_dump(obj),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [doc] = load_documents(done.stdout)
    return doc


async def test_a_pod_in_an_enabled_namespace_gets_the_patch_inject_makes(
    webhook: tuple[WebhookServer, Generated],
) -> None:
    server, certs = webhook
    body = review(POD)
    status, answer = await post(server, certs.client_context(), json.dumps(body).encode())
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"] and response["allowed"] is True
    result = patched(copy.deepcopy(POD), response)
    assert result == inject(POD).object  # the rewriter the CLI uses ...
    assert result == cli_inject(POD)  # ... and the CLI itself
    names = [c["name"] for c in result["spec"]["initContainers"]]
    assert names == ["gammaxds-init", "gammaxds-bootstrap", "gammaxds-proxy"]
    assert "namespace" not in result["metadata"]  # the patch never touches what it was not asked to


async def test_not_enabled_namespaces_and_other_requests_are_allowed_unchanged(
    webhook: tuple[WebhookServer, Generated],
) -> None:
    server, certs = webhook
    context = certs.client_context()
    for body in (
        review(POD, namespace="web"),  # known, not labelled
        review(POD, namespace="nowhere"),  # unknown to the World, no API server to ask
        review(POD, operation="UPDATE"),
        review({"kind": "Service"}, kind="Service"),
    ):
        status, answer = await post(server, context, json.dumps(body).encode())
        assert status == 200
        assert answer["response"] == {"uid": body["request"]["uid"], "allowed": True}


async def test_an_injected_pod_or_an_opted_out_one_gets_no_patch(
    webhook: tuple[WebhookServer, Generated],
) -> None:
    server, certs = webhook
    opted_out = copy.deepcopy(POD)
    opted_out["metadata"]["annotations"] = {"gammaxds.io/inject": "false"}
    for pod in (inject(POD).object, opted_out):
        status, answer = await post(server, certs.client_context(), json.dumps(review(pod)).encode())
        assert status == 200 and "patch" not in answer["response"] and answer["response"]["allowed"] is True


async def test_a_pod_the_rewriter_refuses_is_allowed_with_the_reason(
    webhook: tuple[WebhookServer, Generated],
) -> None:
    server, certs = webhook
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"].append({"name": "gammaxds-proxy", "image": "envoy"})
    status, answer = await post(server, certs.client_context(), json.dumps(review(pod)).encode())
    response = answer["response"]
    assert status == 200 and response["allowed"] is True and "patch" not in response
    assert "spec.containers[1].name" in response["status"]["message"]
    assert response["warnings"] == [response["status"]["message"]]
    status, answer = await post(server, certs.client_context(), json.dumps(review(None)).encode())
    assert (
        status == 200
        and answer["response"]["allowed"] is True
        and "request.object" in answer["response"]["warnings"][0]
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not an AdmissionReview"),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(),
            "v1beta1",
        ),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "no request"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
            ).encode(),
            "uid",
        ),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_a_malformed_body_gets_400_and_the_server_keeps_serving(
    webhook: tuple[WebhookServer, Generated], body: bytes, reason: str
) -> None:
    server, certs = webhook
    status, text = await post(server, certs.client_context(), body)
    assert status == 400 and reason in text and text.count("\n") == 1
    status, answer = await post(server, certs.client_context(), json.dumps(review(POD)).encode())
    assert status == 200 and "patch" in answer["response"]


async def test_tls_is_real(webhook: tuple[WebhookServer, Generated]) -> None:
    """Another CA's client refuses the certificate, and so does a client dialing a name the certificate lacks."""
    server, certs = webhook
    body = json.dumps(review(POD)).encode()
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post(server, Generated().client_context(), body)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post(server, certs.client_context(), body, hostname="evil.example")
    for name in service_dns_names("gammaxds", "gammaxds-system"):
        status, _ = await post(server, certs.client_context(), body, hostname=name)
        assert status == 200


async def test_the_namespace_lookup_asks_the_api_server_for_what_the_world_lacks(
    kube: FakeKube, api: client.ApiClient
) -> None:
    kube.apply(
        {"kind": "Namespace", "metadata": {"name": "fresh", "labels": {"gammaxds.io/inject": "enabled"}}}
    )
    lookup = namespace_lookup(lambda: world_of(NAMESPACES), api)
    assert await lookup("store") == {"gammaxds.io/inject": "enabled"}  # from the World, no request
    assert not kube.requests
    assert await lookup("fresh") == {"gammaxds.io/inject": "enabled"}
    assert await lookup("gone") is None
    assert [r.path for r in kube.requests] == ["/api/v1/namespaces/fresh", "/api/v1/namespaces/gone"]
    assert await namespace_lookup(lambda: None, None)("store") is None  # no World yet, no API server


def webhook_configuration() -> dict[str, Any]:
    """The MutatingWebhookConfiguration gammaxds ships."""
    [config] = yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "40-webhook.yaml").read_text())
    return config


def bundle_of(kube: FakeKube) -> bytes:
    stored = kube.get("MutatingWebhookConfiguration", "", "gammaxds")
    assert stored is not None
    [hook] = stored["webhooks"]
    return base64.b64decode(hook["clientConfig"]["caBundle"])


async def test_the_ca_bundle_goes_into_the_webhook_configuration_and_the_api_server_can_trust_us(
    kube: FakeKube, api: client.ApiClient
) -> None:
    kube.apply(webhook_configuration())
    one, two = Generated(), Generated()
    assert await ensure_ca_bundle(api, "gammaxds", one.ca.cert_pem) is True
    assert bundle_of(kube) == one.ca.cert_pem
    assert await ensure_ca_bundle(api, "gammaxds", one.ca.cert_pem) is False  # nothing to change
    # A second replica adds its CA and keeps the first's; neither then rewrites the other's order.
    assert await ensure_ca_bundle(api, "gammaxds", two.ca.cert_pem) is True
    assert await ensure_ca_bundle(api, "gammaxds", one.ca.cert_pem) is False
    assert await ensure_ca_bundle(api, "gammaxds", two.ca.cert_pem) is False
    bundle = bundle_of(kube)
    assert bundle.count(b"BEGIN CERTIFICATE") == 2 and one.ca.cert_pem in bundle and two.ca.cert_pem in bundle
    assert kube.patches == 2
    # What the API server does with the bundle: trust it as the root of a TLS handshake with either replica.
    for certs in (one, two):
        server = WebhookServer(
            InjectConfig(), namespace_lookup(lambda: world_of(NAMESPACES), api), server_context(certs.pair)
        )
        await server.start("127.0.0.1:0")
        try:
            context = ssl.create_default_context(cadata=bundle_of(kube).decode())
            status, answer = await post(server, context, json.dumps(review(POD)).encode())
            assert status == 200 and "patch" in answer["response"]
        finally:
            await server.stop()


async def test_a_concurrent_writer_makes_the_patch_retry(kube: FakeKube, api: client.ApiClient) -> None:
    kube.apply(webhook_configuration())
    kube.inject_patch_conflicts = 1
    certs = Generated()
    assert await ensure_ca_bundle(api, "gammaxds", certs.ca.cert_pem) is True
    assert kube.conflicts == 1 and bundle_of(kube) == certs.ca.cert_pem
    stored = kube.get("MutatingWebhookConfiguration", "", "gammaxds")
    assert stored is not None and stored["metadata"]["labels"]["touched-by"].startswith("other-")


async def test_the_keeper_waits_for_the_configuration_and_puts_the_ca_back(
    kube: FakeKube, api: client.ApiClient
) -> None:
    certs = Generated()
    keeper = CABundleKeeper(api, "gammaxds", certs.ca.cert_pem, interval=0.05)
    task = asyncio.create_task(keeper.run())
    try:
        await kube.until(lambda: len(kube.requests) >= 2, "the keeper to look for the configuration twice")
        assert not keeper.in_place.is_set()
        kube.apply(webhook_configuration())  # applied after gammaxds started
        await asyncio.wait_for(keeper.in_place.wait(), 10)
        assert bundle_of(kube) == certs.ca.cert_pem
        kube.apply(webhook_configuration())  # re-applied without the bundle (a `kubectl replace`)
        await kube.until(lambda: bundle_of_or_none(kube) == certs.ca.cert_pem, "the CA to be put back", 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def bundle_of_or_none(kube: FakeKube) -> bytes | None:
    stored = kube.get("MutatingWebhookConfiguration", "", "gammaxds")
    bundle = stored["webhooks"][0]["clientConfig"].get("caBundle") if stored else None
    return base64.b64decode(bundle) if bundle else None


def test_the_bundle_drops_expired_and_replaced_cas_and_keeps_a_bounded_number() -> None:
    cas = [generate_ca(f"replica {i}").cert_pem for i in range(KEEP + 3)]
    bundle = None
    for pem in cas:
        bundle = merged_bundle(bundle, pem)
    kept = base64.b64decode(bundle or "")
    assert kept.count(b"BEGIN CERTIFICATE") == KEEP and cas[-1] in kept
    restarted = generate_ca("replica 3").cert_pem  # same replica, new CA: the old one goes
    kept = base64.b64decode(merged_bundle(base64.b64encode(b"".join(cas[:5])).decode(), restarted))
    assert cas[3] not in kept and restarted in kept and cas[4] in kept
    assert base64.b64decode(merged_bundle("not base64!", cas[0])) == cas[0]
    assert (
        base64.b64decode(
            merged_bundle(base64.b64encode(generate_ca("old", days=0).cert_pem).decode(), cas[0])
        )
        == cas[0]
    )


async def test_a_swapped_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    first, second = Generated(), Generated()
    (tmp_path / "tls.crt").write_bytes(first.pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(first.pair.key_pem)
    files = CertDir(tmp_path)
    server = WebhookServer(
        InjectConfig(),
        namespace_lookup(lambda: None, None),
        server_context(files.load()),
        cert_dir=files,
        reload_interval=0.05,
    )
    await server.start("127.0.0.1:0")
    reloading = asyncio.create_task(server.reload_certificates())
    body = json.dumps(review(POD)).encode()
    try:
        assert (await post(server, first.client_context(), body))[0] == 200
        # The kubelet's way: a new directory swapped in, so the files are new inodes.
        for name, data in (("tls.crt", second.pair.cert_pem), ("tls.key", second.pair.key_pem)):
            (tmp_path / f".{name}").write_bytes(data)
            (tmp_path / f".{name}").replace(tmp_path / name)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert (await post(server, second.client_context(), body))[0] == 200
                break
            except aiohttp.ClientConnectorCertificateError:
                assert time.monotonic() < deadline, "the new certificate was never served"
                await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await post(server, first.client_context(), body)
    finally:
        reloading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloading
        await server.stop()


async def test_a_port_in_use_is_a_one_line_error() -> None:
    certs = Generated()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebhookServer(
            InjectConfig(), namespace_lookup(lambda: None, None), server_context(certs.pair)
        )
        with pytest.raises(
            WebhookError, match=f"cannot serve the webhook on 127.0.0.1:{port}: Address already in use$"
        ):
            await server.start(f"127.0.0.1:{port}")


# --- `gammaxds serve --webhook-address`, a real process ------------------------------------------------


def serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    manifests = tmp_path / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "namespaces.yaml").write_text(NAMESPACES)
    argv = [sys.executable, "-m", "gammaxds", "serve", "--manifests", str(manifests)]
    argv += ["--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_serve_with_a_webhook_port_in_use_exits_with_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = finish(serve(tmp_path, "--webhook-address", f"127.0.0.1:{port}"))
    assert code == 1 and "Traceback" not in err and "Exception ignored" not in err and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot serve the webhook on 127.0.0.1:{port}: Address already in use"], err
    assert err.splitlines()[-1] == errors[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--webhook-cert-dir", "/nonexistent"],
            "error: --webhook-cert-dir: cannot read /nonexistent/tls.crt",
        ),
        (["--inject-service-cidr", "nope"], "error: --inject-service-cidr: invalid service CIDR 'nope'"),
        (["--webhook-service", "gammaxds"], "error: --webhook-service: expected NAME.NAMESPACE"),
        (["--webhook-address", "nowhere"], "error: --webhook-address: expected HOST:PORT"),
        (
            ["--webhook-address", "127.0.0.1:99999"],
            "error: --webhook-address: expected HOST:PORT (port 0-65535)",
        ),
        (
            ["--webhook-address", "no.such.host.invalid:8443"],
            "error: cannot serve the webhook on no.such.host.invalid",
        ),
    ],
)
def test_serve_with_bad_webhook_flags_exits_with_one_error_line(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    if "--webhook-address" not in flags:
        flags = [*flags, "--webhook-address", "127.0.0.1:0"]
    code, _out, err = finish(serve(tmp_path, *flags))
    assert code == 1 and "Traceback" not in err and "Exception ignored" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), err


async def test_serve_answers_reviews_from_the_namespaces_of_its_manifests(tmp_path: Path) -> None:
    """The whole command: a certificate from --webhook-cert-dir (as a mounted Secret), the namespace check
    against the World of the manifests source, real HTTPS."""
    certs = Generated()
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "tls.crt").write_bytes(certs.pair.cert_pem)
    (secret / "tls.key").write_bytes(certs.pair.key_pem)
    proc = serve(tmp_path, "--webhook-address", "127.0.0.1:0", "--webhook-cert-dir", str(secret))
    try:
        assert proc.stdout is not None
        lines = [await asyncio.to_thread(proc.stdout.readline) for _ in range(2)]
        assert lines[0].startswith("gammaxds: xDS on "), lines
        assert lines[1].startswith("gammaxds: admission webhook on https://127.0.0.1:"), lines
        port = int(lines[1].rsplit(":", 1)[1].split("/")[0])
        server = WebhookServer.__new__(WebhookServer)
        server.port = port
        status, answer = await post(server, certs.client_context(), json.dumps(review(POD)).encode())
        assert status == 200 and patched(copy.deepcopy(POD), answer["response"]) == inject(POD).object
        status, answer = await post(
            server, certs.client_context(), json.dumps(review(POD, namespace="web")).encode()
        )
        assert status == 200 and "patch" not in answer["response"]
        status, _text = await post(server, certs.client_context(), b"garbage")
        assert status == 400
    finally:
        proc.terminate()
        code, _out, err = finish(proc)
    assert code == 0 and "Traceback" not in err, err


async def test_serve_wiring_generates_a_certificate_the_configuration_then_trusts(
    kube: FakeKube, api: client.ApiClient, tmp_path: Path
) -> None:
    """`serve --kubeconfig ... --webhook-address`'s path in-process: a CA generated at start, its bundle
    patched into the shipped configuration, and a handshake by the Service's name against that bundle."""
    from gammaxds.cli import build_parser
    from gammaxds.inject.serving import start_for_serve

    kube.apply(webhook_configuration())
    kube.apply(
        {"kind": "Namespace", "metadata": {"name": "store", "labels": {"gammaxds.io/inject": "enabled"}}}
    )
    flags = ["--webhook-address", "127.0.0.1:0", "--webhook-service", "gammaxds.gammaxds-system"]
    flags += ["--inject-image", "registry.example/gammaxds:1"]
    args = build_parser().parse_args(["serve", "--kubeconfig", str(tmp_path / "kubeconfig"), *flags])
    running = await start_for_serve(args, lambda: None, api)
    tasks = [asyncio.create_task(coro) for coro in running.tasks.values()]
    try:
        assert running.keeper is not None and running.url.startswith("https://127.0.0.1:")
        await asyncio.wait_for(running.keeper.in_place.wait(), 10)
        context = ssl.create_default_context(cadata=bundle_of(kube).decode())
        status, answer = await post(running.server, context, json.dumps(review(POD)).encode())
        assert status == 200
        result = patched(copy.deepcopy(POD), answer["response"])
        assert result["spec"]["initContainers"][0]["image"] == "registry.example/gammaxds:1"
        # The namespace came from the API server (no World here).
        assert any(r.path == "/api/v1/namespaces/store" for r in kube.requests)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await running.server.stop()
