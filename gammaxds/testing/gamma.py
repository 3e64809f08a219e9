"""GAMMA end-to-end building blocks on a namespace mesh: the control plane in a pod, Envoy sidecars from
`gammaxds bootstrap`, Kubernetes manifests written atomically into the watched directory, and bounded waits.

    with Mesh() as mesh:
        cp = start_control_plane(mesh.add_pod("xds"))
        cp.write("base", [service("echo", "app", mesh.service_ip(10), [port("http", 80, 8080)]), ...])
        client = mesh.add_pod("client")
        start_sidecar(client, "a", cp.xds_address)        # bootstrap, Envoy ready, capture applied
        client.http(f"http://{mesh.service_ip(10)}/", headers={"Host": "echo"})

Everything started here runs as a pod process, so `Mesh.close()` stops it and `Mesh.logs()` shows its output.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..capture import DEFAULT_PROXY_UID
from .mesh import HttpResult, HttpSession, MeshError, Pod, Proc, listening_ports

T = TypeVar("T")

# `python -c` instead of the console script: works from any checkout whose package is importable.
GAMMAXDS = [sys.executable, "-c", "from gammaxds.cli import main; main()"]
CONTROL_PLANE_ADMIN_PORT = 9901
SIDECAR_ADMIN_PORT = 15000


# --- bounded waits ------------------------------------------------------------------------------------------


def eventually(
    probe: Callable[[], T], timeout: float, interval: float = 0.05, what: str = ""
) -> tuple[float, T]:
    """Call `probe` until it returns something truthy; return (seconds it took, that value).

    An exception from the probe counts as "not yet". After `timeout` seconds, AssertionError with the last
    value (or exception), so a test failure says what was seen instead of what was hoped for.
    """
    start = time.monotonic()
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return time.monotonic() - start, last
        except Exception as exc:  # a probe failing is "not yet"; reported on timeout
            last = exc
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s; last: {last!r}")
        time.sleep(interval)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """`eventually` for asyncio tests: poll `condition` (every 10 ms, the event loop running meanwhile) until it
    holds; fail, naming `what`, if it does not within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# --- manifests ------------------------------------------------------------------------------------------------


def service_port(name: str, port: int, target_port: int | str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, **extra}
    if target_port is not None:
        out["targetPort"] = target_port
    return out


def service(name: str, namespace: str, cluster_ip: str, ports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "ports": [dict(p) for p in ports]},
    }


def endpoint_slice(
    name: str,
    namespace: str,
    service_name: str,
    endpoints: Sequence[str | Mapping[str, Any]],
    ports: Mapping[str, int],
) -> dict[str, Any]:
    """An IPv4 EndpointSlice of `service_name`; `endpoints` are addresses (ready) or full endpoint objects;
    `ports` maps the slice's port names (= the Service's port names) to the pods' ports."""
    eps = [{"addresses": [e]} if isinstance(e, str) else dict(e) for e in endpoints]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": n, "port": p} for n, p in ports.items()],
        "endpoints": eps,
    }


def parent(
    name: str, namespace: str | None = None, port: int | None = None, section: str | None = None
) -> dict[str, Any]:
    """A GAMMA parentRef: a Service (group "" and kind Service must be explicit)."""
    out: dict[str, Any] = {"group": "", "kind": "Service", "name": name}
    for key, value in (("namespace", namespace), ("port", port), ("sectionName", section)):
        if value is not None:
            out[key] = value
    return out


def backend(
    name: str, port: int = 80, weight: int | None = None, namespace: str | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, **extra}
    if weight is not None:
        out["weight"] = weight
    if namespace is not None:
        out["namespace"] = namespace
    return out


def http_route(
    name: str,
    namespace: str,
    parents: Sequence[Mapping[str, Any]],
    rules: Sequence[Mapping[str, Any]],
    created: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {"parentRefs": [dict(p) for p in parents], "rules": [dict(r) for r in rules]},
    }


def grpc_route(
    name: str,
    namespace: str,
    parents: Sequence[Mapping[str, Any]],
    rules: Sequence[Mapping[str, Any]],
    created: str | None = None,
) -> dict[str, Any]:
    """A GRPCRoute (gateway.networking.k8s.io/v1), built as `http_route` builds an HTTPRoute."""
    out = http_route(name, namespace, parents, rules, created)
    out["kind"] = "GRPCRoute"
    return out


def grpc_method(
    service: str | None = None,
    method: str | None = None,
    regex: bool = False,
    headers: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A GRPCRouteMatch on service and/or method (Exact, or RegularExpression with `regex`), and headers."""
    out: dict[str, Any] = {}
    if service is not None or method is not None:
        out["method"] = {"type": "RegularExpression" if regex else "Exact"}
        for key, value in (("service", service), ("method", method)):
            if value is not None:
                out["method"][key] = value
    if headers:
        out["headers"] = [dict(h) for h in headers]
    return out


# --- the control plane ----------------------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """`gammaxds serve` running in a pod, watching `manifests`; sidecars reach it at `xds_address`."""

    pod: Pod
    proc: Proc
    manifests: Path
    xds_address: str
    admin_port: int

    def path(self, name: str) -> Path:
        return self.manifests / f"{name}.yaml"

    def write(self, name: str, docs: Sequence[Mapping[str, Any]]) -> Path:
        """Create or replace `<name>.yaml` atomically (a reader never sees half a file)."""
        target = self.path(name)
        staging = self.pod.mesh.tmpdir / f".{name}.{os.getpid()}.staging"
        staging.write_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False))
        os.replace(staging, target)
        return target

    def remove(self, name: str) -> bool:
        """Delete `<name>.yaml`; False when it was not there."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def admin(self, path: str, timeout: float = 5.0) -> HttpResult:
        return self.pod.http(f"http://127.0.0.1:{self.admin_port}{path}", timeout=timeout)

    def status(self) -> Any:
        """`/debug/status`: route conditions and input errors."""
        return self.admin("/debug/status").json()


def start_control_plane(
    pod: Pod,
    manifests: Path | None = None,
    admin_port: int = CONTROL_PLANE_ADMIN_PORT,
    socket_name: str = "xds",
    timeout: float = 15.0,
    xds_port: int | None = None,
) -> ControlPlane:
    """Run `gammaxds serve` in `pod` on the mesh's Unix socket (or, with `xds_port`, on TCP at the pod's
    address, as in a cluster); wait until its admin says ready."""
    mesh = pod.mesh
    manifests = manifests or mesh.tmpdir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    xds = mesh.unix_address(socket_name) if xds_port is None else f"{pod.ip}:{xds_port}"
    argv = [
        *GAMMAXDS,
        "serve",
        "--manifests",
        str(manifests),
        "--xds-address",
        xds,
        "--admin-address",
        f"127.0.0.1:{admin_port}",
    ]
    proc = pod.popen(argv, name="gammaxds-serve")
    cp = ControlPlane(pod, proc, manifests, xds, admin_port)
    pod.wait_listening(admin_port, proc, timeout)

    def ready() -> bool:
        if not proc.alive():
            raise MeshError(f"gammaxds serve exited ({proc.popen.returncode}):\n{proc.output()[-4000:]}")
        listening = mesh.socket_path(socket_name).exists() if xds_port is None else xds_port in pod_ports(pod)
        return listening and cp.admin("/healthz", timeout=2).status == 200

    eventually(ready, timeout, what="control plane up")
    return cp


def bootstrap(
    node_id: str,
    namespace: str,
    xds_address: str,
    admin_port: int = SIDECAR_ADMIN_PORT,
    extra: Sequence[str] = (),
) -> str:
    """What `gammaxds bootstrap --capture transparent` prints for one sidecar."""
    argv = [
        *GAMMAXDS,
        "bootstrap",
        "--node-id",
        node_id,
        "--namespace",
        namespace,
        "--xds-address",
        xds_address,
        "--capture",
        "transparent",
        "--admin-address",
        f"127.0.0.1:{admin_port}",
        *extra,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise MeshError(f"gammaxds bootstrap failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def start_sidecar(
    pod: Pod,
    namespace: str,
    xds_address: str,
    admin_port: int = SIDECAR_ADMIN_PORT,
    capture: bool = True,
    extra: Sequence[str] = (),
    timeout: float = 30.0,
) -> Proc:
    """A transparent sidecar in `pod` (client namespace `namespace`): Envoy from `gammaxds bootstrap`, ready
    (initial xDS fetch done), then capture applied."""
    config = pod.mesh.tmpdir / f"{pod.name}.bootstrap.yaml"
    config.write_text(bootstrap(pod.name, namespace, xds_address, admin_port, extra))
    proc = pod.start_envoy(config, admin_port=admin_port, timeout=timeout)
    if capture:
        pod.apply_capture()
    return proc


def start_injected_sidecar(
    pod: Pod,
    namespace: str,
    xds_address: str,
    *,
    inbound: bool = False,
    proxy_uid: int | None = DEFAULT_PROXY_UID,
    wait_ready: bool = True,
    admin_port: int = SIDECAR_ADMIN_PORT,
    timeout: float = 30.0,
) -> Proc:
    """A sidecar as `gammaxds inject` sets one up in a cluster: capture applied first (the init container),
    then Envoy started as the proxy uid, so even its first connection to the control plane crosses the
    capture rules. `proxy_uid=None` applies capture without the uid exclusion (to show what it prevents);
    Envoy still runs as the usual proxy uid."""
    pod.apply_capture(proxy_uid=proxy_uid, inbound=inbound)
    config = pod.mesh.tmpdir / f"{pod.name}.bootstrap.yaml"
    config.write_text(bootstrap(pod.name, namespace, xds_address, admin_port))
    return pod.start_envoy(
        config, admin_port=admin_port, timeout=timeout, wait_ready=wait_ready, uid=DEFAULT_PROXY_UID
    )


def pod_ports(pod: Pod) -> set[int]:
    """TCP ports some process of the pod listens on."""
    return {port for proc in pod.procs if proc.alive() for port in listening_ports(proc.pid)}


# --- what a sidecar holds -------------------------------------------------------------------------------------


def route_entries(client: Pod | HttpSession, admin_port: int = SIDECAR_ADMIN_PORT) -> dict[str, list[str]]:
    """{route configuration name: [route entry names]} as the sidecar's Envoy holds them now (its admin's
    config dump): `default` is the no-route entry, `httproute/<ns>/<name>/rule/<r>/match/<m>` come from
    HTTPRoutes."""
    resp = client.http(f"http://127.0.0.1:{admin_port}/config_dump?resource=dynamic_route_configs")
    if resp.status != 200:
        raise MeshError(f"config dump: {resp.status} {resp.error or resp.body[:200]}")
    out: dict[str, list[str]] = {}
    for config in resp.json().get("configs", []):
        rc = config.get("route_config", {})
        out[rc.get("name", "")] = [
            r.get("name", "") for vh in rc.get("virtual_hosts", []) for r in vh.get("routes", [])
        ]
    return out


def envoy_stats(
    client: Pod | HttpSession, prefix: str = "", admin_port: int = SIDECAR_ADMIN_PORT
) -> dict[str, str]:
    """Envoy's counters and gauges whose names contain `prefix` (admin `/stats?filter=`)."""
    query = f"?filter={prefix}" if prefix else ""
    resp = client.http(f"http://127.0.0.1:{admin_port}/stats{query}")
    return dict(line.split(": ", 1) for line in resp.body.splitlines() if ": " in line)


def dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
