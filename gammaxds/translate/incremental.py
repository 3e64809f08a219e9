"""What a change of each kind of input can affect, as data; the translator picks its path from it.

Each kind maps to the outputs an object of that kind feeds (see the memo inputs in `translator.py`). A change
whose kinds feed only ClusterLoadAssignments takes the endpoints path; only route configurations and route
status, the routes path; anything else is a full translation, in which the memo still reuses every resource
whose inputs are the same objects. docs/architecture.md, "The memo and incremental translation", explains
each path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Output = Literal["clusters", "endpoints", "listeners", "routes", "status"]
Path = Literal["endpoints", "routes", "full"]

AFFECTS: dict[str, frozenset[Output]] = {
    "EndpointSlice": frozenset({"endpoints"}),
    "HTTPRoute": frozenset({"routes", "status"}),
    "GRPCRoute": frozenset({"routes", "status"}),
    # A Service feeds everything: its clusters, endpoints and listeners, and the routes and status of every
    # route that names it as a parent or a backend.
    "Service": frozenset({"clusters", "endpoints", "listeners", "routes", "status"}),
    # A Namespace can add a client namespace, which is a view of its own.
    "Namespace": frozenset({"clusters", "endpoints", "listeners", "routes", "status"}),
    "ReferenceGrant": frozenset({"routes", "status"}),
}
_EVERYTHING: frozenset[Output] = frozenset({"clusters", "endpoints", "listeners", "routes", "status"})

PATHS: tuple[tuple[Path, frozenset[Output]], ...] = (
    ("endpoints", frozenset({"endpoints"})),
    ("routes", frozenset({"routes", "status"})),
)


def path_for(kinds: Iterable[str]) -> Path:
    """The cheapest path that covers everything the changed kinds affect. ReferenceGrants are read by no
    stage incrementally yet, so they take the full path."""
    kinds = set(kinds)
    affected: set[Output] = set()
    for kind in kinds:
        affected |= AFFECTS.get(kind, _EVERYTHING)
    if "ReferenceGrant" in kinds:
        return "full"
    for path, covers in PATHS:
        if affected <= covers:
            return path
    return "full"
