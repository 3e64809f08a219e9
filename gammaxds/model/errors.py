"""Errors that name the object and the field, so a user can fix the manifest they came from."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class ObjectError:
    """One reason an input object was refused. The rest of the World is unaffected."""

    kind: str
    namespace: str
    name: str
    field: str
    reason: str
    source: str = ""  # "file.yaml, document 2" when the object came from a file

    def __str__(self) -> str:
        where = f" ({self.source})" if self.source else ""
        who = f"{self.namespace}/{self.name}" if self.namespace else self.name
        field = f" {self.field}:" if self.field else ""
        return f"{self.kind} {who}:{field} {self.reason}{where}"


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


def from_validation(
    err: ValidationError, kind: str, namespace: str, name: str, source: str
) -> list[ObjectError]:
    out = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        out.append(ObjectError(kind, namespace, name, field_path(e["loc"]), msg, source))
    return out
