"""Subscription rules, against the xDS protocol's own cases."""

from __future__ import annotations

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE
from gammaxds.xds.subscription import Subscription


def test_legacy_wildcard_is_a_first_cds_request_without_names() -> None:
    sub = Subscription(CLUSTER_TYPE)
    sub.update_sotw([])
    assert sub.wildcard
    sub.update_sotw([])  # ACKs of a legacy wildcard keep naming nothing
    assert sub.wildcard


def test_explicit_names_end_a_legacy_wildcard_and_an_empty_list_then_means_nothing() -> None:
    sub = Subscription(CLUSTER_TYPE)
    sub.update_sotw([])
    sub.update_sotw(["a"])
    assert not sub.wildcard and sub.names == {"a"}
    assert sub.update_sotw([]) == {"a"}
    assert not sub.wildcard and not sub.names


def test_star_is_the_wildcard_and_may_come_with_names() -> None:
    sub = Subscription(CLUSTER_TYPE)
    sub.update_sotw(["*", "a"])
    assert sub.wildcard and sub.names == {"a"}
    assert sub.interest({"b": 1}) == {"a", "b"}


def test_endpoints_have_no_legacy_wildcard() -> None:
    sub = Subscription(ENDPOINT_TYPE)
    sub.update_sotw([])
    assert not sub.wildcard and not sub.wants("a")


def test_delta_subscribe_and_unsubscribe_are_incremental() -> None:
    sub = Subscription(ENDPOINT_TYPE)
    sub.update_delta(["a", "b"], [])
    sub.update_delta(["c"], ["a"])
    assert sub.names == {"b", "c"}
    assert sub.update_delta([], ["b", "zzz"]) == {"b"}


def test_delta_legacy_wildcard_and_star() -> None:
    sub = Subscription(CLUSTER_TYPE)
    sub.update_delta([], [])
    assert sub.wildcard
    sub.update_delta([], ["*"])
    assert not sub.wildcard
    sub.update_delta(["*"], [])
    assert sub.wildcard
