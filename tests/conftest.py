"""Suite-wide rules: which tests are slow or need root (markers), and that CI runs every suite it promises.

Markers, set from where a test lives so no file can forget them:
- `e2e`: starts real Envoy processes (tests/e2e, the quick benchmark, and a few elsewhere that say so);
- `netns`: builds a mesh of network namespaces, which needs root (tests/e2e/mesh, the compose rehearsal).
`pytest -m "not e2e and not netns"` runs the fast part alone (`make test-fast`).

With `GAMMAXDS_REQUIRE_ALL=1` (set by `.ci/run`) a skipped test is a failure, with the skip's reason: a
suite that cannot run here (no root, no `ip netns`, no Envoy) must not let CI pass without it.

Also the fixtures of the suites that talk to a Kubernetes API server (tests/inject, tests/sources): `kube`,
the fake API server of tests/fakekube, and `api`, a real client for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fakekube import FakeKube
    from kubernetes_asyncio import client

HERE = Path(__file__).resolve().parent
REQUIRE_ALL = "GAMMAXDS_REQUIRE_ALL"

sys.path.append(str(HERE))  # `fakekube`, however pytest was started


def require_all() -> bool:
    return os.environ.get(REQUIRE_ALL) == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts real Envoy processes (slower)")
    config.addinivalue_line(
        "markers", "netns: builds network namespaces; needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(HERE).parts
        if parts[:1] in (("e2e",), ("bench",)):
            item.add_marker(pytest.mark.e2e)
        if parts[:2] == ("e2e", "mesh"):
            item.add_marker(pytest.mark.netns)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and require_all() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_ALL}=1: this suite must run here, but it was skipped: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the suites that need root, so a CI log shows they ran (and none was skipped)."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if report.when in ("call", "setup") and "netns" in report.keywords:
                if outcome == "passed" and report.when != "call":
                    continue
                counts[outcome] += 1
    if any(counts.values()):
        terminalreporter.write_line(
            f"netns suites: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
        )


# -- a fake Kubernetes API server ----------------------------------------------------------------------------
# Imported when a test asks for one: the suites that never do load neither aiohttp nor the Kubernetes client.


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    """The fake API server (tests/fakekube), running for the test."""
    from fakekube import FakeKube

    async with FakeKube() as server:
        yield server


@pytest.fixture
async def api(kube: FakeKube, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    """A real Kubernetes client for `kube`, from the kubeconfig it writes; closed after the test."""
    from gammaxds.sources.kubeclient import api_client

    api = await api_client(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield api
    await api.close()
