"""The dashboard (`/ui`) as a user sees it: a real `gammaxds serve` with real Envoy sidecars, and Debian's
headless Chromium showing the page.

One code path for two uses, so the picture in the README is the page the test checks: `running_mesh`, then
`open_dashboard` in a `Chromium`, which waits until the page has drawn the Services, an arrow of the graph
and every sidecar ACKed. Then
- tests/e2e/test_ui.py reads the rendered DOM and asserts what is on the page, and edits the manifests to
  see the page follow without a reload;
- `make screenshot` (`python -m gammaxds.testing.dashboard --screenshot docs/ui.png`) saves the viewport.

Chromium runs headless with a new profile directory each time and no sandbox (it may run as root).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gammaxds.testing.envoy_process import Envoy

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = re.compile(r"^gammaxds: xDS on (\S+), admin on (http://\S+)$")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
SERVE = [sys.executable, "-m", "gammaxds", "serve"]  # the command `running_mesh` runs, with its flags after
XDS_TYPES = ("Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration")


class DashboardError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# -- the mesh: gammaxds serve + sidecars ----------------------------------------------------------------------


@dataclass
class Mesh:
    """A running `gammaxds serve` and its sidecars (proxy mode, one per namespace)."""

    xds_address: str
    admin_url: str
    sidecars: dict[str, Envoy] = field(default_factory=dict)  # node id → Envoy

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.admin_url + path, timeout=5) as response:
            return json.load(response)

    def wait_synced(self, timeout: float = 30.0) -> None:
        """Until every sidecar is connected and has ACKed every type it was sent: what the page should show."""
        deadline = time.monotonic() + timeout
        while True:
            proxies = {p["node_id"]: p for p in self.get_json("/debug/proxies")}
            if all(
                node in proxies
                and all((proxies[node]["types"].get(t) or {}).get("synced") for t in XDS_TYPES)
                for node in self.sidecars
            ):
                return
            if time.monotonic() > deadline:
                raise DashboardError(f"sidecars not in sync after {timeout}s: {json.dumps(proxies)[:2000]}")
            time.sleep(0.1)


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


@contextlib.contextmanager
def running_mesh(
    workdir: Path, manifests: Path = ROOT / "examples", namespaces: Sequence[str] = ("web",)
) -> Iterator[Mesh]:
    """`gammaxds serve --manifests MANIFESTS` on kernel-chosen ports, one sidecar per namespace (node id
    `<namespace>-sidecar`, bootstrapped by `gammaxds bootstrap`), all in sync when this yields."""
    log = (workdir / "gammaxds-serve.log").open("w")
    serve = subprocess.Popen(
        [*SERVE, "--manifests", str(manifests),
         "--xds-address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, cwd=workdir,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert serve.stdout is not None
    threading.Thread(target=_read_lines, args=(serve.stdout, lines), daemon=True).start()
    sidecars: dict[str, Envoy] = {}
    try:
        xds, admin = _addresses(serve, lines, workdir)
        mesh = Mesh(xds, admin, sidecars)
        for namespace in namespaces:
            node = f"{namespace}-sidecar"
            path = workdir / f"{node}.bootstrap.yaml"
            subprocess.run(
                [sys.executable, "-m", "gammaxds", "bootstrap", "--node-id", node, "--namespace", namespace,
                 "--xds-address", xds, "--capture", "proxy", "--outbound-address", "127.0.0.1:0",
                 "--output", str(path)],
                check=True, timeout=30,
            )  # fmt: skip
            sidecars[node] = Envoy(yaml.safe_load(path.read_text()), workdir, name=node).start()
        for envoy in sidecars.values():
            envoy.wait_ready()
        mesh.wait_synced()
        yield mesh
    finally:
        for envoy in sidecars.values():
            envoy.stop()
        serve.terminate()
        try:
            serve.wait(10)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()


def _addresses(serve: subprocess.Popen[str], lines: queue.Queue[str], workdir: Path) -> tuple[str, str]:
    """The bound addresses, from the line `gammaxds serve` prints once it listens."""
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if serve.poll() is not None:
                break
            continue
        seen.append(line)
        if match := ADDRESSES.match(line):
            return match[1], match[2]
    log = (workdir / "gammaxds-serve.log").read_text(errors="replace")
    raise DashboardError(f"gammaxds serve printed no addresses; stdout: {seen}\nlog:\n{log[-4000:]}")


# -- the browser ------------------------------------------------------------------------------------------------


class Chromium:
    """One headless Chromium page, driven over the DevTools protocol (a WebSocket, JSON messages).

    Why the protocol and not `--dump-dom`: the page is live, and what a test waits for (a sidecar's ACK, an
    edit of a route file reaching the graph) happens after load, at a time only the page can tell. `wait_for`
    polls a JavaScript condition in the page; `html` is the DOM as rendered; `screenshot` is the viewport.
    """

    def __init__(self, workdir: Path, size: tuple[int, int] = (1280, 900)) -> None:
        self.workdir = workdir
        self.size = size
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
        self.log_path = workdir / "chromium.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Chromium:
        binary = find_chromium()
        if binary is None:
            raise DashboardError("chromium is not installed (apt-get install chromium)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                 f"--window-size={self.size[0]},{self.size[1]}", "--remote-debugging-port=0", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            port = await self._devtools_port()
            self._session = aiohttp.ClientSession()
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            [page] = [t for t in targets if t.get("type") == "page"][:1]
            self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            await self.send(
                "Emulation.setDeviceMetricsOverride",
                width=self.size[0], height=self.size[1], deviceScaleFactor=1, mobile=False,
            )  # fmt: skip
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def _devtools_port(self, timeout: float = 30.0) -> int:
        """Chromium writes the port it chose for `--remote-debugging-port=0` to the profile directory."""
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise DashboardError(f"chromium exited with {self.process.returncode}:\n{self.logs()}")
            if active.exists() and (first := active.read_text().split("\n")[0].strip()).isdigit():
                return int(first)
            await asyncio.sleep(0.05)
        raise DashboardError(f"chromium's DevTools did not come up in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are not needed, and skipped)."""
        assert self._ws is not None
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), 30)
            if message.get("id") == ident:
                if "error" in message:
                    raise DashboardError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DashboardError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 20.0) -> None:
        """Until `expression` is truthy in the page (tested there: a DOM node comes back as `{}`, which Python
        would take for false). Fails naming `what`, with the page's text."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(DashboardError):  # the page may be between documents
                if await self.evaluate(f"!!({expression})") is True:
                    return
            if time.monotonic() > deadline:
                text = await self.evaluate("document.body ? document.body.innerText : ''")
                raise DashboardError(f"the page did not show {what} within {timeout}s; it shows:\n{text}")
            await asyncio.sleep(0.1)

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path) -> None:
        result = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))


# What "the page has drawn the mesh" means: Services listed, an arrow in the graph, every sidecar ACKed.
LOADED = (
    "document.querySelector('.service') && document.querySelector('#graph g.edge')"
    " && document.querySelectorAll('tr.sidecar').length >= {sidecars}"
    " && [...document.querySelectorAll('tr.sidecar')].every(r => r.dataset.state === 'ACK')"
)


async def open_dashboard(browser: Chromium, mesh: Mesh, fragment: str = "") -> None:
    """Load `/ui` and wait until it shows the mesh and every sidecar of `mesh` in sync."""
    await browser.goto(f"{mesh.admin_url}/ui/{fragment}")
    await browser.wait_for(LOADED.format(sidecars=len(mesh.sidecars)), "the Services, graph and sidecars")


# -- reading the DOM ------------------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        """The text inside, each element's run separated by a space, whitespace collapsed."""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def select(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements with this tag (any if None) whose attributes have these values (`data_id` is `data-id`,
        `class_` is `class`; a class matches one of the element's classes)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}

        def matches(e: Element) -> bool:
            for key, value in wanted.items():
                have = e.attrs.get(key)
                if key == "class" and have is not None and value in have.split():
                    continue
                if have != value:
                    return False
            return tag is None or e.tag == tag

        return [e for e in self.iter() if matches(e)]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_dom(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# -- make screenshot ------------------------------------------------------------------------------------------


async def take_screenshot(path: Path, manifests: Path, view: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gammaxds-dashboard-") as tmp:
        workdir = Path(tmp)
        with running_mesh(workdir, manifests, namespaces=("store", "web")) as mesh:
            async with Chromium(workdir) as browser:
                await open_dashboard(browser, mesh, f"#{view}")
                await browser.screenshot(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gammaxds.testing.dashboard",
        description="Run the manifests with two sidecars (store, web) and save a screenshot of the dashboard.",
    )
    parser.add_argument(
        "--screenshot", type=Path, default=ROOT / "docs" / "ui.png", help="(default: %(default)s)"
    )
    parser.add_argument("--manifests", type=Path, default=ROOT / "examples", help="(default: %(default)s)")
    parser.add_argument(
        "--view", default="web", help="the client namespace the graph shows (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(take_screenshot(args.screenshot, args.manifests, args.view))
    except (DashboardError, OSError, subprocess.SubprocessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
