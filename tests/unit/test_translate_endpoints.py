"""EndpointSlice conditions → Envoy priorities, duplicates across slices, target ports by slice port name."""

from __future__ import annotations

from typing import Any

import pytest

from gammaxds.model import EndpointSlice, Service
from gammaxds.translate.envoy.endpoints import (
    FALLBACK,
    READY,
    _priority,
    build_load_assignment,
    collect_endpoints,
)

SERVICE = Service.model_validate(
    {
        "metadata": {"name": "echo", "namespace": "app"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }
)
PORT = SERVICE.spec.ports[0]


def eps(
    name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None
) -> EndpointSlice:
    return EndpointSlice.model_validate(
        {
            "metadata": {"name": name, "namespace": "app", "labels": {"kubernetes.io/service-name": "echo"}},
            "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
            "endpoints": endpoints,
        }
    )


@pytest.mark.parametrize(
    ("ready", "serving", "terminating", "expected"),
    [
        (None, None, None, READY),  # missing ready means ready
        (True, None, None, READY),
        (True, True, False, READY),
        (None, False, True, READY),  # ready unset wins over the others, as Kubernetes says
        (False, True, True, FALLBACK),  # serving while terminating: only when nothing is ready
        (False, True, False, None),
        (False, True, None, None),
        (False, False, True, None),
        (False, None, True, None),
        (False, None, None, None),
    ],
)
def test_condition_priorities(
    ready: bool | None, serving: bool | None, terminating: bool | None, expected: int | None
) -> None:
    assert _priority(ready, serving, terminating) == expected


def test_an_endpoint_in_several_slices_keeps_its_best_condition() -> None:
    a = eps(
        "a",
        [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True, "terminating": True}}],
    )
    b = eps("b", [{"addresses": ["10.0.0.1"], "zone": "z1"}, {"addresses": ["10.0.0.2"]}])
    assert collect_endpoints(PORT, [a, b]) == {
        ("10.0.0.1", 8080): (READY, "z1"),
        ("10.0.0.2", 8080): (READY, ""),
    }
    assert collect_endpoints(PORT, [b, a]) == collect_endpoints(PORT, [a, b])


def test_target_port_comes_from_the_slice_port_with_the_service_port_name() -> None:
    a = eps(
        "a", [{"addresses": ["10.0.0.1"]}], [{"name": "http", "port": 8080}, {"name": "debug", "port": 6060}]
    )
    b = eps("b", [{"addresses": ["10.0.0.2"]}], [{"name": "http", "port": 9090}])
    other = eps("c", [{"addresses": ["10.0.0.3"]}], [{"name": "metrics", "port": 9102}])
    assert collect_endpoints(PORT, [a, b, other]) == {
        ("10.0.0.1", 8080): (READY, ""),
        ("10.0.0.2", 9090): (READY, ""),
    }


def test_fallback_endpoints_form_priority_one_and_zones_form_localities() -> None:
    s = eps(
        "a",
        [
            {"addresses": ["10.0.0.3"], "zone": "b"},
            {"addresses": ["10.0.0.1"], "zone": "a"},
            {"addresses": ["10.0.0.2"]},
            {
                "addresses": ["10.0.0.4"],
                "zone": "a",
                "conditions": {"ready": False, "serving": True, "terminating": True},
            },
            {"addresses": ["10.0.0.5"], "conditions": {"ready": False}},
        ],
    )
    cla = build_load_assignment(SERVICE, PORT, [s])
    groups = [
        (g.priority, g.locality.zone, [e.endpoint.address.socket_address.address for e in g.lb_endpoints])
        for g in cla.endpoints
    ]
    assert groups == [
        (0, "", ["10.0.0.2"]),
        (0, "a", ["10.0.0.1"]),
        (0, "b", ["10.0.0.3"]),
        (1, "a", ["10.0.0.4"]),
    ]
    assert cla.cluster_name == "outbound|80||echo.app.svc.cluster.local"
