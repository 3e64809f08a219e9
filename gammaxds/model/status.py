"""Route status as the translator computes it and the status writer writes it: one entry per Service parentRef,
with the conditions of docs/gamma.md, "Status". Plain data about model objects, so every stage may use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .gateway import ParentReference

DEFAULT_CONTROLLER = "gammaxds.io/mesh"
RouteKey = tuple[str, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class Condition:
    type: Literal["Accepted", "ResolvedRefs", "PartiallyInvalid"]
    status: Literal["True", "False"]
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ParentStatus:
    parent_ref: ParentReference
    conditions: tuple[Condition, ...]
    observed_generation: int = 0

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_dict(self, controller_name: str = DEFAULT_CONTROLLER) -> dict[str, Any]:
        """The `status.parents[]` entry, without `lastTransitionTime` (the status writer owns time)."""
        return {
            "parentRef": self.parent_ref.model_dump(by_alias=True, exclude_none=True),
            "controllerName": controller_name,
            "conditions": [
                {
                    "type": c.type,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "observedGeneration": self.observed_generation,
                }
                for c in self.conditions
            ],
        }


@dataclass
class RouteStatuses:
    """Status of every route that has at least one Service parentRef, keyed by (kind, namespace, name)."""

    routes: dict[RouteKey, list[ParentStatus]] = field(default_factory=dict)

    def to_dict(self, controller_name: str = DEFAULT_CONTROLLER) -> list[dict[str, Any]]:
        return [
            {
                "kind": kind,
                "namespace": ns,
                "name": name,
                "parents": [p.to_dict(controller_name) for p in parents],
            }
            for (kind, ns, name), parents in sorted(self.routes.items())
        ]

    @property
    def all_accepted(self) -> bool:
        return all(
            (c := p.condition("Accepted")) is not None and c.status == "True"
            for parents in self.routes.values()
            for p in parents
        )
