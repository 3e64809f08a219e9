"""Every manifest under deploy/ is what the API server would accept, checked offline (no cluster needed).

Each document of each `*.yaml`/`*.yml`/`*.json` file below deploy/ (found anew on every run, so a new file is
covered the moment it exists) goes through `gammaxds.testing.kube_schema`:
- built-in kinds against the Kubernetes 1.37 OpenAPI schemas that kubernetes-validate ships (strict: unknown
  fields are errors, as with kubectl's default `--validate=strict`);
- Gateway API kinds (HTTPRoute, GRPCRoute, ReferenceGrant) with gammaxds's own model, which implements the
  CRDs' validation rules; every error it reports fails the test;
- any other kind fails the test, naming it: nothing passes unchecked.

What the manifests mean (RBAC granting exactly what the sources use, the Deployment's arguments and probes) is
tests/sources/test_deploy.py's business; this module checks only that they are valid.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_validate import utils as kubernetes_validate

from gammaxds.testing.kube_schema import (
    KUBERNETES_VERSION,
    assert_valid_manifests,
    manifest_problems,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SUFFIXES = (".yaml", ".yml", ".json")  # what `kubectl apply -f DIR` reads


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in SUFFIXES)


def test_the_files_are_found() -> None:
    """A glob that stopped matching would make the parametrised test below pass on nothing."""
    found = {p.relative_to(DEPLOY).as_posix() for p in manifest_files()}
    assert {"kubernetes/00-namespace.yaml", "kubernetes/20-deployment.yaml"} <= found


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_manifest_file_is_valid(path: Path) -> None:
    text = path.read_text()
    source = path.relative_to(ROOT).as_posix()
    assert_valid_manifests(text, source)
    assert any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()), (
        f"{source} holds no Kubernetes object"
    )


def test_the_schema_version_is_one_kubernetes_validate_ships() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.all_versions()


# The checker itself: each kind of mistake is caught, and says where.

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
"""

HTTPROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: store}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /reviews}}]
      backendRefs: [{name: reviews-v2, port: 80}]
"""


def test_valid_built_in_and_gateway_api_objects_pass() -> None:
    assert manifest_problems(f"{DEPLOYMENT}---\n{HTTPROUTE}---\n") == []


def test_an_unknown_field_is_an_error_with_its_path() -> None:
    [problem] = manifest_problems(DEPLOYMENT + "          imagePullPolcy: Always\n", "d.yaml")
    assert problem.startswith("d.yaml, document 1: Deployment web: spec.template.spec.containers.0: ")
    assert "'imagePullPolcy' was unexpected" in problem


def test_a_wrong_type_and_a_missing_required_field_are_errors() -> None:
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: http}]\n"
    [problem] = manifest_problems(service)
    assert "spec.ports.0.port: 'http' is not of type 'integer'" in problem
    [problem] = manifest_problems(
        DEPLOYMENT.replace("          image: web:1\n", "").replace("- name", "- nme")
    )
    assert "spec.template.spec.containers.0" in problem


def test_a_gateway_api_object_is_checked_with_the_crd_rules() -> None:
    [problem] = manifest_problems(HTTPROUTE.replace("value: /reviews", "value: reviews"))
    assert "HTTPRoute reviews: spec.rules[0].matches[0].path: path 'reviews' must start with '/'" in problem
    [problem] = manifest_problems(
        HTTPROUTE.replace("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v2")
    )
    assert "apiVersion" in problem


def test_a_kind_nobody_can_check_fails_by_name() -> None:
    custom = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    [problem] = manifest_problems(custom)
    assert "Widget w" in problem and "nothing can check it" in problem
    gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n"
    [problem] = manifest_problems(gateway)
    assert "Gateway g" in problem and "nothing can check it" in problem


def test_documents_that_are_no_object_fail() -> None:
    assert manifest_problems("- a\n- b\n") == [
        "manifests, document 1: not a Kubernetes object (a mapping), but list"
    ]
    assert "apiVersion and kind" in manifest_problems("metadata: {name: x}\n")[0]
    assert "no metadata.name" in manifest_problems("apiVersion: v1\nkind: ConfigMap\n")[0]
    assert "not valid YAML" in manifest_problems("a: [\n")[0]


def test_a_list_is_checked_item_by_item() -> None:
    items = "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {x: 1}}\n"
    [problem] = manifest_problems(items)
    assert problem.startswith("manifests, document 1, item 0: Service s: spec: ")


def test_assert_valid_manifests_names_every_problem() -> None:
    bad = "apiVersion: example.com/v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n"
    with pytest.raises(AssertionError) as caught:
        assert_valid_manifests(bad, "out")
    assert "out, document 1: A a" in str(caught.value) and "out, document 2: B b" in str(caught.value)
