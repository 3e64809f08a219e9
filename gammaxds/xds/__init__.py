"""The xDS side: snapshot cache, ADS server (SotW and delta), CSDS, metrics."""

from gammaxds.xds.cache import Provider, SnapshotCache
from gammaxds.xds.metrics import Metrics
from gammaxds.xds.server import XdsServer, start_xds_server

__all__ = ["Metrics", "Provider", "SnapshotCache", "XdsServer", "start_xds_server"]
