"""The manifests source: a directory edited while it runs, every change in force within a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.model import World
from gammaxds.sources.files import ManifestSource
from gammaxds.testing.gamma import until

from .conftest import Published
from .objects import endpoint_slice, http_route, namespace, service

# Seconds: the promise for any edit, and so a bound these tests keep. The source applies a change once two
# looks agree on it: with inotify (these tests) about 0.1 s after the write; when it falls back to polling, at
# most three polls (0.75 s at the default interval): headroom 0.25 s. Both modes: tests/sources/test_watch.py.
WITHIN = 1.0


def write(path: Path, *docs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))


@contextlib.asynccontextmanager
async def running(source: ManifestSource, published: Published) -> AsyncIterator[ManifestSource]:
    task = asyncio.create_task(source.run(published))
    try:
        await asyncio.wait_for(source.synced.wait(), 5)
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def port(world: World, name: str) -> int | None:
    svc = world.services.get(("shop", name))
    return svc.spec.ports[0].port if svc else None


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    write(root / "services.yaml", service("shop", "cart"), service("shop", "cart-v2"))
    write(root / "nested" / "deeper" / "routes.yml", http_route("shop", "cart-split", "cart", "cart-v2"))
    (root / "namespace.json").write_text(json.dumps(namespace("shop")))
    (root / "notes.txt").write_text("not a manifest")
    return root


async def test_initial_load_reads_directories_recursively(manifests: Path, published: Published) -> None:
    async with running(ManifestSource([manifests]), published) as source:
        assert set(published.world.objects) == {
            ("Namespace", "", "shop"),
            ("Service", "shop", "cart"),
            ("Service", "shop", "cart-v2"),
            ("HTTPRoute", "shop", "cart-split"),
        }
        assert source.errors == [] and len(published.worlds) == 1


async def test_a_single_file_can_be_named(manifests: Path, published: Published) -> None:
    async with running(ManifestSource([manifests / "services.yaml"]), published):
        assert set(published.world.services) == {("shop", "cart"), ("shop", "cart-v2")}


async def test_added_modified_and_deleted_files_apply_within_a_second(
    manifests: Path, published: Published
) -> None:
    async with running(ManifestSource([manifests]), published):
        write(manifests / "more" / "slices.yaml", endpoint_slice("shop", "cart-1", "cart", "10.0.0.1"))
        await published.until(lambda w: ("EndpointSlice", "shop", "cart-1") in w.objects, WITHIN)
        write(manifests / "services.yaml", service("shop", "cart", port=8080), service("shop", "cart-v2"))
        await published.until(lambda w: port(w, "cart") == 8080, WITHIN)
        (manifests / "nested" / "deeper" / "routes.yml").unlink()
        world = await published.until(lambda w: ("HTTPRoute", "shop", "cart-split") not in w.objects, WITHIN)
        assert ("Service", "shop", "cart") in world.objects


async def test_a_broken_file_keeps_its_previous_objects(
    manifests: Path, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gammaxds.sources.files")
    async with running(ManifestSource([manifests]), published) as source:
        (manifests / "services.yaml").write_text("kind: Service\nmetadata: {name: cart\n  - broken: [")
        await until(lambda: source.errors != [], "the broken file to be reported", timeout=WITHIN)
        [error] = source.errors
        assert "cannot parse YAML" in error.reason and error.source == str(manifests / "services.yaml")
        assert port(published.world, "cart") == 80 and port(published.world, "cart-v2") == 80
        assert error.in_force == "previous version"
        assert any("the objects it held before stay in force" in r.getMessage() for r in caplog.records)
        write(manifests / "services.yaml", service("shop", "cart", port=9090))  # fixed: cart-v2 is gone now
        world = await published.until(lambda w: port(w, "cart") == 9090, WITHIN)
        assert port(world, "cart-v2") is None and source.errors == []


async def test_an_invalid_object_keeps_its_last_valid_version_and_its_neighbours_update(
    manifests: Path, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "gammaxds.sources.files")
    path = manifests / "nested" / "deeper" / "routes.yml"
    async with running(ManifestSource([manifests]), published) as source:
        bad = http_route("shop", "cart-split", "cart", "cart-v2", path="no-slash")
        never_valid = http_route("shop", "fresh", "cart", "cart-v2", path="also-bad")
        write(path, service("shop", "extra"), bad, never_valid)
        world = await published.until(lambda w: ("Service", "shop", "extra") in w.objects, WITHIN)
        assert world.http_routes[("shop", "cart-split")].spec.rules[0].matches[0].path.value == "/"  # type: ignore[union-attr]
        assert ("HTTPRoute", "shop", "fresh") not in world.objects
        assert {(e.kind, e.name) for e in source.errors} == {
            ("HTTPRoute", "cart-split"),
            ("HTTPRoute", "fresh"),
        }
        message = next(r.getMessage() for r in caplog.records if "cart-split" in r.getMessage())
        assert (
            "HTTPRoute shop/cart-split: spec.rules[0].matches[0].path: path 'no-slash' must start" in message
        )
        assert f"({path}, document 2)" in message


async def test_rewriting_a_file_with_the_same_objects_publishes_nothing(
    manifests: Path, published: Published
) -> None:
    source = ManifestSource([manifests])
    loop = asyncio.get_running_loop()
    applied = asyncio.Event()
    poll = source.poll

    def watched_poll() -> bool:  # runs in a worker thread
        if result := poll():
            loop.call_soon_threadsafe(applied.set)
        return result

    source.poll = watched_poll  # type: ignore[method-assign]
    async with running(source, published):
        text = (manifests / "services.yaml").read_text()
        (manifests / "services.yaml").write_text("# touched\n" + text)
        # The rewritten file has been read again (a poll applied it), and what that poll published is done
        # before the next change is taken in: a change written now must be the next World.
        await asyncio.wait_for(applied.wait(), 5)
        write(manifests / "later.yaml", service("shop", "later"))
        world = await published.until(lambda w: ("Service", "shop", "later") in w.objects)
        assert published.worlds == [published.worlds[0], world]  # nothing was published for the rewrite


def test_a_mounted_configmap_is_read_once(tmp_path: Path) -> None:
    """A ConfigMap volume: visible names link into `..data`, which links to a timestamped directory. Reading the
    hidden directories too would report every object as defined twice."""
    from gammaxds.model import load_paths

    mount = tmp_path / "config"
    stamp = mount / "..2026_12_04_20_00_00.000000001"
    stamp.mkdir(parents=True)
    (stamp / "services.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\n"
        "spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n"
    )
    (mount / "..data").symlink_to(stamp.name)
    (mount / "services.yaml").symlink_to("..data/services.yaml")
    (mount / ".services.yaml.swp").write_text("not: yaml: at all")
    loaded = load_paths([mount])
    assert loaded.errors == [] and [o.name for o in loaded.objects] == ["cart"]
