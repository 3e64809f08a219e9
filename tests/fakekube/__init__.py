"""An in-test Kubernetes API server (see `server.py`)."""

from .server import FakeKube, status_body

__all__ = ["FakeKube", "status_body"]
