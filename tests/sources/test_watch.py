"""The manifests source woken by inotify, and its polling fallback: what a user sees when editing files.

Every scenario runs in both modes. In inotify mode the polling interval is a minute, so a change that arrives
in time was seen through inotify, not found by a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.sources.files import ManifestSource
from gammaxds.sources.watch import plan, remote_filesystem

from .conftest import Published
from .objects import endpoint_slice, service
from .test_files import port

# Seconds for an edit to be in force: generous for a loaded 2-core machine (inotify takes about 0.1 s, polling
# at most 0.75 s). Speed itself is measured by the benchmark (python -m bench --only manifests).
WITHIN = 3.0
NO_POLLING = 60.0  # the interval in inotify mode: a poll never comes during a test


def write(path: Path, *docs: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))


def source_for(paths: list[Path], watch: str, **options: Any) -> ManifestSource:
    if watch == "inotify":
        options.setdefault("interval", NO_POLLING)
    return ManifestSource(paths, watch=watch, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(source: ManifestSource, published: Published) -> AsyncIterator[ManifestSource]:
    task = asyncio.create_task(source.run(published))
    try:
        await asyncio.wait_for(source.synced.wait(), 10)
        assert source.watching == source.watch  # inotify works here: no fallback
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(params=["inotify", "poll"])
def watch(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    write(root / "services.yaml", service("shop", "cart"), service("shop", "cart-v2"))
    return root


async def test_an_edit_is_in_force_through_inotify_alone(manifests: Path, published: Published) -> None:
    async with running(source_for([manifests], "inotify"), published):
        write(manifests / "services.yaml", service("shop", "cart", port=8080), service("shop", "cart-v2"))
        await published.until(lambda w: port(w, "cart") == 8080, WITHIN)
        write(manifests / "more" / "deeper" / "slices.yaml", endpoint_slice("shop", "s", "cart", "10.0.0.1"))
        await published.until(lambda w: ("EndpointSlice", "shop", "s") in w.objects, WITHIN)


async def test_a_save_by_rename_is_applied_whole(manifests: Path, published: Published, watch: str) -> None:
    async with running(source_for([manifests], watch), published):
        for edit in range(1, 4):
            temp = manifests / f".services.yaml.{edit}.tmp"  # how editors save: a temp file renamed over
            write(temp, service("shop", "cart", port=8000 + edit), service("shop", "cart-v2"))
            os.replace(temp, manifests / "services.yaml")
            await published.until(lambda w, e=edit: port(w, "cart") == 8000 + e, WITHIN)
        assert all(port(w, "cart-v2") == 80 for w in published.worlds)


async def test_truncate_then_write_is_never_applied_half_written(
    manifests: Path, published: Published, watch: str
) -> None:
    """`kubectl`-style saves truncate the file, then write it, here in two parts with a pause: neither the
    empty file nor its first half (a valid document on its own) is ever in force."""
    # The second look comes `settle` after the first: far longer than the writer's pause, even on a loaded machine.
    async with running(source_for([manifests], watch, settle=0.3), published):
        first, second = (
            yaml.safe_dump(service("shop", "cart", port=9000)),
            yaml.safe_dump(service("shop", "v3")),
        )
        with (manifests / "services.yaml").open("w") as f:
            f.flush()
            await asyncio.sleep(0.02)
            f.write(first + "---\n")
            f.flush()
            await asyncio.sleep(0.02)
            f.write(second)
        world = await published.until(lambda w: ("Service", "shop", "v3") in w.objects, WITHIN)
        assert port(world, "cart") == 9000 and port(world, "cart-v2") is None
        assert [set(w.services) for w in published.worlds] == [
            {("shop", "cart"), ("shop", "cart-v2")},
            {("shop", "cart"), ("shop", "v3")},
        ]


async def test_a_deleted_directory_made_again_is_followed(
    manifests: Path, published: Published, watch: str
) -> None:
    async with running(source_for([manifests], watch), published):
        shutil.rmtree(manifests)
        await published.until(lambda w: not w.services, WITHIN)
        write(manifests / "sub" / "again.yaml", service("shop", "again"))
        await published.until(lambda w: port(w, "again") == 80, WITHIN)
        write(manifests / "sub" / "again.yaml", service("shop", "again", port=81))  # watched again, too
        await published.until(lambda w: port(w, "again") == 81, WITHIN)


async def test_paths_that_do_not_exist_yet_are_read_once_made(
    tmp_path: Path, published: Published, watch: str
) -> None:
    directory, file = tmp_path / "not" / "yet" / "there", tmp_path / "later" / "one.yaml"
    async with running(source_for([directory, file], watch), published):
        assert published.world.services == {}
        write(directory / "nested" / "a.yaml", service("shop", "a"))
        await published.until(lambda w: ("shop", "a") in w.services, WITHIN)
        write(file, service("shop", "b"))
        await published.until(lambda w: ("shop", "b") in w.services, WITHIN)
        file.unlink()
        await published.until(lambda w: ("shop", "b") not in w.services, WITHIN)


async def test_a_named_file_behind_a_swapped_symlink_is_followed(
    tmp_path: Path, published: Published, watch: str
) -> None:
    """A Kubernetes ConfigMap volume: `services.yaml -> ..data/services.yaml`, and an update points `..data` at
    a new directory by renaming a fresh symlink over it. No event names `services.yaml` itself."""
    volume = tmp_path / "volume"
    write(volume / "..v1" / "services.yaml", service("shop", "cart"))
    (volume / "..data").symlink_to("..v1")
    (volume / "services.yaml").symlink_to("..data/services.yaml")
    async with running(source_for([volume / "services.yaml"], watch), published):
        assert port(published.world, "cart") == 80
        write(volume / "..v2" / "services.yaml", service("shop", "cart", port=8443))
        (volume / "..data_tmp").symlink_to("..v2")
        os.replace(volume / "..data_tmp", volume / "..data")
        await published.until(lambda w: port(w, "cart") == 8443, WITHIN)


async def test_rewriting_a_file_with_the_same_objects_publishes_nothing(
    manifests: Path, published: Published, watch: str
) -> None:
    async with running(source_for([manifests], watch), published):
        text = (manifests / "services.yaml").read_text()
        (manifests / "services.yaml").write_text("# touched\n" + text)
        await asyncio.sleep(1.0)  # both modes have looked twice by now
        write(manifests / "later.yaml", service("shop", "later"))
        world = await published.until(lambda w: ("Service", "shop", "later") in w.objects, WITHIN)
        assert published.worlds == [published.worlds[0], world]


def test_the_plan_watches_what_exists_and_the_nearest_parent_of_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "m" / "sub" / "a.yaml", service("shop", "a"))
    write(tmp_path / "one.yaml", service("shop", "b"))
    got = plan([tmp_path / "m", tmp_path / "m" / "sub", tmp_path / "one.yaml", tmp_path / "x" / "y" / "z"])
    assert got.trees == (tmp_path / "m",)  # m/sub is inside m
    assert set(got.anchors) == {tmp_path, tmp_path / "m"}
    assert got.relevant(str(tmp_path / "x"))  # on the way to x/y/z
    assert got.relevant(str(tmp_path / "m"))
    assert got.relevant(str(tmp_path / "..data"))  # beside the named file one.yaml
    assert not got.relevant(str(tmp_path / "m" / "other"))  # beside m, which is watched on its own


def test_network_filesystems_are_recognised_from_mountinfo() -> None:
    mountinfo = textwrap.dedent(
        r"""
        22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
        40 22 0:45 / /srv/shared\040manifests rw,relatime shared:20 - nfs4 fileserver:/export rw,vers=4.2
        41 40 0:46 / /srv/shared\040manifests/local rw shared:21 - tmpfs tmpfs rw
        """
    )
    assert remote_filesystem(Path("/srv/shared manifests/mesh"), mountinfo) == "nfs4"
    assert remote_filesystem(Path("/srv/shared manifests/local/mesh"), mountinfo) is None
    assert remote_filesystem(Path("/home/me/mesh"), mountinfo) is None


# The fallback, provoked for real: the source runs in a user namespace of its own whose inotify limits are set
# low (/proc/sys/user/max_inotify_*, per user namespace: nothing outside it is affected).
CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from pathlib import Path
    import yaml
    from gammaxds.sources.files import ManifestSource

    async def main(root: Path) -> None:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
        worlds = []
        source = ManifestSource([root], interval=0.1)
        task = asyncio.create_task(source.run(worlds.append))
        await asyncio.wait_for(source.synced.wait(), 10)
        started = source.watching
        new = root / "sub" / "new.yaml"  # a new subdirectory needs one more watch
        new.parent.mkdir()
        new.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "new", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}}))
        for _ in range(100):
            if ("shop", "new") in worlds[-1].services:
                break
            await asyncio.sleep(0.05)
        print(json.dumps({"started": started, "watching": source.watching,
                          "applied": ("shop", "new") in worlds[-1].services}))
        task.cancel()

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def run_with_inotify_limit(setting: str, value: int, root: Path) -> tuple[dict[str, Any], str]:
    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux) to give the source its own inotify limits")
    limit = f"echo {value} > /proc/sys/user/{setting}"
    command = ["unshare", "--user", "--map-root-user", "sh", "-c", f'{limit} && exec "$@"', "sh"]
    proc = subprocess.run(
        [*command, sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0 and "unshare" in proc.stderr and "Operation not permitted" in proc.stderr:
        pytest.skip(f"user namespaces are not available here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("max_inotify_instances", 0, "the inotify instance limit is reached"),
        ("max_inotify_watches", 1, "the inotify watch limit is reached"),
    ],
)
def test_without_inotify_the_source_warns_once_and_polls(
    tmp_path: Path, setting: str, value: int, reason: str
) -> None:
    write(tmp_path / "m" / "services.yaml", service("shop", "cart"))
    got, log = run_with_inotify_limit(setting, value, tmp_path / "m")
    assert got == {"started": "poll", "watching": "poll", "applied": True}
    [warning] = log.splitlines()
    assert warning.startswith(f"WARNING cannot watch {tmp_path}") and reason in warning
    assert warning.endswith("polling every 0.1s instead")


def test_a_watch_limit_reached_later_falls_back_to_polling(tmp_path: Path) -> None:
    """Two watches (the directory, and its parent for its own deletion) fit the limit; the subdirectory made
    while running does not: the source warns and goes on polling, and the file in it is read."""
    write(tmp_path / "m" / "services.yaml", service("shop", "cart"))
    got, log = run_with_inotify_limit("max_inotify_watches", 2, tmp_path / "m")
    assert got == {"started": "inotify", "watching": "poll", "applied": True}
    [warning] = log.splitlines()
    assert warning.startswith(f"WARNING cannot watch {tmp_path}") and "watch limit" in warning
