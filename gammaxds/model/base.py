"""Shared pieces of the Kubernetes object models."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

STRICT = {"unknown_fields": "refuse"}
"""Validation context for input written by people (manifests): a key that is not a field is an error."""
LENIENT = {"unknown_fields": "ignore"}
"""Validation context for objects read from a Kubernetes API server, which has already checked them against
the schema: a field gammaxds does not model there is one newer than gammaxds, not a typo, and is ignored.
(Models built in code, with no context, take field names as well as the API's camelCase.)"""


@cache
def _known_keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(f.alias or name for name, f in model.model_fields.items())


class K8sModel(BaseModel):
    """Kubernetes JSON field names (camelCase), immutable once loaded.

    A key that is not a field of the API (a misspelling such as `backendRef:` for `backendRefs:`, or a
    snake_case name) refuses the object, as `kubectl apply --validate=strict` would: silently ignoring it would
    report the route Accepted while it does something else than what was written. Models therefore carry every
    field of the API version they read, also those gammaxds does not act on.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, serialize_by_alias=True
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or (info.context or {}).get("unknown_fields") != "refuse":
            return data
        unknown = [k for k in data if k not in _known_keys(cls)]
        if unknown:
            raise PydanticCustomError(
                "unknown_field",
                "unknown field(s) {fields}",
                {"fields": unknown, "known": sorted(_known_keys(cls))},
            )
        return data


class ObjectMeta(K8sModel):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str = "default"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_timestamp: datetime | None = None
    # What `observedGeneration` reports; the API server starts every object at 1, and so does a manifest.
    generation: int = 1
    resource_version: str = ""
    uid: str = ""
    # Set by the API server or other controllers; read from a cluster, never acted on.
    generate_name: str = ""
    deletion_timestamp: datetime | None = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] = []
    owner_references: list[dict[str, Any]] = []
    managed_fields: list[dict[str, Any]] = []
    self_link: str = ""


class Object(K8sModel):
    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta
    status: Any = None  # written by controllers, never read as input (routes type theirs)

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
