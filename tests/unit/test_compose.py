"""compose/: the docker-compose demo, checked without a Docker engine.

- the compose file is valid against the Compose Specification JSON schema (the copy `check-jsonschema` ships),
  and, when `compose-spec` is installed, parses with that typed Compose parser too;
- it is self-consistent: images are built here or are the pinned Envoy image, mounts exist, `network_mode` and
  `depends_on` name services, every pod has its capture init step, sidecar and app, wired as documented;
- it agrees with compose/manifests (static IPs = EndpointSlice addresses, Service CIDR, extra_hosts = cluster
  IPs) and with envoy-configs/ (each sidecar's bootstrap);
- the manifests translate cleanly and real Envoy accepts each sidecar's view;
- a rehearsal runs the whole mesh as compose describes it, but in network namespaces instead of containers,
  with the same commands, and the tour must pass (skipped where namespaces cannot be made).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.resources
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gammaxds import capture
from gammaxds.cli import build_parser, main
from gammaxds.commands import cmd_bootstrap
from gammaxds.envoycheck import validate
from gammaxds.model import load_paths
from gammaxds.translate import Translator
from gammaxds.translate.view import ViewKey

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
MANIFESTS = COMPOSE_DIR / "manifests"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENVOY = Path(sys.executable).parent / "envoy"
ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"
LOCAL_IMAGE = "gammaxds-demo:local"
NETWORK = "mesh"
CONTROL_PLANE = "controlplane"


# --- reading the compose file ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and `<<` merge keys, as Compose does


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def pods_of(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Services that hold a pod's network namespace: they have a static IP and something joins them."""
    joined = {s.get("network_mode", "").removeprefix("service:") for s in services.values()}
    return {name: s for name, s in services.items() if name in joined}


def static_ip(service: dict[str, Any]) -> str:
    return service["networks"][NETWORK]["ipv4_address"]


def option(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def service_cidr(services: dict[str, dict[str, Any]]) -> ipaddress.IPv4Network:
    cidrs = {option(s["command"], "--service-cidr") for n, s in services.items() if n.endswith("-capture")}
    assert len(cidrs) == 1, f"every pod must capture the same Service CIDR, got {cidrs}"
    return ipaddress.IPv4Network(cidrs.pop())


def bootstrap_of(sidecar: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    (mount,) = [v for v in sidecar["volumes"] if v.split(":")[1] == "/etc/envoy/envoy.yaml"]
    path = (COMPOSE_DIR / mount.split(":")[0]).resolve()
    return path, yaml.safe_load(path.read_text())


def namespace_of(services: dict[str, dict[str, Any]], pod: str) -> str:
    return bootstrap_of(services[f"{pod}-sidecar"])[1]["node"]["metadata"]["namespace"]


def manifests(kind: str) -> list[dict[str, Any]]:
    """The raw objects of one kind in compose/manifests (targetRef and all, as written)."""
    docs = (d for f in sorted(MANIFESTS.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d)
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def world() -> Any:
    loaded = load_paths([str(MANIFESTS)])
    assert not loaded.errors, loaded.errors
    return loaded.world()


# --- the Compose Specification --------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, as vendored by check-jsonschema (`vendor.compose-spec`)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc))


def test_compose_file_validates_against_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    assert compose_schema()["title"] == "Compose Specification"
    assert schema_errors(compose) == []


def test_the_schema_check_catches_mistakes(compose: dict[str, Any]) -> None:
    typo = copy.deepcopy(compose)
    typo["services"]["tour"]["netwrk_mode"] = typo["services"]["tour"].pop("network_mode")
    assert any("netwrk_mode" in e for e in schema_errors(typo))
    condition = copy.deepcopy(compose)
    condition["services"]["tour"]["depends_on"][CONTROL_PLANE]["condition"] = "service_ready"
    assert schema_errors(condition)


def test_compose_spec_parser_accepts_it(compose: dict[str, Any]) -> None:
    compose_spec = pytest.importorskip("compose_spec", reason="pip install compose-spec for a typed parse")
    # The typed parser does not expand YAML merge keys; Compose does, and so did the YAML loader here.
    parsed = compose_spec.PyCompose.from_json(json.dumps(compose))
    assert sorted(parsed.service_names()) == sorted(compose["services"])
    bad = copy.deepcopy(compose)
    bad["services"]["web-client"]["networks"][NETWORK]["ipv4_address"] = "10.244.0.300"
    with pytest.raises(ValueError):
        compose_spec.PyCompose.from_json(json.dumps(bad))


# --- images, mounts, references --------------------------------------------------------------------------


def test_images_are_built_from_the_repo_or_the_pinned_envoy(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        if "build" in svc:
            context = (COMPOSE_DIR / svc["build"]["context"]).resolve()
            assert context == REPO, f"{name}: the build context is the repository root"
            assert (context / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
            assert svc["image"] == LOCAL_IMAGE, f"{name}: one image name for the one build"
        else:
            assert svc.get("image") == ENVOY_IMAGE, f"{name}: not built here and not {ENVOY_IMAGE}"


def test_the_envoy_image_is_the_version_the_tests_use() -> None:
    if not ENVOY.exists():
        pytest.skip(f"no envoy beside the interpreter ({ENVOY})")
    out = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True, timeout=30).stdout
    version = re.search(r"/(\d+\.\d+\.\d+)/", out)
    assert version, out
    assert ENVOY_IMAGE.endswith(f":v{version.group(1)}")


def test_dockerfile_builds_gammaxds_with_iptables() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and line[0] != "#"]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(i.startswith("RUN ") and "apt-get install" in i and "iptables" in i for i in instructions)
    assert any(i.startswith("RUN ") and "pip install ." in i for i in instructions)
    assert instructions[-2:] == ['ENTRYPOINT ["gammaxds"]', 'CMD ["--help"]']
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    for copy_line in (i for i in instructions if i.startswith("COPY ")):
        for source in copy_line.split()[1:-1]:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, not in the repository"
            assert f"!{source}" in ignore, f"Dockerfile.dockerignore leaves {source} out of the context"


def test_every_mount_exists(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    named = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source, target, *_ = volume.split(":")
            assert target.startswith("/"), f"{name}: {volume}"
            if source.startswith((".", "/")):
                path = (COMPOSE_DIR / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                assert path.is_relative_to(REPO), f"{name} mounts {source}, outside the repository"
            else:
                assert source in named, f"{name} mounts volume {source}, not declared under volumes:"


def test_network_modes_and_dependencies_name_services(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        if "network_mode" in svc:
            mode = svc["network_mode"]
            assert mode.startswith("service:"), f"{name}: {mode}"
            owner = services.get(mode.removeprefix("service:"))
            assert owner is not None, f"{name}: network_mode names no service: {mode}"
            assert NETWORK in owner.get("networks", {}) and "network_mode" not in owner
            assert not {"networks", "extra_hosts", "ports", "hostname"} & set(svc), (
                f"{name} joins another namespace; Docker refuses these options there"
            )
        for dep, spec in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on {dep}, which is no service"
            assert spec["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: no healthcheck"
    # No cycles: a topological order exists.
    order: list[str] = []
    pending = {n: set(s.get("depends_on", {})) for n, s in services.items()}
    while pending:
        ready = sorted(n for n, deps in pending.items() if deps <= set(order))
        assert ready, f"depends_on has a cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]


# --- the pods --------------------------------------------------------------------------------------------


def test_every_pod_has_capture_then_sidecar_and_app(services: dict[str, dict[str, Any]]) -> None:
    pods = pods_of(services)
    assert set(pods) == {"reviews-v1", "reviews-v2", "ratings-v1", "web-client", "store-client"}
    for pod, holder in pods.items():
        assert holder["image"] == LOCAL_IMAGE and holder["entrypoint"] == ["sleep", "infinity"]
        capture, sidecar, app = (services[f"{pod}-{part}"] for part in ("capture", "sidecar", "app"))
        for part in (capture, sidecar, app):
            assert part["network_mode"] == f"service:{pod}"
        assert capture["cap_add"] == ["NET_ADMIN"]
        assert capture["command"][0] == "capture" and capture["command"][-1] == "--apply"
        assert "entrypoint" not in capture, "the capture step runs the image's ENTRYPOINT, gammaxds"
        for part in (sidecar, app):
            assert part["depends_on"][f"{pod}-capture"] == {"condition": "service_completed_successfully"}
        assert sidecar["image"] == ENVOY_IMAGE
        assert sidecar["command"][:3] == ["envoy", "-c", "/etc/envoy/envoy.yaml"]
        path, boot = bootstrap_of(sidecar)
        assert path.parent == REPO / "envoy-configs" and path.stem == pod
        assert boot["node"]["id"] == pod and boot["node"]["metadata"]["capture"] == "transparent"
        assert app["entrypoint"] == ["python", "-m", "gammaxds.demo.app"]
        assert option(app["command"], "--pod") == pod
        assert option(app["command"], "--listen").startswith("0.0.0.0:")


def test_sidecars_reach_the_control_plane(services: dict[str, dict[str, Any]]) -> None:
    plane = services[CONTROL_PLANE]
    argv = plane["command"]
    assert argv[0] == "serve"
    assert option(argv, "--xds-address") == "0.0.0.0:18000"
    assert option(argv, "--admin-address") == "0.0.0.0:9901"
    served = option(argv, "--manifests")
    assert f"mesh-manifests:{served}:ro" in plane["volumes"]
    assert "/readyz" in " ".join(plane["healthcheck"]["test"])
    for pod in pods_of(services):
        sidecar = services[f"{pod}-sidecar"]
        _, boot = bootstrap_of(sidecar)
        (xds,) = boot["static_resources"]["clusters"]
        address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"] == {"address": CONTROL_PLANE, "port_value": 18000}
        assert sidecar["depends_on"][CONTROL_PLANE] == {"condition": "service_healthy"}


def test_manifests_reach_the_control_plane_through_a_volume(services: dict[str, dict[str, Any]]) -> None:
    loader = services["load-manifests"]
    assert "./manifests:/src:ro" in loader["volumes"] and "mesh-manifests:/manifests" in loader["volumes"]
    assert services[CONTROL_PLANE]["depends_on"]["load-manifests"] == {
        "condition": "service_completed_successfully"
    }


def test_static_ips_match_the_endpointslices(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pods = pods_of(services)
    (ipam,) = compose["networks"][NETWORK]["ipam"]["config"]
    subnet = ipaddress.IPv4Network(ipam["subnet"])
    ips = {name: static_ip(s) for name, s in services.items() if NETWORK in s.get("networks", {})}
    assert len(set(ips.values())) == len(ips), f"static IPs collide: {ips}"
    for name, ip in ips.items():
        assert ipaddress.IPv4Address(ip) in subnet and ip != ipam["gateway"], f"{name}: {ip}"
    serving: set[str] = set()
    slices = manifests("EndpointSlice")
    assert len(slices) == 4
    for eps in slices:
        ports = {p["port"] for p in eps["ports"]}
        for endpoint in eps["endpoints"]:
            pod = endpoint["targetRef"]["name"]
            where = f"EndpointSlice {eps['metadata']['name']}, pod {pod}"
            assert pod in pods, f"{where}: no such pod in the compose file"
            assert endpoint["addresses"] == [static_ip(pods[pod])], f"{where}: address is not the pod's IP"
            listen = option(services[f"{pod}-app"]["command"], "--listen")
            assert ports == {int(listen.rpartition(":")[2])}, f"{where}: the app does not listen on {ports}"
            serving.add(pod)
    assert serving == {"reviews-v1", "reviews-v2", "ratings-v1"}


def test_service_ips_are_capture_targets_outside_the_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    cidr = service_cidr(services)
    (ipam,) = compose["networks"][NETWORK]["ipam"]["config"]
    assert not cidr.overlaps(ipaddress.IPv4Network(ipam["subnet"])), "the Service CIDR is the pod network"
    cluster_ips = {}
    for svc in manifests("Service"):
        ip = ipaddress.IPv4Address(svc["spec"]["clusterIP"])
        assert ip in cidr, f"Service {svc['metadata']['name']}: cluster IP {ip} outside {cidr}"
        cluster_ips[(svc["metadata"]["namespace"], svc["metadata"]["name"])] = str(ip)
    assert len(cluster_ips) == 4
    for pod, holder in pods_of(services).items():
        client_ns = namespace_of(services, pod)
        expected = set()
        for (ns, name), ip in cluster_ips.items():
            names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
            names += [name] if ns == client_ns else []  # the search path of the pod's own namespace
            expected |= {f"{n}:{ip}" for n in names}
        assert set(holder["extra_hosts"]) == expected, f"{pod} (namespace {client_ns}) resolves otherwise"


def test_the_tour_runs_in_the_web_client_pod(services: dict[str, dict[str, Any]]) -> None:
    tour = services["tour"]
    pods = pods_of(services)
    assert tour["network_mode"] == "service:web-client" and namespace_of(services, "web-client") == "web"
    assert (
        tour["entrypoint"] == ["python", "/tour/tour.py"] and "./tour.py:/tour/tour.py:ro" in tour["volumes"]
    )
    assert f"mesh-manifests:{option(tour['command'], '--manifests')}" in tour["volumes"]
    store_app = urllib.parse.urlsplit(option(tour["command"], "--store-app"))
    assert store_app.hostname in pods and namespace_of(services, store_app.hostname) == "store"
    listen = option(services[f"{store_app.hostname}-app"]["command"], "--listen")
    assert store_app.port == int(listen.rpartition(":")[2])
    needed = {f"{pod}-{part}" for pod in pods for part in ("sidecar", "app")}
    assert needed <= set(tour["depends_on"]), f"the tour starts before {needed - set(tour['depends_on'])}"


# --- what the control plane makes of the manifests ---------------------------------------------------------


def test_translate_accepts_the_compose_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["translate", str(MANIFESTS)])
    err = capsys.readouterr().err
    assert done.value.code == 0, err
    assert "error" not in err


def test_real_envoy_accepts_each_sidecars_view(services: dict[str, dict[str, Any]], world: Any) -> None:
    if not ENVOY.exists():
        pytest.skip(f"no envoy beside the interpreter ({ENVOY})")
    translation = Translator().load(world)
    namespaces = sorted({namespace_of(services, pod) for pod in pods_of(services)})
    assert namespaces == ["store", "web"]
    views = {ns: translation.view(ViewKey(ns, "transparent")) for ns in namespaces}
    with ThreadPoolExecutor(max_workers=len(views)) as pool:
        verdicts = dict(zip(views, pool.map(lambda v: validate(v, str(ENVOY)), views.values()), strict=True))
    assert verdicts == dict.fromkeys(namespaces), verdicts


# --- a rehearsal of the whole mesh, without Docker -------------------------------------------------------


@contextlib.contextmanager
def etc_hosts(netns: str, lines: list[str]) -> Iterator[None]:
    """`ip netns exec NETNS` bind-mounts /etc/netns/NETNS/hosts on /etc/hosts: extra_hosts for our pods."""
    folder = Path("/etc/netns") / netns
    folder.mkdir(parents=True)
    try:
        (folder / "hosts").write_text("\n".join(["127.0.0.1 localhost", *lines]) + "\n")
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bound_admin(log: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """The admin address `gammaxds serve` bound (it was given port 0), from the line it prints once both
    servers listen: no port is picked in advance and taken by another process meanwhile."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        found = re.search(r"admin on http://(\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"gammaxds serve printed no admin address (exit code {proc.poll()})")


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready (exit code {proc.poll()})")


@pytest.mark.netns
@pytest.mark.e2e
def test_rehearsal_in_network_namespaces_passes_the_tour(compose: dict[str, Any], tmp_path: Path) -> None:
    """Each compose pod becomes a network namespace with its static IP and its extra_hosts; in it run the
    pod's own commands from the compose file: the capture step, Envoy from the pod's envoy-configs/ bootstrap (its command re-run with a
    Unix-socket xDS address: there is no Docker DNS for `controlplane`), the app.
    Then compose/tour.py runs in the web-client pod with the tour service's arguments and must pass."""
    from gammaxds.testing.mesh import Mesh, unavailable_reason

    reason = unavailable_reason()
    if reason or not ENVOY.exists() or not Path("/etc/hosts").exists():
        pytest.skip(f"rehearsal needs network namespaces and envoy: {reason or 'no envoy or /etc/hosts'}")
    services = compose["services"]
    pods = pods_of(services)
    ips = {pod: static_ip(holder) for pod, holder in pods.items()}
    shutil.copytree(MANIFESTS, tmp_path / "manifests")  # what load-manifests does
    (ipam,) = compose["networks"][NETWORK]["ipam"]["config"]
    mesh_net = Mesh(subnet=ipam["subnet"], service_cidr=str(service_cidr(services)))
    assert mesh_net.gateway == ipam["gateway"]
    with mesh_net as mesh, contextlib.ExitStack() as stack:
        plane_argv = list(services[CONTROL_PLANE]["command"])
        plane_argv[plane_argv.index("--manifests") + 1] = str(tmp_path / "manifests")
        plane_argv[plane_argv.index("--xds-address") + 1] = mesh.unix_address()
        plane_argv[plane_argv.index("--admin-address") + 1] = "127.0.0.1:0"
        log = (tmp_path / "controlplane.log").open("wb")
        stack.callback(log.close)
        plane = subprocess.Popen([sys.executable, "-m", "gammaxds", *plane_argv], stdout=log, stderr=log)
        stack.callback(plane.wait, 10)
        stack.callback(plane.terminate)
        for pod, ip in ips.items():
            netns_pod = mesh.add_pod(pod)
            subprocess.run(
                ["ip", "-n", netns_pod.netns, "addr", "add", f"{ip}/{mesh.subnet.prefixlen}", "dev", "eth0"],
                check=True,
            )
            docker_dns = [f"{other_ip} {other}" for other, other_ip in ips.items()]
            hosts = [
                f"{ip_} {name}" for name, _, ip_ in (e.rpartition(":") for e in pods[pod]["extra_hosts"])
            ]
            stack.enter_context(etc_hosts(netns_pod.netns, hosts + docker_dns))

        configs = {}
        for pod in pods:  # in this thread: the bootstrap command prints to sys.stdout
            path, _ = bootstrap_of(services[f"{pod}-sidecar"])
            argv = shlex.split(
                next(x for x in path.read_text().splitlines() if x.startswith("# command: "))[11:]
            )
            argv[argv.index("--xds-address") + 1] = mesh.unix_address()
            configs[pod] = tmp_path / path.name
            with configs[pod].open("w") as out, contextlib.redirect_stdout(out):
                assert cmd_bootstrap(build_parser().parse_args(argv[1:])) == 0

        for pod in pods:
            # The init step first: its compose argv through the CLI's parser, applied in the pod's namespace
            # (in-process, to spare a Python start per pod). Then the app, as compose starts it.
            cap = build_parser().parse_args(services[f"{pod}-capture"]["command"])
            assert cap.command == "capture" and cap.apply
            capture.apply(cap.service_cidr, cap.port, netns=mesh.pods[pod].netns)
            app = services[f"{pod}-app"]
            mesh.pods[pod].popen([sys.executable, *app["entrypoint"][1:], *app["command"]], name="app")

        def start(pod: str) -> None:
            mesh.pods[pod].start_envoy(configs[pod], timeout=60)
            mesh.pods[pod].wait_listening(8080, timeout=30)

        plane_admin = bound_admin(tmp_path / "controlplane.log", plane)
        wait_ready(f"http://{plane_admin}/readyz", plane)  # as the sidecars' depends_on: service_healthy
        with ThreadPoolExecutor(max_workers=len(pods)) as pool:
            list(pool.map(start, pods))
        tour = services["tour"]
        args = list(tour["command"])
        args[args.index("--manifests") + 1] = str(tmp_path / "manifests")
        client = mesh.pods[tour["network_mode"].removeprefix("service:")]
        done = subprocess.run(
            client.exec_argv([sys.executable, str(COMPOSE_DIR / "tour.py"), *args]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        report = done.stdout + done.stderr
        assert done.returncode == 0, report + "\n" + mesh.logs()[-6000:]
        assert report.count("   ok     ") == 6, report
        original = (MANIFESTS / "routes" / "reviews.yaml").read_text()
        assert (tmp_path / "manifests" / "routes" / "reviews.yaml").read_text() == original
