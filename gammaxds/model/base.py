"""Shared pieces of the Kubernetes object models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class K8sModel(BaseModel):
    """Kubernetes JSON field names (camelCase), unknown fields ignored, immutable once loaded."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, serialize_by_alias=True
    )


class ObjectMeta(K8sModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str = "default"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_timestamp: datetime | None = None
    generation: int = 0
    resource_version: str = ""
    uid: str = ""


class Object(K8sModel):
    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.metadata.namespace}/{self.metadata.name}"


_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a Gateway API duration (like 1h2m3s, 500ms)")
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def duration_ms(value: str) -> int:
    """Milliseconds of a Gateway API duration (already validated)."""
    return sum(int(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(value))


PortNumber = Annotated[int, Field(ge=1, le=65535)]
