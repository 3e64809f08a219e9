"""Where the World comes from (manifest files, Kubernetes), and what goes back (route status, leadership)."""

from .base import Publish, Source, Store
from .files import ManifestSource
from .kubeclient import api_client
from .kubernetes import KubernetesSource
from .leader import LeaderElector, default_identity, default_namespace
from .status import StatusUpdater, StatusWriter, route_status

__all__ = [
    "KubernetesSource",
    "LeaderElector",
    "ManifestSource",
    "Publish",
    "Source",
    "StatusUpdater",
    "StatusWriter",
    "Store",
    "api_client",
    "default_identity",
    "default_namespace",
    "route_status",
]
