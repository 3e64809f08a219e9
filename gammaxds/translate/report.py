"""What `gammaxds translate` prints and what golden files hold: views, route status and input errors as data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..model import Loaded, ObjectError
from ..model.status import DEFAULT_CONTROLLER
from .render import view_to_dict
from .translator import Translation
from .view import CAPTURES, Capture, ViewKey


def default_views(translation: Translation) -> list[ViewKey]:
    """One view per namespace the World knows, in both capture modes."""
    return [ViewKey(ns, capture) for ns in translation.world.namespaces for capture in CAPTURES]


def view_report(
    translation: Translation, namespace: str, capture: Capture, access_log: bool = True
) -> dict[str, Any]:
    return view_to_dict(translation.view(ViewKey(namespace, capture, access_log=access_log)))


def route_objects(translation: Translation, controller: str = DEFAULT_CONTROLLER) -> list[dict[str, Any]]:
    """Every route gammaxds handles, with only its own `status.parents[]` entries (README, "Refused
    inputs"): what the status writer puts in Kubernetes, without the times it stamps."""
    world = translation.world
    out = []
    for (kind, ns, name), parents in sorted(translation.statuses.routes.items()):
        route = world.objects.get((kind, ns, name))
        out.append(
            {
                "apiVersion": route.api_version if route is not None else "",
                "kind": kind,
                "namespace": ns,
                "name": name,
                "generation": route.metadata.generation if route is not None else 0,
                "status": {"parents": [p.to_dict(controller) for p in parents]},
            }
        )
    return out


def status_document(
    translation: Translation | None,
    errors: Iterable[ObjectError],
    warnings: Iterable[str] = (),
    controller: str = DEFAULT_CONTROLLER,
) -> dict[str, Any]:
    """`/debug/status` and the `status` of `gammaxds translate`: one function, so both say the same."""
    return {
        "objects": route_objects(translation, controller) if translation is not None else [],
        "errors": [e.to_dict() for e in errors],
        "warnings": list(warnings),
    }


def status_report(
    translation: Translation, loaded: Loaded, controller: str = DEFAULT_CONTROLLER
) -> dict[str, Any]:
    return status_document(translation, loaded.errors, loaded.warnings, controller)
