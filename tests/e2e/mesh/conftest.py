"""Fixtures for network-namespace mesh tests: skipped, with the reason, where namespaces cannot be made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gammaxds.testing.mesh import Mesh, unavailable_reason


@pytest.fixture(scope="session")
def mesh_supported() -> None:
    """Skip the test unless this process can create network namespaces (probed once per session)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"mesh e2e skipped: {reason}")


@pytest.fixture
def mesh(mesh_supported: None) -> Iterator[Mesh]:
    """A fresh mesh, torn down even when the test fails; pod process logs are printed on teardown."""
    with Mesh() as m:
        try:
            yield m
        finally:
            logs = m.logs()
            if logs:
                print(logs)  # pytest shows it only for failing tests
