"""The sidecar bootstrap: what Envoy itself accepts, and the status table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gammaxds.bootstrap import render_bootstrap, status_table

ENVOY = Path(sys.executable).parent / "envoy"


def envoy_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("node", "namespace", "xds", "capture", "delta"),
    [
        ("shop-1", "shop", "127.0.0.1:18000", "transparent", True),
        ("shop-1", "shop", "unix:/tmp/gammaxds.sock", "proxy", False),
        ("shop-1", "shop", "gammaxds.gammaxds-system.svc:18000", "transparent", True),  # a Service name
        ("n", "y", "127.0.0.1:18000", "transparent", True),  # names YAML 1.1 reads as booleans
    ],
)
def test_envoy_accepts_the_bootstrap(
    tmp_path: Path, node: str, namespace: str, xds: str, capture: str, delta: bool
) -> None:
    text = render_bootstrap(
        node, namespace, xds_address=xds, capture=capture, outbound_address="127.0.0.1:16001", delta=delta
    )
    config = yaml.safe_load(text)
    assert config["node"]["id"] == node and config["node"]["cluster"] == namespace
    assert config["node"]["metadata"] == {
        "namespace": namespace,
        "capture": capture,
        "outbound_address": "127.0.0.1:16001",
    }
    assert config["dynamic_resources"]["ads_config"]["api_type"] == ("DELTA_GRPC" if delta else "GRPC")
    path = tmp_path / "bootstrap.yaml"
    path.write_text(text)
    result = envoy_validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    # What Envoy parsed is what was meant: the node id as a string, not YAML's `false` for "n".
    assert "id: false" not in text and "cluster: true" not in text


def test_bootstrap_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="namespace"):
        render_bootstrap("x", "")


def test_status_table_shows_versions_and_errors() -> None:
    proxies = [
        {
            "node_id": "shop-1",
            "namespace": "shop",
            "capture": "proxy",
            "protocol": "delta",
            "types": {
                "Cluster": {"sent_version": "abcdef0123", "acked_version": "abcdef0123", "error": None},
                "Listener": {"sent_version": "99", "acked_version": "11", "error": "bad filter"},
            },
        }
    ]
    table = status_table(proxies)
    lines = table.splitlines()
    assert lines[0].split() == ["NODE", "NAMESPACE", "CAPTURE", "XDS", "CDS", "EDS", "LDS", "RDS", "ERROR"]
    assert "synced abcdef01" in lines[1] and "LDS: bad filter" in lines[1]
    assert status_table([]) == "no sidecars connected\n"
