"""The pure part of the status writer: old status + our computed entries + now → new status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gammaxds.sources.status import route_status, status_changed

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 5, 0, tzinfo=UTC)
OURS = "gammaxds.io/mesh"
CART = {"group": "", "kind": "Service", "name": "cart", "port": 80}
SHOP = {"group": "", "kind": "Service", "name": "shop"}


def entry(
    ref: dict[str, Any], reason: str = "Accepted", status: str = "True", generation: int = 1
) -> dict[str, Any]:
    return {
        "parentRef": ref,
        "controllerName": OURS,
        "conditions": [
            {
                "type": "Accepted",
                "status": status,
                "reason": reason,
                "message": "",
                "observedGeneration": generation,
            },
            {
                "type": "ResolvedRefs",
                "status": "True",
                "reason": "ResolvedRefs",
                "message": "",
                "observedGeneration": generation,
            },
        ],
    }


def istio(name: str) -> dict[str, Any]:
    return {
        "parentRef": {"group": "", "kind": "Service", "name": name},
        "controllerName": "istio.io/gateway-controller",
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "lastTransitionTime": "2020-01-01T00:00:00Z",
            }
        ],
    }


def test_first_status_stamps_every_condition_with_now() -> None:
    new = route_status(None, [entry(CART)], now=T0)
    [parent] = new["parents"]
    assert parent["controllerName"] == OURS and parent["parentRef"] == CART
    assert [c["lastTransitionTime"] for c in parent["conditions"]] == ["2024-05-01T12:00:00Z"] * 2
    assert [c["observedGeneration"] for c in parent["conditions"]] == [1, 1]
    assert status_changed(None, new)


def test_unchanged_conditions_keep_their_time_and_need_no_write() -> None:
    old = route_status(None, [entry(CART)], now=T0)
    new = route_status(old, [entry(CART)], now=T1)
    assert new == old
    assert not status_changed(old, new)


def test_a_changed_condition_gets_a_new_time_and_the_others_keep_theirs() -> None:
    old = route_status(None, [entry(CART)], now=T0)
    new = route_status(old, [entry(CART, reason="NoMatchingParent", status="False")], now=T1)
    accepted, resolved = new["parents"][0]["conditions"]
    assert (accepted["reason"], accepted["lastTransitionTime"]) == (
        "NoMatchingParent",
        "2024-05-01T12:05:00Z",
    )
    assert resolved["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert status_changed(old, new)


def test_a_new_generation_is_written_without_moving_transition_times() -> None:
    old = route_status(None, [entry(CART, generation=1)], now=T0)
    new = route_status(old, [entry(CART, generation=2)], now=T1)
    assert status_changed(old, new)
    assert {c["observedGeneration"] for c in new["parents"][0]["conditions"]} == {2}
    assert {c["lastTransitionTime"] for c in new["parents"][0]["conditions"]} == {"2024-05-01T12:00:00Z"}


def test_other_controllers_entries_are_preserved_untouched() -> None:
    old = {"parents": [istio("cart"), *route_status(None, [entry(CART)], now=T0)["parents"], istio("shop")]}
    new = route_status(old, [entry(SHOP)], now=T1)
    assert new["parents"][:2] == [istio("cart"), istio("shop")]
    assert [p["parentRef"] for p in new["parents"][2:]] == [SHOP]


def test_our_entries_for_parents_no_longer_referenced_are_removed() -> None:
    old = route_status({"parents": [istio("cart")]}, [entry(CART), entry(SHOP)], now=T0)
    new = route_status(old, [entry(SHOP)], now=T1)
    assert [p["parentRef"] for p in new["parents"]] == [istio("cart")["parentRef"], SHOP]
    assert route_status(new, [], now=T1) == {"parents": [istio("cart")]}


def test_no_entries_and_no_status_is_no_change() -> None:
    assert not status_changed(None, route_status(None, [], now=T0))
    assert not status_changed({}, route_status({}, [], now=T0))


def test_parent_refs_compare_with_api_defaults() -> None:
    gateway = {"name": "gw"}  # group and kind omitted: gateway.networking.k8s.io Gateway
    old = route_status(
        None, [entry({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"})], now=T0
    )
    new = route_status(old, [entry(gateway)], now=T1)
    assert {c["lastTransitionTime"] for c in new["parents"][0]["conditions"]} == {"2024-05-01T12:00:00Z"}


def test_observed_generation_falls_back_to_the_objects_generation() -> None:
    new = route_status(None, [entry(CART, generation=0)], now=T0, generation=7)
    assert {c["observedGeneration"] for c in new["parents"][0]["conditions"]} == {7}


def test_another_controller_name_is_ours_when_configured() -> None:
    mine = {**entry(CART), "controllerName": "example.com/mesh"}
    new = route_status({"parents": [entry(SHOP)]}, [mine], now=T0, controller_name="example.com/mesh")
    assert [p["controllerName"] for p in new["parents"]] == [OURS, "example.com/mesh"]
