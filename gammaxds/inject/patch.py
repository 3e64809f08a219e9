"""RFC 6902 JSON Patch from two JSON documents: what the admission webhook answers with.

Pure. Mappings are compared key by key, so the patch touches only what changed (a new annotation is one `add`
at `/metadata/annotations/gammaxds.io~1injected`); a list that changed is replaced whole, which is exact
for the lists the rewriter changes (it prepends init containers and appends a volume) and needs no list diff.
"""

from __future__ import annotations

from typing import Any


def pointer_token(key: str) -> str:
    """One JSON Pointer reference token (RFC 6901): `~` and `/` escaped."""
    return key.replace("~", "~0").replace("/", "~1")


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ==, `true` is not `1` and `1` is not `1.0`."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def json_patch(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """The operations that turn `old` into `new` (empty when they are equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[dict[str, Any]] = [
            {"op": "remove", "path": f"{path}/{pointer_token(k)}"} for k in old if k not in new
        ]
        for key, value in new.items():
            at = f"{path}/{pointer_token(key)}"
            if key not in old:
                ops.append({"op": "add", "path": at, "value": value})
            else:
                ops += json_patch(old[key], value, at)
        return ops
    if same(old, new):
        return []
    return [{"op": "replace", "path": path, "value": new}]
