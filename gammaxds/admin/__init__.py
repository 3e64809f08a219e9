"""The admin HTTP server: health, readiness, metrics, debug endpoints, an index at / and the dashboard at /ui."""

from gammaxds.admin.server import AdminServer, start_admin_server

__all__ = ["AdminServer", "start_admin_server"]
