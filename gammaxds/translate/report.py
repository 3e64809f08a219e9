"""What `gammaxds translate` prints and what golden files hold: views, route status and input errors as data."""

from __future__ import annotations

from typing import Any

from ..model import Loaded
from ..model.status import DEFAULT_CONTROLLER
from .render import view_to_dict
from .translator import Translation
from .view import CAPTURES, Capture, ViewKey


def default_views(translation: Translation) -> list[ViewKey]:
    """One view per namespace the World knows, in both capture modes."""
    return [ViewKey(ns, capture) for ns in translation.world.namespaces for capture in CAPTURES]


def view_report(translation: Translation, namespace: str, capture: Capture) -> dict[str, Any]:
    return view_to_dict(translation.view(ViewKey(namespace, capture)))


def status_report(
    translation: Translation, loaded: Loaded, controller: str = DEFAULT_CONTROLLER
) -> dict[str, Any]:
    return {
        "routes": translation.statuses.to_dict(controller),
        "errors": [str(e) for e in loaded.errors],
        "warnings": list(loaded.warnings),
    }
