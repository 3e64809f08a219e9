"""Reading Kubernetes objects from dicts, YAML/JSON text and files into models, one error per bad field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .base import STRICT, Object
from .errors import ObjectError, from_validation
from .world import KINDS, Key, World, key_of

API_VERSIONS: dict[str, tuple[str, ...]] = {
    "Namespace": ("v1",),
    "Service": ("v1",),
    "EndpointSlice": ("discovery.k8s.io/v1",),
    "HTTPRoute": ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"),
    "GRPCRoute": ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"),
    "ReferenceGrant": ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"),
}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Loaded:
    """Objects that loaded, errors for those that did not, warnings for what was skipped.

    `origins[i]` is where `objects[i]` came from: (file, 1-based document), for naming duplicates."""

    objects: list[Object] = field(default_factory=list)
    errors: list[ObjectError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    origins: list[tuple[str, int | None]] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.objects += other.objects
        self.errors += other.errors
        self.warnings += other.warnings
        self.origins += other.origins

    def world(self) -> World:
        return World.of(self.objects)


def _where(file: str, document: int | None) -> str:
    if file and document is not None:
        return f" ({file}, document {document})"
    return f" ({file})" if file else ""


def parse_object(
    raw: Any,
    file: str = "",
    document: int | None = None,
    *,
    prefix: str = "",
    context: dict[str, Any] | None = None,
) -> Loaded:
    """One Kubernetes object (or a `kind: List`) as a dict → models. Never raises on bad input.

    `prefix` is the path of `raw` inside its document (`items[2]` in a List); `context` is pydantic's
    validation context: `STRICT` (the default) for manifests, `LENIENT` for objects an API server has
    already validated."""
    out = Loaded()
    if not isinstance(raw, dict):
        reason = "document is not a Kubernetes object (a mapping)"
        out.errors.append(ObjectError("?", "", "?", prefix, reason, file, document))
        return out
    kind = raw.get("kind")
    meta = raw.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name, namespace = str(meta.get("name", "?")), str(meta.get("namespace", "default"))
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in raw):
        for i, item in enumerate(raw.get("items") or []):
            item_prefix = f"{prefix}.items[{i}]" if prefix else f"items[{i}]"
            out.extend(parse_object(item, file, document, prefix=item_prefix, context=context))
        return out
    model = KINDS.get(str(kind))
    if model is None:
        out.warnings.append(
            f"skipping {kind or 'an object without kind'} {namespace}/{name}: not a kind gammaxds reads"
            + _where(file, document)
        )
        return out
    if kind == "Namespace":
        namespace = ""
    api_version = raw.get("apiVersion")
    if api_version not in API_VERSIONS[str(kind)]:
        reason = f"apiVersion {api_version!r} is not one of {', '.join(API_VERSIONS[str(kind)])}"
        field_name = f"{prefix}.apiVersion" if prefix else "apiVersion"
        out.errors.append(ObjectError(str(kind), namespace, name, field_name, reason, file, document))
        return out
    try:
        out.objects.append(model.model_validate(raw, context=STRICT if context is None else context))
        out.origins.append((file, document))
    except ValidationError as err:
        out.errors += from_validation(err, str(kind), namespace, name, file, document, prefix)
    return out


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's message without its `in "<unicode string>"` (the text was read from a file we name)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        what = "; ".join(p for p in (err.context, err.problem) if p)
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
    return str(err).split("\n")[0]


def parse_text(text: str, file: str = "") -> Loaded:
    """Multi-document YAML (JSON is YAML). A syntax error is reported once for the whole text.

    Every document's object is returned, also an object that appears twice: `duplicates` picks the copy in
    force, the same way for one file and for many."""
    out = Loaded()
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        try:  # JSON with a top-level array is not valid YAML stream content in every case
            docs = [json.loads(text)]
        except ValueError:
            reason = f"cannot parse YAML: {_yaml_problem(err)}"
            out.errors.append(ObjectError("?", "", file or "?", "", reason, file))
            return out
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        out.extend(parse_object(doc, file, i + 1))
    return out


def duplicates(
    loaded: list[tuple[Object, str, int | None]],
) -> tuple[dict[Key, Object], list[ObjectError]]:
    """The objects in force, by key, from (object, file, document) in reading order: the last copy of an object
    wins, and every earlier copy is an error that names where the one in force is."""
    last: dict[Key, tuple[Object, str, int | None]] = {}
    for entry in loaded:
        last[key_of(entry[0])] = entry
    errors = []
    for obj, file, document in loaded:
        key = key_of(obj)
        winner = last[key]
        if winner[0] is not obj:
            where = _where(winner[1], winner[2]).strip(" ()") or "another document"
            reason = f"also defined in {where}, which is the copy in force"
            errors.append(ObjectError(key[0], key[1], key[2], "", reason, file, document, "other copy"))
    return {k: v[0] for k, v in last.items()}, errors


def _hidden(path: Path, top: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def manifest_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and `*.yaml`/`*.yml`/`*.json` below directories, in a stable order.

    Below a directory, hidden files and directories are skipped: editors' temporary files, and the `..data`
    and `..2024_01_01_...` directories of a mounted ConfigMap, whose files the visible names link to (reading
    both would report every object as defined twice)."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix in MANIFEST_SUFFIXES and not _hidden(f, p)
            )
        else:
            yield p


def reading_order(files: Iterable[Path]) -> list[Path]:
    """The order in which files are applied: by path, so the copy in force of a duplicated object does not
    depend on the order paths were given in (the manifest source and `translate` agree)."""
    return sorted(set(files), key=str)


def load_paths(paths: Iterable[str | Path]) -> Loaded:
    """Every manifest under `paths`, with one copy of each object (see `one_copy_each`)."""
    out = Loaded()
    for f in reading_order(manifest_files(paths)):
        try:
            text = f.read_text()
        except OSError as err:
            out.errors.append(ObjectError("?", "", str(f), "", f"cannot read: {err.strerror}", str(f)))
            continue
        out.extend(parse_text(text, str(f)))
    return one_copy_each(out)


def one_copy_each(loaded: Loaded) -> Loaded:
    """`loaded` with only the copy in force of each duplicated object, and an error for each other copy."""
    entries = [(o, file, doc) for o, (file, doc) in zip(loaded.objects, loaded.origins, strict=True)]
    in_force, dup_errors = duplicates(entries)
    kept = {id(o) for o in in_force.values()}
    out = Loaded(warnings=list(loaded.warnings), errors=[*loaded.errors, *dup_errors])
    for obj, origin in zip(loaded.objects, loaded.origins, strict=True):
        if id(obj) in kept:
            out.objects.append(obj)
            out.origins.append(origin)
    return out
