"""The harness's in-pod HTTP clients: a long-lived session (`Pod.session`) and one-process batches
(`Pod.http_many`), which the GAMMA tests use to send hundreds of requests quickly."""

from __future__ import annotations

import pytest

from gammaxds.testing.mesh import Mesh, MeshError

pytestmark = pytest.mark.usefixtures("mesh_supported")


def test_session_and_batches(mesh: Mesh) -> None:
    server, client = mesh.add_pod("echo"), mesh.add_pod("client")
    server.start_echo("echo", version="v3")
    url = f"http://{server.ip}:8080"
    with client.session() as session:
        resp = session.http(
            f"{url}/a?x=1", method="POST", headers={"Host": "echo.app", "x-t": "1"}, body="hi"
        )
        assert resp.status == 200, resp.error
        body = resp.json()
        assert (body["method"], body["path"], body["host"], body["headers"]["x-t"]) == (
            "POST",
            "/a?x=1",
            "echo.app",
            "1",
        )
        assert resp.header("X-Served-By") == "echo"
        assert session.http(f"{url}/?status=418").status == 418
        failed = session.http(f"http://{mesh.service_ip(10)}/", timeout=2)  # no capture: unreachable
        assert failed.status == 0 and failed.error
        tally = session.many(f"{url}/?status=201", 5, fields=("pod", "version"))
        assert (tally.counts, tally.total, tally.count(201, "echo"), tally.by(2)) == (
            {(201, "echo", "v3"): 5},
            5,
            5,
            {"v3": 5},
        )
        refused = session.many(f"http://{server.ip}:9/", 3, timeout=1)
        assert refused.counts == {(0,): 3} and len(refused.errors) == 3
    assert not session.proc.alive()
    with pytest.raises(MeshError):
        session.http(url)
    tally = client.http_many(f"{url}/?status=503", 4, fields=("service",))
    assert tally.counts == {(503, "echo"): 4} and not tally.errors
