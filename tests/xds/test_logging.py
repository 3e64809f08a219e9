"""What an operator reads in the log while sidecars connect, acknowledge and reject config: one info line per
stream connected and disconnected, per push and per ACK, a warning per NACK, each with the event's fields;
and `gammaxds serve --log-format json` writing exactly one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xds_views as v
from ads_client import AdsClient, make_node
from xds_harness import Views
from xds_probe import probed

from gammaxds.testing.gamma import until
from gammaxds.translate.view import CLUSTER_TYPE, LISTENER_TYPE, ViewKey

Connect = Callable[..., AdsClient]
ROOT = Path(__file__).resolve().parents[2]
STREAM_LOGGER = "gammaxds.xds.stream"


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def version_of(response: Any, delta: bool) -> str:
    return response.system_version_info if delta else response.version_info


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_sidecar_connecting_acking_nacking_and_leaving_is_logged(
    views: Views, connect: Connect, caplog: pytest.LogCaptureFixture, delta: bool
) -> None:
    caplog.set_level(logging.INFO, STREAM_LOGGER)
    views.set(probed(v.view()))
    client = connect(delta=delta, node=make_node("web-client", ViewKey("web", "proxy")))
    if delta:
        client.delta_request(CLUSTER_TYPE)
    else:
        client.request(CLUSTER_TYPE)
    cds = await client.recv()
    client.ack(cds)
    if delta:
        client.delta_request(LISTENER_TYPE)
    else:
        client.request(LISTENER_TYPE)
    lds = await client.recv()
    client.ack(lds, error="listener out: bad address")
    await until(lambda: bool(events(caplog, "nack")), "the NACK's log line")

    (connected,) = events(caplog, "stream.connect")
    assert connected.levelno == logging.INFO
    assert (connected.node, connected.namespace, connected.capture) == ("web-client", "web", "proxy")
    assert connected.protocol == ("delta" if delta else "sotw")
    assert connected.peer.startswith("ipv4:127.0.0.1:")
    assert connected.getMessage().startswith(f"stream {connected.stream} connected: node web-client, ")
    assert ("delta ADS" if delta else "SotW ADS") in connected.getMessage()

    pushes = events(caplog, "push")
    assert [(p.type, p.version, p.node) for p in pushes] == [
        ("Cluster", version_of(cds, delta), "web-client"),
        ("Listener", version_of(lds, delta), "web-client"),
    ]
    assert pushes[0].resources == len(cds.resources) > 0 and pushes[0].levelno == logging.INFO

    (acked,) = events(caplog, "ack")
    assert (acked.type, acked.version, acked.node) == ("Cluster", version_of(cds, delta), "web-client")
    assert acked.levelno == logging.INFO
    assert (
        acked.getMessage()
        == f"web-client acknowledged Cluster version {acked.version} (stream {acked.stream})"
    )

    (nacked,) = events(caplog, "nack")
    assert (nacked.type, nacked.version, nacked.node) == ("Listener", version_of(lds, delta), "web-client")
    assert nacked.error == "listener out: bad address" and nacked.levelno == logging.WARNING
    assert nacked.getMessage().endswith(": listener out: bad address")

    await client.close()
    await until(lambda: bool(events(caplog, "stream.disconnect")), "the disconnect's log line")
    (gone,) = events(caplog, "stream.disconnect")
    assert gone.stream == connected.stream and gone.node == "web-client"
    assert gone.levelno == logging.INFO and gone.duration_s >= 0
    assert gone.reason  # the client went away: said in words, e.g. "cancelled: the client went away ..."
    assert f"after {gone.duration_s:.1f} s: {gone.reason}" in gone.getMessage()
    # Requests themselves stay at debug.
    assert not events(caplog, "request")


async def test_a_refused_node_is_logged_with_the_reason(
    views: Views, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, STREAM_LOGGER)
    views.set(probed(v.view()))
    client = connect(node=make_node("anonymous", key=None))
    client.request(CLUSTER_TYPE)
    await until(lambda: bool(events(caplog, "stream.refused")), "the refusal's log line")
    (refused,) = events(caplog, "stream.refused")
    assert refused.node == "anonymous" and "no metadata.namespace" in refused.error
    assert not events(caplog, "stream.connect")


async def test_requests_are_logged_at_debug(
    views: Views, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, STREAM_LOGGER)
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    await until(lambda: len(events(caplog, "request")) == 2, "both requests' debug lines")
    assert {r.levelno for r in events(caplog, "request")} == {logging.DEBUG}


BAD_ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: typo, namespace: store}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules: [{backendRef: [{name: reviews-v1, port: 8080}]}]
"""


def test_serve_log_format_json_writes_one_object_per_line(tmp_path: Path) -> None:
    """A real `gammaxds serve --log-format json`, a real ADS client: every stderr line is a JSON object
    with time, level, logger and message, and the events carry their fields."""
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples", manifests)
    (manifests / "typo.yaml").write_text(BAD_ROUTE)
    serve = subprocess.Popen(
        [sys.executable, "-m", "gammaxds", "serve", "--manifests", str(manifests),
         "--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0", "--log-format", "json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert "xDS on " in line, line
        target = line.split("xDS on ", 1)[1].split(",", 1)[0]
        asyncio.run(_connect_ack_nack(target))
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=20)
    assert serve.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only ours: the whole stream is JSON lines
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert record["time"].endswith("Z") and "T" in record["time"], line
        records.append(record)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_event.setdefault(record.get("event", ""), []).append(record)

    (world, *_) = by_event["world"]
    assert world["level"] == "INFO" and world["objects"] > 0 and world["refused"] == 1
    assert world["message"] == f"World loaded: {world['objects']} objects in force, 1 refused"
    (connected,) = by_event["stream.connect"]
    assert connected == {**connected, "node": "json-client", "namespace": "web", "capture": "proxy",
                         "protocol": "delta", "level": "INFO", "logger": STREAM_LOGGER}  # fmt: skip
    pushed = {p["type"]: p for p in by_event["push"]}
    assert pushed["Cluster"]["resources"] > 0 and pushed["Cluster"]["node"] == "json-client"
    (acked,) = by_event["ack"]
    assert (acked["type"], acked["version"]) == ("Cluster", pushed["Cluster"]["version"])
    (nacked,) = by_event["nack"]
    assert (nacked["type"], nacked["version"], nacked["error"]) == (
        "Listener", pushed["Listener"]["version"], "no thanks",
    )  # fmt: skip
    assert nacked["level"] == "WARNING"
    (gone,) = by_event["stream.disconnect"]
    assert gone["node"] == "json-client" and gone["reason"] and gone["duration_s"] >= 0


async def _connect_ack_nack(target: str) -> None:
    client = AdsClient(target, delta=True, node=make_node("json-client", ViewKey("web", "proxy")))
    try:
        client.delta_request(CLUSTER_TYPE)
        client.ack(await client.recv(timeout=10))
        client.delta_request(LISTENER_TYPE)
        client.ack(await client.recv(timeout=10), error="no thanks")
        await asyncio.sleep(0.3)  # the NACK reaches the server before the stream closes
    finally:
        await client.close()
    await asyncio.sleep(0.3)  # and the disconnect is logged before the server stops
