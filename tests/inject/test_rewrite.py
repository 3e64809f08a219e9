"""The rewriter's rules that the goldens do not spell out one by one: purity, the injection record, bad
settings, and the JSON Patch the webhook derives from a rewrite."""

from __future__ import annotations

import copy
import json

import jsonpatch
import pytest

from gammaxds.inject.patch import json_patch, pointer_token, same
from gammaxds.inject.rewrite import (
    ANNOTATION_STATUS,
    ConfigError,
    InjectConfig,
    InjectError,
    _quantity,
    inject,
    uninject,
)

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"containers": [{"name": "app", "image": "app:1"}]},
}


def test_inputs_are_never_changed_in_place() -> None:
    before = copy.deepcopy(POD)
    injected = inject(POD).object
    assert before == POD
    snapshot = copy.deepcopy(injected)
    uninject(injected)
    assert injected == snapshot


def test_a_pod_without_metadata_round_trips() -> None:
    bare = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "image": "a"}]}}
    injected = inject(bare).object
    assert json.loads(injected["metadata"]["annotations"][ANNOTATION_STATUS])["created"][0] == "metadata"
    assert uninject(injected).object == bare


def test_explicit_empty_lists_stay_after_uninject() -> None:
    pod = copy.deepcopy(POD)
    pod["spec"]["initContainers"] = []
    pod["spec"]["volumes"] = []
    pod["metadata"]["annotations"] = {}
    assert uninject(inject(pod).object).object == pod


def test_the_injection_record_is_checked() -> None:
    injected = inject(POD).object
    broken = copy.deepcopy(injected)
    broken["metadata"]["annotations"][ANNOTATION_STATUS] = "yes"
    with pytest.raises(
        InjectError, match=r'metadata.annotations\["gammaxds.io/injected"\]: not what gammaxds'
    ):
        inject(broken)
    stripped = copy.deepcopy(injected)
    stripped["spec"]["initContainers"] = stripped["spec"]["initContainers"][:2]
    with pytest.raises(InjectError, match="records gammaxds-proxy, which the pod lacks"):
        inject(stripped)
    # uninject of the same half-removed pod removes what is left, exactly.
    assert uninject(stripped).object == POD


def test_a_container_we_did_not_add_is_refused_even_beside_our_record() -> None:
    injected = inject(POD).object
    injected["spec"]["containers"].append({"name": "gammaxds-init", "image": "x"})
    with pytest.raises(InjectError, match=r"spec.containers\[1\].name: gammaxds-init is the name"):
        uninject(injected)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"gammaxds.io/inject": "yes"}, 'expected "true" or "false", got \'yes\''),
        ({"gammaxds.io/inbound-capture": "1"}, 'expected "true" or "false"'),
        ({"gammaxds.io/proxy-cpu": "3"}, "the proxy's cpu request 3 exceeds its limit 2"),
        ({"gammaxds.io/proxy-memory-limit": "64Mi"}, "request 128Mi exceeds its limit 64Mi"),
        ({"gammaxds.io/proxy-cpu": 1}, "must be a string (quote it), not a number"),
    ],
)
def test_bad_annotations_name_the_annotation(annotations: dict, message: str) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"] = annotations
    with pytest.raises(InjectError) as caught:
        inject(pod)
    assert str(caught.value).startswith(f'Pod/ns/p: metadata.annotations["{next(iter(annotations))}"]: ')
    assert message in str(caught.value)


def test_quantities() -> None:
    assert _quantity("250m") == _quantity("0.25")
    assert _quantity("1Gi") == 1024**3 and _quantity("1G") == 10**9 and _quantity("1e3") == 1000
    for bad in ("1 GB", "-1", "", "1.2.3", "Mi"):
        assert _quantity(bad) is None, bad


@pytest.mark.parametrize(
    ("config", "flag"),
    [
        (InjectConfig(image="a b"), "--inject-image"),
        (InjectConfig(xds_address="nohost"), "--inject-xds-address"),
        (InjectConfig(service_cidrs=("fd00::/64",)), "--inject-service-cidr"),
    ],
)
def test_bad_settings_name_the_flag(config: InjectConfig, flag: str) -> None:
    with pytest.raises(ConfigError, match=f"^{flag}: "):
        config.validate(flag_prefix="inject-")


def test_other_kinds_pass_through_as_the_same_object() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    assert inject(service).object is service and uninject(service).object is service


def test_the_json_patch_is_minimal_and_applies() -> None:
    injected = inject(POD).object
    ops = json_patch(POD, injected)
    assert {op["path"] for op in ops} == {
        "/metadata/annotations",
        "/spec/initContainers",
        "/spec/volumes",
    }
    assert jsonpatch.apply_patch(POD, ops) == injected
    old = {"a/b": {"x~y": 1}, "gone": True, "n": 1}
    new = {"a/b": {"x~y": 2}, "n": 1.0}
    ops = json_patch(old, new)
    assert ops == [
        {"op": "remove", "path": "/gone"},
        {"op": "replace", "path": "/a~1b/x~0y", "value": 2},
        {"op": "replace", "path": "/n", "value": 1.0},
    ]
    assert jsonpatch.apply_patch(old, ops) == new
    assert json_patch(POD, copy.deepcopy(POD)) == []
    assert pointer_token("~/") == "~0~1"
    assert not same(True, 1) and not same(1, 1.0) and same({"a": [1]}, {"a": [1]})
