"""The real gammaxds pipeline in-process, for GAMMA tests through proxy-mode Envoy sidecars.

    pipeline = Pipeline()                                   # ControlPlane + ADS + admin, own event loop
    world = pipeline.publish([service(...), http_route(...)])  # model objects → World → ControlPlane.publish
    pipeline.wait_synced(world, streams=4)                  # every connected sidecar ACKed the new views
    sidecar.get("api.shop", "/v2").pod                      # a real request through the sidecar

The control plane runs on an asyncio loop in a background thread, exactly as `gammaxds serve` wires it
(ControlPlane with its debounced SnapshotCache, `start_xds_server`, `start_admin_server`, optionally a
ManifestSource), so tests are plain synchronous code that may block on HTTP without stalling xDS.
Plain code (no fixtures): the test modules build their fixtures on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gammaxds.admin import start_admin_server
from gammaxds.bootstrap import bootstrap
from gammaxds.demo.app import EchoApp, make_server
from gammaxds.model import Object, ObjectError, World, parse_text
from gammaxds.serve import ControlPlane
from gammaxds.sources.files import ManifestSource
from gammaxds.testing.envoy_process import Envoy
from gammaxds.testing.gamma import eventually as shared_eventually
from gammaxds.testing.http_client import Connection, request
from gammaxds.translate import Translation
from gammaxds.translate.envoy.names import PROXY_LISTENER
from gammaxds.translate.view import PUSH_ORDER
from gammaxds.xds import SnapshotCache, start_xds_server
from gammaxds.xds.status import describe_all
from gammaxds.xds.stream import Stream

T = TypeVar("T")
Doc = Mapping[str, Any]

# -- manifests → model objects ----------------------------------------------------------------------------


def objects(docs: Sequence[Doc]) -> list[Object]:
    """Kubernetes manifests (dicts) → validated model objects, through the real YAML loader."""
    loaded = parse_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False), "test")
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return loaded.objects


def write_manifests(path: Path, docs: Sequence[Doc]) -> None:
    """Replace `path` atomically, as an editor or `kubectl`-like tool would (a reader never sees half)."""
    staging = path.with_name(f".{path.name}.staging")
    staging.write_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False))
    os.replace(staging, path)


# -- echo backends on distinct loopback addresses -----------------------------------------------------------


class Backends:
    """`count` echo servers at 127.0.20.1..N, all on one port: an EndpointSlice lists them by address.

    Backend `bN` answers with `pod: bN`, so a test sees exactly which endpoint served a request.
    """

    def __init__(self, count: int) -> None:
        self.servers: list[Any] = []
        for _attempt in range(20):
            with socket.socket() as probe:
                probe.bind(("127.0.20.1", 0))
                self.port = int(probe.getsockname()[1])
            try:
                for i in range(1, count + 1):
                    server = make_server(EchoApp(f"b{i}", pod=f"b{i}"), self.address(f"b{i}"), self.port)
                    self.servers.append(server)
                break
            except OSError:  # taken on one of the addresses: release the others, try another port
                for server in self.servers:
                    server.server_close()
                self.servers = []
        else:
            raise RuntimeError("no port free on every 127.0.20.x address")
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @staticmethod
    def address(name: str) -> str:
        return f"127.0.20.{int(name.removeprefix('b'))}"

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers = []


# -- the control plane --------------------------------------------------------------------------------------


@dataclass
class NoSource:
    """Worlds are published directly by the test; nothing to watch."""

    synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, publish: Callable[[World], None]) -> None:
        await asyncio.Event().wait()

    @property
    def errors(self) -> list[ObjectError]:
        return []


def in_sync(stream: Stream, cache: SnapshotCache) -> bool:
    """The stream got the newest snapshot of its view, has nothing left to send for it, and every response
    of every type was ACKed (no NACK outstanding)."""
    assert stream.key is not None
    snap = cache.snapshot(stream.key)
    if snap is None or stream.snapshot is not snap:
        return False
    for type_url in PUSH_ORDER:
        state = stream.types.get(type_url)
        if state is None or not state.nonce or state.acked_seq != state.seq or state.nack is not None:
            return False
        diff = state.diff(snap.of_type(type_url))
        if diff.changed or diff.gone:
            return False
    return True


class Pipeline:
    """ControlPlane + `start_xds_server` + `start_admin_server` on an event loop of its own (a thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gammaxds-loop", daemon=True)
        self.thread.start()
        self.translated: World | None = None  # the World of the latest translation
        self.published_at: dict[int, float] = {}  # id(World) → time.monotonic() of `publish`
        self._source_task: asyncio.Task[None] | None = None
        self.run(self._start())

    # - running things on the loop
    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def on_loop() -> T:
            return fn(*args)

        return self.run(on_loop())

    async def _start(self) -> None:
        self.plane = ControlPlane(NoSource(), on_translation=self._on_translation)
        self.xds = await start_xds_server(self.plane.cache, "127.0.0.1:0")
        self.admin = await start_admin_server(
            "127.0.0.1:0", self.plane.cache, self.plane.status, xds=self.xds
        )

    def _on_translation(self, translation: Translation) -> None:
        self.translated = translation.world

    @property
    def address(self) -> str:
        return self.xds.target

    @property
    def admin_address(self) -> str:
        return f"127.0.0.1:{self.admin.port}"

    # - worlds
    def publish(self, docs: Sequence[Doc]) -> World:
        """Manifests → model objects → World → `ControlPlane.publish` (debounced, as `gammaxds serve` does)."""
        world = World.of(objects(docs))

        def publish() -> None:
            self.published_at[id(world)] = time.monotonic()
            self.plane.publish(world)

        self.call(publish)
        return world

    def wait_synced(self, world: World, streams: int, timeout: float = 10.0) -> float:
        """Wait until `world` was translated and all `streams` connected sidecars ACKed its views; returns
        the seconds from `publish` to that moment (polled every 2 ms on the control plane's loop)."""

        async def wait() -> float:
            deadline = time.monotonic() + timeout
            while True:
                live = list(self.xds.streams)
                cache = self.plane.cache
                # The translator works on a successor of the published World (the same objects, its indexes
                # carried over), so "this World was translated" compares the objects.
                done = self.translated is not None and self.translated.objects is world.objects
                if done and len(live) == streams and all(in_sync(s, cache) for s in live):
                    return time.monotonic() - self.published_at[id(world)]
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"not all {streams} sidecars ACKed within {timeout}s "
                        f"(translated: {done}, {len(live)} streams):\n"
                        + json.dumps(describe_all(live), indent=1)
                    )
                await asyncio.sleep(0.002)

        return self.run(wait(), timeout + 10)

    def wait_streams(self, count: int, timeout: float = 20.0) -> None:
        async def wait() -> None:
            deadline = time.monotonic() + timeout
            while len(self.xds.streams) != count:
                assert time.monotonic() < deadline, f"{len(self.xds.streams)} streams, not {count}"
                await asyncio.sleep(0.01)

        self.run(wait(), timeout + 10)

    def proxies(self) -> list[dict[str, Any]]:
        """`/debug/proxies` from the admin server, over HTTP."""
        response = request(f"http://{self.admin_address}/debug/proxies")
        assert response.status == 200, response.error or response.body
        return list(response.json())

    # - a ManifestSource feeding the same ControlPlane (what `gammaxds serve --manifests DIR` runs)
    def start_manifests(self, paths: Sequence[Path]) -> ManifestSource:
        async def start() -> ManifestSource:
            source = ManifestSource(list(paths))
            self.plane.source = source
            self._source_task = asyncio.create_task(source.run(self.plane.publish), name="manifests")
            await asyncio.wait_for(source.synced.wait(), 10)
            return source

        return self.run(start())

    def stop_manifests(self) -> None:
        async def stop() -> None:
            if self._source_task is not None:
                self._source_task.cancel()
                await asyncio.gather(self._source_task, return_exceptions=True)
                self._source_task = None
            self.plane.source = NoSource()

        self.run(stop())

    def close(self) -> None:
        async def stop() -> None:
            if self._source_task is not None:
                self._source_task.cancel()
                await asyncio.gather(self._source_task, return_exceptions=True)
            await self.admin.stop()
            await self.xds.stop(0)
            self.plane.cache.close()

        try:
            self.run(stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


# -- sidecars and requests through them ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def pod(self) -> str | None:
        """Which echo backend answered (None when Envoy answered itself: 404, 500, 503)."""
        return self.body.get("pod") if self.status == 200 else None

    @property
    def seen(self) -> dict[str, str]:
        """The request headers as the backend received them."""
        return dict(self.body.get("headers", {}))


class Client:
    """Requests on one keep-alive connection to a sidecar's outbound listener; a request that fails is sent once
    more on a new connection (the sidecar may have closed the idle one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = Connection("127.0.0.1", port, timeout=5, retries=1)

    def get(self, host: str, path: str = "/", headers: Mapping[str, str] | None = None) -> Reply:
        response, data = self.conn.request("GET", path, {"Host": host, **(headers or {})})
        try:
            body = json.loads(data) if data else {}
        except ValueError:
            body = {"text": data.decode(errors="replace")}
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Sidecar:
    """A proxy-mode Envoy from `gammaxds.bootstrap`: client namespace, SotW or delta ADS."""

    name: str
    namespace: str
    delta: bool
    port: int
    envoy: Envoy
    client: Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = Client(self.port)

    def get(self, host: str, path: str = "/", headers: Mapping[str, str] | None = None) -> Reply:
        return self.client.get(host, path, headers)

    def pods(self, host: str, path: str = "/", count: int = 12) -> dict[str | None, int]:
        """Who answered `count` requests (None for answers that did not come from a backend)."""
        seen: dict[str | None, int] = {}
        for _ in range(count):
            pod = self.get(host, path).pod
            seen[pod] = seen.get(pod, 0) + 1
        return seen

    def clusters(self) -> set[str]:
        return self.envoy.active_clusters()


def start_sidecars(
    pipeline: Pipeline,
    specs: Sequence[tuple[str, str, bool]],
    workdir: Path,
    log_level: str = "info",
    access_log: bool = True,
) -> list[Sidecar]:
    """Start one Envoy per (name, namespace, delta) at once, then wait until each is ready (first CDS/LDS).
    `access_log=False` bootstraps them as `gammaxds bootstrap --access-log off` does."""
    sidecars = []
    envoys = []
    for name, namespace, delta in specs:
        # Port 0: Envoy binds a port the kernel picks, read back below (none is picked in advance).
        config = bootstrap(
            name, namespace, xds_address=pipeline.address, capture="proxy", outbound_address="127.0.0.1:0",
            delta=delta, access_log=access_log,
        )  # fmt: skip
        envoys.append(Envoy(config, workdir, name=name))
    try:
        for envoy in envoys:
            envoy.start(log_level)
        for (name, namespace, delta), envoy in zip(specs, envoys, strict=True):
            envoy.wait_ready(30)
            port = envoy.listener_port(PROXY_LISTENER, 30)
            sidecars.append(Sidecar(name, namespace, delta, port, envoy))
    except Exception:
        stop_sidecars(sidecars)
        for envoy in envoys:  # stopping is idempotent: also those that never became sidecars
            envoy.stop()
        raise
    return sidecars


def stop_sidecars(sidecars: Sequence[Sidecar], show_logs: bool = True) -> None:
    for sidecar in sidecars:
        sidecar.client.close()
        sidecar.envoy.stop()
        if show_logs:
            print(f"===== {sidecar.name} log (tail) =====\n{sidecar.envoy.logs()[-4000:]}")


def eventually(
    probe: Callable[[], T], timeout: float, interval: float = 0.01, what: str = ""
) -> tuple[float, T]:
    """`gammaxds.testing.gamma.eventually`, polling every 10 ms: these tests measure propagation times."""
    return shared_eventually(probe, timeout, interval, what)
