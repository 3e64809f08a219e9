"""The admin HTTP server: health, readiness, metrics and debug endpoints."""

from gammaxds.admin.server import AdminServer, start_admin_server

__all__ = ["AdminServer", "start_admin_server"]
