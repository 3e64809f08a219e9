"""Views and statuses as plain data (proto3 JSON form), for the CLI, the admin server and golden files."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToJson

from .view import View


def view_to_dict(view: View) -> dict[str, list[dict[str, Any]]]:
    def dump(messages: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [json.loads(MessageToJson(m)) for m in messages]

    return {
        "clusters": dump(view.clusters),
        "endpoints": dump(view.endpoints),
        "listeners": dump(view.listeners),
        "routes": dump(view.routes),
    }
