"""Views and statuses as plain data (proto3 JSON form), for the CLI, the admin server and golden files."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToJson

from .view import View


def _sorted_structs(data: Any) -> Any:
    """Metadata is a protobuf Struct, a map: its JSON keys come in the map's iteration order, which differs
    from one process to the next. Sorted, the same view prints the same text on every run (goldens)."""
    if isinstance(data, dict):
        return {k: (_sort_all(v) if k == "filterMetadata" else _sorted_structs(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_sorted_structs(v) for v in data]
    return data


def _sort_all(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sort_all(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sort_all(v) for v in data]
    return data


def view_to_dict(view: View) -> dict[str, list[dict[str, Any]]]:
    def dump(messages: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [_sorted_structs(json.loads(MessageToJson(m))) for m in messages]

    return {
        "clusters": dump(view.clusters),
        "endpoints": dump(view.endpoints),
        "listeners": dump(view.listeners),
        "routes": dump(view.routes),
    }
