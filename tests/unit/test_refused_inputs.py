"""Inputs that are not in force, as an operator sees them: `/debug/status` of a running `gammaxds serve` and the
`status` that `gammaxds translate` prints say the same thing about the same files (unknown fields, duplicates),
and an edit that breaks a working route leaves the previous version serving, with an error that says so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GAMMAXDS = [sys.executable, "-m", "gammaxds"]

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
"""


def route(name: str, path: str, backend_key: str = "backendRefs") -> str:
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: app}}
spec:
  parentRefs: [{{group: "", kind: Service, name: echo}}]
  rules: [{{matches: [{{path: {{value: {path}}}}}], {backend_key}: [{{name: echo, port: 80}}]}}]
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "a-service.yaml").write_text(SERVICE)
    (d / "b-routes.yaml").write_text(route("api", "/api") + "---\n" + route("typo", "/typo", "backendRef"))
    (d / "c-copy.yaml").write_text(route("api", "/api-v2"))  # the same route again: this copy wins
    return d


class Serve:
    def __init__(self, manifests: Path) -> None:
        self.proc = subprocess.Popen(
            [*GAMMAXDS, "serve", "--manifests", str(manifests),
             "--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.admin = line.rsplit("admin on ", 1)[1].strip()

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.admin}/debug/status", timeout=5) as resp:
            return json.load(resp)  # type: ignore[no-any-return]

    def until(self, condition: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if condition(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last status: {status}")
            time.sleep(0.05)


@pytest.fixture
def serve(manifests: Path) -> Iterator[Serve]:
    server = Serve(manifests)
    try:
        yield server
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(15)


def translate(manifests: Path) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [*GAMMAXDS, "translate", str(manifests), "--output", "json", "--namespace", "app"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)["status"], done.stderr


def test_serve_and_translate_report_the_same_refused_inputs(manifests: Path, serve: Serve) -> None:
    code, offline, stderr = translate(manifests)
    online = serve.until(lambda s: s["objects"], "the routes to be translated")
    assert online["errors"] == offline["errors"]
    assert online["objects"] == offline["objects"]
    by_name = {e["name"]: e for e in offline["errors"]}
    assert by_name["typo"]["field"] == "spec.rules[0].backendRef"
    assert by_name["typo"]["reason"] == "unknown field (did you mean 'backendRefs'?)"
    assert (by_name["typo"]["file"], by_name["typo"]["document"]) == (str(manifests / "b-routes.yaml"), 2)
    assert by_name["api"]["inForce"] == "other copy"
    assert by_name["api"]["file"] == str(manifests / "b-routes.yaml")
    assert str(manifests / "c-copy.yaml") in by_name["api"]["reason"]
    assert [o["name"] for o in offline["objects"]] == ["api"]  # typo is refused, not Accepted
    assert code == 1 and "error: HTTPRoute app/typo: spec.rules[0].backendRef: unknown field" in stderr
    assert "Traceback" not in stderr


def test_a_broken_edit_says_the_previous_version_stays_in_force(manifests: Path, serve: Serve) -> None:
    serve.until(lambda s: s["objects"], "the routes to be translated")
    (manifests / "c-copy.yaml").write_text(route("api", "api-without-slash"))
    status = serve.until(
        lambda s: any(e["name"] == "api" and e["inForce"] == "previous version" for e in s["errors"]),
        "the broken edit to be reported",
    )
    (error,) = [e for e in status["errors"] if e["inForce"] == "previous version"]
    assert (error["file"], error["field"]) == (
        str(manifests / "c-copy.yaml"),
        "spec.rules[0].matches[0].path",
    )
    (api,) = [o for o in status["objects"] if o["name"] == "api"]  # still there, still Accepted
    conditions = {c["type"]: c["status"] for c in api["status"]["parents"][0]["conditions"]}
    assert conditions == {"Accepted": "True", "ResolvedRefs": "True"}
    # Offline there is no earlier version: translate says nothing of it is in force.
    _code, offline, _stderr = translate(manifests)
    (error,) = [e for e in offline["errors"] if e["file"].endswith("c-copy.yaml")]
    assert error["inForce"] == "none"


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Service\nmetadata: {name: x\n  - broken: [")
    done = subprocess.run(
        [*GAMMAXDS, "translate", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith(f"error: {bad}: cannot parse YAML: line 3, column ")
    assert "<unicode string>" not in done.stderr and done.returncode == 1
