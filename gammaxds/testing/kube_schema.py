"""Offline validation of Kubernetes manifests, for tests of the manifests gammaxds ships or prints.

No cluster is needed, so a test can check that `kubectl apply` would accept a YAML stream before anyone has a
cluster to try it on. Each document is checked the way it would be checked on apply:

- built-in kinds (Deployment, Service, RBAC, webhook configurations, ...) against the Kubernetes OpenAPI schemas
  that kubernetes-validate ships, in their strict form (an unknown field is an error, as with kubectl's default
  `--validate=strict`);
- Gateway API kinds, for which those schemas have nothing, with gammaxds's own model (`gammaxds.model`), which
  implements the CRDs' validation rules; a Gateway API kind the model does not read is an error;
- any other kind is an error too, so that nothing passes unchecked.

Needs the `test` extra (kubernetes-validate). Use from a test:

    from gammaxds.testing.kube_schema import assert_valid_manifests, manifest_problems

    assert_valid_manifests(output, source="gammaxds inject")  # AssertionError naming every problem
    assert manifest_problems(output) == []                     # the same check, as a list of messages
"""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes_validate import utils as kubernetes_validate

from gammaxds.model import parse_object

# The newest Kubernetes whose schemas kubernetes-validate ships (1.37, in its release 1.37.0). Later releases
# keep the older schemas, so this stays valid until raised on purpose.
KUBERNETES_VERSION = "1.37.0"
GATEWAY_API_GROUPS = ("gateway.networking.k8s.io", "gateway.networking.x-k8s.io")


def manifest_problems(text: str, source: str = "manifests") -> list[str]:
    """Every problem in a multi-document YAML (or JSON) stream of manifests, one message each; [] when valid.

    `source` names the text in the messages (a file name, or the command that printed it).
    """
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        return [f"{source}: not valid YAML: {err}"]
    problems: list[str] = []
    for i, doc in enumerate(docs, 1):
        if doc is not None:  # an empty document (a stray `---`) is allowed, as kubectl allows it
            problems += object_problems(doc, f"{source}, document {i}")
    return problems


def assert_valid_manifests(text: str, source: str = "manifests") -> None:
    """Fail (AssertionError) with every problem `manifest_problems` finds, one per line."""
    problems = manifest_problems(text, source)
    assert not problems, "invalid Kubernetes manifests:\n" + "\n".join(problems)


def object_problems(obj: Any, where: str) -> list[str]:
    """The problems of one parsed document (a `kind: List` is checked item by item)."""
    if not isinstance(obj, dict):
        return [f"{where}: not a Kubernetes object (a mapping), but {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind):
        return [f"{where}: apiVersion and kind must both be set (strings)"]
    if kind == "List" and api_version == "v1":
        items = obj.get("items")
        if not isinstance(items, list):
            return [f"{where}: a v1 List needs items (a list)"]
        return [p for j, item in enumerate(items) for p in object_problems(item, f"{where}, item {j}")]
    # The schemas leave metadata optional; the API server does not.
    meta = obj.get("metadata")
    name = (meta.get("name") or meta.get("generateName")) if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return [f"{where}: {kind} has no metadata.name"]
    label = f"{where}: {kind} {name}"
    if api_version.split("/")[0] in GATEWAY_API_GROUPS:
        return _gateway_api_problems(obj, where, label)
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(map(str, err.absolute_path)) or "(top level)"
        return [f"{label}: {path}: {err.message} (Kubernetes {err.version} schema)"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"{label}: Kubernetes {KUBERNETES_VERSION} has no kind {kind} in {api_version}, and it is not a "
            "Gateway API kind, so nothing can check it: a misspelt kind or apiVersion, or a custom resource "
            "that gammaxds.testing.kube_schema must learn to validate"
        ]
    return []


def _gateway_api_problems(obj: dict[str, Any], where: str, label: str) -> list[str]:
    """A Gateway API object, through the model gammaxds loads it with (the CRDs' validation rules)."""
    loaded = parse_object(obj, where)
    problems = [f"{label}: {e.field or '(top level)'}: {e.reason}" for e in loaded.errors]
    if loaded.warnings or not (loaded.objects or loaded.errors):
        problems.append(
            f"{label}: no offline schema for this Gateway API kind (kubernetes-validate has none, and "
            "gammaxds.model does not read it), so nothing can check it"
        )
    return problems
