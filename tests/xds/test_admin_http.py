"""The admin server as HTTP: the index, methods, addresses, exclusive ports, the dashboard's files and graph."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gammaxds.admin import AdminServer, start_admin_server
from gammaxds.admin.index import ENDPOINTS, prefers_html
from gammaxds.model import parse_text
from gammaxds.translate import Translation, Translator
from gammaxds.xds import SnapshotCache

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
MESH = """
apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-to-b, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: a, port: 80}]
  rules: [{backendRefs: [{name: b, port: 80}]}]
"""


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` as is and read the answer to EOF (the server closes after each response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


async def request(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    lines = [f"{method} {path} HTTP/1.1", "Host: admin", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return await exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.fixture
async def admin(cache: SnapshotCache) -> AsyncIterator[AdminServer]:
    translation = Translator().load(parse_text(MESH).world())
    current: list[Translation | None] = [translation]
    server = await start_admin_server("127.0.0.1:0", cache, translation_fn=lambda: current[0])
    yield server
    await server.stop()


async def test_the_index_lists_every_endpoint_as_text_for_curl(admin: AdminServer) -> None:
    status, headers, body = await request(admin.port, "/", headers={"Accept": "*/*"})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    for endpoint in ENDPOINTS:
        assert any(line.startswith(endpoint.usage) and endpoint.shows in line for line in text.splitlines())


async def test_the_index_is_a_page_of_links_for_a_browser(admin: AdminServer) -> None:
    status, headers, body = await request(admin.port, "/", headers={"Accept": BROWSER_ACCEPT})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert '<a href="debug/status">' in body.decode() and '<a href="ui">' in body.decode()


def test_accept_negotiation_prefers_html_only_when_the_client_ranks_it_higher() -> None:
    assert prefers_html(BROWSER_ACCEPT)
    assert prefers_html("text/html")
    assert not prefers_html("*/*")
    assert not prefers_html("")
    assert not prefers_html("text/plain, text/html;q=0.5")
    assert not prefers_html("text/html;q=oops")


async def test_head_answers_headers_only_and_other_methods_are_405(admin: AdminServer) -> None:
    status, headers, body = await request(admin.port, "/healthz", method="HEAD")
    assert (status, body) == (200, b"") and headers["content-length"] == "3"
    for method in ("POST", "PUT", "DELETE"):
        status, headers, body = await request(admin.port, "/nowhere", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD", method


async def test_a_malformed_request_is_a_400_without_a_traceback(admin: AdminServer) -> None:
    status, _, body = await exchange(admin.port, b"GET /healthz HTTP/1.1\r\n\r\n")  # HTTP/1.1 needs Host
    assert status == 400 and b"Host" in body and b"Traceback" not in body
    status, _, _ = await exchange(admin.port, b"\x16\x03\x01 not http\r\n\r\n")
    assert status == 400
    status, _, body = await request(admin.port, "/debug/config?capture=proxy")
    assert status == 400 and "namespace is required" in json.loads(body)["error"]
    status, _, body = await request(admin.port, "/debug/config?namespace=a&capture=sideways")
    assert status == 400 and "capture must be one of" in json.loads(body)["error"]


async def test_a_second_server_on_the_same_port_fails(admin: AdminServer, cache: SnapshotCache) -> None:
    with pytest.raises(OSError):
        await start_admin_server(f"127.0.0.1:{admin.port}", cache)
    assert (await request(admin.port, "/healthz"))[0] == 200  # the first one is unharmed


async def test_the_port_is_not_shared_with_so_reuseport(admin: AdminServer) -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", admin.port))


async def test_a_unix_socket_address(cache: SnapshotCache, tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    path.write_text("a stale socket file from an earlier run")
    server = await start_admin_server(f"unix:{path}", cache)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok\n")
        assert server.port == 0
    finally:
        await server.stop()


async def test_metrics_speak_the_prometheus_text_format_and_openmetrics_on_request(
    admin: AdminServer,
) -> None:
    status, headers, body = await request(admin.port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE gammaxds_pushes_total counter" in body
    _, headers, body = await request(
        admin.port, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert headers["content-type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")


async def test_the_graph_of_the_current_translation(admin: AdminServer) -> None:
    status, headers, body = await request(admin.port, "/debug/graph")
    assert status == 200 and headers["content-type"] == "application/json"
    graph = json.loads(body)
    assert [s["id"] for s in graph["services"]] == ["default/a", "default/b"]
    [edge] = graph["edges"]["*"]
    assert (edge["from"], edge["to"], edge["route"], edge["valid"]) == (
        "default/a",
        "default/b",
        "HTTPRoute default/a-to-b",
        True,
    )


async def test_no_graph_before_a_mesh_is_loaded(cache: SnapshotCache) -> None:
    for translation_fn in (None, lambda: None):
        server = await start_admin_server("127.0.0.1:0", cache, translation_fn=translation_fn)
        try:
            status, _, body = await request(server.port, "/debug/graph")
            assert status == 503 and json.loads(body) == {"error": "no mesh loaded yet"}
        finally:
            await server.stop()


async def test_the_dashboard_is_served_from_the_package(admin: AdminServer) -> None:
    status, headers, _ = await request(admin.port, "/ui")
    assert status == 302 and headers["location"] == "ui/"
    status, headers, body = await request(admin.port, "/ui/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'src="app.js"' in body and b'href="style.css"' in body
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, body = await request(admin.port, f"/ui/{name}")
        assert status == 200 and headers["content-type"].startswith(kind) and body, name
    for path in ("/ui/nothing.js", "/ui/../http.py", "/ui/%2e%2e/http.py"):
        assert (await request(admin.port, path))[0] == 404, path


def test_the_dashboard_loads_nothing_from_outside() -> None:
    from gammaxds.admin.server import _load_ui

    for name, content in _load_ui().items():
        text = content.decode()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, (
            name
        )
        assert "//cdn" not in text, name


def test_the_readme_lists_the_endpoints_the_index_lists() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Dashboard\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    listed = [(cells[0].strip("| `").replace("\\|", "|"), cells[1].rstrip(" |")) for cells in rows]
    assert listed == [(e.usage, e.shows) for e in ENDPOINTS]


async def test_a_failing_endpoint_is_a_plain_500(
    cache: SnapshotCache, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("status exploded")

    server = await start_admin_server("127.0.0.1:0", cache, broken)
    try:
        status, _, body = await request(server.port, "/debug/status")
    finally:
        await server.stop()
    assert (status, body) == (500, b"internal error\n")
    assert "status exploded" in caplog.text  # the traceback is in the log, for the operator
