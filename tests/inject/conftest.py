"""Fixtures for the injection tests: the fake API server (tests/fakekube) and a real client for it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

sys.path.append(str(Path(__file__).resolve().parents[1]))  # `fakekube`, however pytest was started

from fakekube import FakeKube

from gammaxds.sources.kubeclient import api_client


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with FakeKube() as server:
        yield server


@pytest.fixture
async def api(kube: FakeKube, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    api = await api_client(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield api
    await api.close()
