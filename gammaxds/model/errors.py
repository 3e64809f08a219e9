"""Errors that name the object and the field, so a user can fix the manifest they came from.

The same records are logged, served at `/debug/status` (`errors`) and printed by `gammaxds translate`, so the
three always agree on what is not in force and why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import ValidationError

InForce = Literal["none", "previous version", "other copy"]
"""What of the object is in force instead of the refused input: nothing; the last valid version read before
(a working object stays working while an edit of it is wrong); or another copy of the same object (the same
kind, namespace and name in another file or document, which is the one used)."""


@dataclass(frozen=True)
class ObjectError:
    """One reason an input object was refused. The rest of the World is unaffected."""

    kind: str
    namespace: str
    name: str
    field: str
    reason: str
    file: str = ""  # the manifest file it came from; "" for objects read from an API server
    document: int | None = None  # 1-based YAML document in `file`; None for a problem of the whole file
    in_force: InForce = "none"

    @property
    def source(self) -> str:
        """Where the input was: "file.yaml, document 2", "file.yaml", or ""."""
        if self.file and self.document is not None:
            return f"{self.file}, document {self.document}"
        return self.file

    @property
    def whole_file(self) -> bool:
        """A problem that names no object (unreadable, not YAML, a document that is not an object)."""
        return self.kind == "?"

    def kept(self, in_force: InForce) -> ObjectError:
        return replace(self, in_force=in_force)

    def __str__(self) -> str:
        if self.whole_file:
            kept = "; the objects it held before stay in force" if self.in_force == "previous version" else ""
            at = f" {self.field}:" if self.field else ""
            return f"{self.source or self.name}:{at} {self.reason}{kept}"
        where = f" ({self.source})" if self.source else ""
        who = f"{self.namespace}/{self.name}" if self.namespace else self.name
        field = f" {self.field}:" if self.field else ""
        kept = "; its previous version stays in force" if self.in_force == "previous version" else ""
        return f"{self.kind} {who}:{field} {self.reason}{where}{kept}"

    def to_dict(self) -> dict[str, Any]:
        """The `/debug/status` and `gammaxds translate` form (README, "Refused inputs")."""
        return {
            "file": self.file,
            "document": self.document,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "field": self.field,
            "reason": self.reason,
            "inForce": self.in_force,
        }


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-after[") or part in ("list", "str", "int"):
            continue
        else:
            out += f".{part}" if out else part
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_field(path: str, key: str, known: list[str]) -> tuple[str, str]:
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return _join(path, key), "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def from_validation(
    err: ValidationError,
    kind: str,
    namespace: str,
    name: str,
    file: str = "",
    document: int | None = None,
    prefix: str = "",
) -> list[ObjectError]:
    """One ObjectError per problem pydantic found; an unknown key is reported at its own path."""
    out = []
    for e in err.errors(include_url=False):
        path = _join(prefix, field_path(e["loc"])) if prefix else field_path(e["loc"])
        if e["type"] == "unknown_field":
            ctx = e.get("ctx") or {}
            for key in ctx.get("fields", []):
                where, reason = _unknown_field(path, str(key), list(ctx.get("known", [])))
                out.append(ObjectError(kind, namespace, name, where, reason, file, document))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        out.append(ObjectError(kind, namespace, name, path, msg, file, document))
    return out
