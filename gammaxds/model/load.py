"""Reading Kubernetes objects from dicts, YAML/JSON text and files into models, one error per bad field."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .base import Object
from .errors import ObjectError, from_validation
from .world import KINDS, World

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
    """Objects that loaded, errors for those that did not, warnings for what was skipped."""

    objects: list[Object] = field(default_factory=list)
    errors: list[ObjectError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: Loaded) -> None:
        self.objects += other.objects
        self.errors += other.errors
        self.warnings += other.warnings

    def world(self) -> World:
        return World.of(self.objects)


def parse_object(raw: Any, source: str = "") -> Loaded:
    """One Kubernetes object (or a `kind: List`) as a dict → models. Never raises on bad input."""
    out = Loaded()
    where = f" ({source})" if source else ""
    if not isinstance(raw, dict):
        out.errors.append(
            ObjectError("?", "", "?", "", "document is not a Kubernetes object (a mapping)", source)
        )
        return out
    kind = raw.get("kind")
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name, namespace = str(meta.get("name", "?")), str(meta.get("namespace", "default"))
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in raw):
        for i, item in enumerate(raw.get("items") or []):
            out.extend(parse_object(item, f"{source}, item {i}" if source else f"item {i}"))
        return out
    model = KINDS.get(str(kind))
    if model is None:
        out.warnings.append(
            f"skipping {kind or 'an object without kind'} {namespace}/{name}: not a kind gammaxds reads{where}"
        )
        return out
    if kind == "Namespace":
        namespace = ""
    api_version = raw.get("apiVersion")
    if api_version not in API_VERSIONS[str(kind)]:
        reason = f"apiVersion {api_version!r} is not one of {', '.join(API_VERSIONS[str(kind)])}"
        out.errors.append(ObjectError(str(kind), namespace, name, "apiVersion", reason, source))
        return out
    try:
        out.objects.append(model.model_validate(raw))
    except ValidationError as err:
        out.errors += from_validation(err, str(kind), namespace, name, source)
    return out


def parse_text(text: str, source: str = "") -> Loaded:
    """Multi-document YAML (JSON is YAML). A syntax error is reported once for the whole text."""
    out = Loaded()
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        try:  # JSON with a top-level array is not valid YAML stream content in every case
            docs = [json.loads(text)]
        except ValueError:
            out.errors.append(ObjectError("?", "", source or "?", "", f"cannot parse YAML: {err}", source))
            return out
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        out.extend(parse_object(doc, f"{source}, document {i + 1}" if source else f"document {i + 1}"))
    return out


def manifest_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and `*.yaml`/`*.yml`/`*.json` below directories, in a stable order."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
        else:
            yield p


def load_paths(paths: Iterable[str | Path]) -> Loaded:
    out = Loaded()
    for f in manifest_files(paths):
        try:
            text = f.read_text()
        except OSError as err:
            out.errors.append(ObjectError("?", "", str(f), "", f"cannot read: {err.strerror}", str(f)))
            continue
        out.extend(parse_text(text, str(f)))
    return out
