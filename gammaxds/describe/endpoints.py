"""The admin API's `/debug/describe/service` and `/debug/describe/proxy`: what `gammaxds describe` asks a
running control plane. Each returns (HTTP status, JSON body); a bad query is a 4xx naming the parameter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..model import ObjectError
from ..translate.translator import Translation
from ..xds.stream import Stream
from .proxy import describe_proxy
from .service import UnknownService, describe_service

Answer = tuple[int, dict[str, Any]]


def service_answer(
    translation: Translation | None, errors: Iterable[ObjectError], query: Mapping[str, str]
) -> Answer:
    namespace, name = query.get("namespace", ""), query.get("name", "")
    if not namespace or not name:
        return 400, {
            "error": "namespace and name are required: /debug/describe/service?namespace=NS&name=NAME"
        }
    if translation is None:
        return 503, {"error": "no configuration yet: the sources have not loaded"}
    try:
        return 200, describe_service(translation, namespace, name, query.get("from") or None, errors)
    except UnknownService as err:
        return 404, {"error": str(err)}


def proxy_answer(streams: Iterable[Stream], query: Mapping[str, str]) -> Answer:
    node = query.get("node", "")
    if not node:
        return 400, {"error": "node is required: /debug/describe/proxy?node=ID"}
    found = [s for s in streams if s.node.id == node]
    if not found:
        return 404, {"error": f"no sidecar with node id {node!r} is connected (see gammaxds status)"}
    return 200, describe_proxy(sorted(found, key=lambda s: s.id)[-1])
