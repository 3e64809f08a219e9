"""Helpers shared by the end-to-end tests and the demo (no pytest imports here)."""
