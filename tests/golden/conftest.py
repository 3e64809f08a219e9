"""Golden cases: `tests/golden/<case>/in.yaml` → `<namespace>.<capture>.yaml` per view, and `status.yaml`.

Regenerate with `make golden` (`pytest tests/golden --update-goldens`), which also removes orphaned outputs.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens", action="store_true", help="rewrite golden outputs instead of comparing"
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))
