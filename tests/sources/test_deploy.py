"""The cluster manifests in deploy/kubernetes/ grant exactly what the sources use, and run what the README says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.sources.kubernetes import RESOURCES
from gammaxds.sources.leader import LEASE_VERBS
from gammaxds.sources.status import PLURALS, STATUS_VERBS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
NS = "gammaxds-system"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_role_grants_exactly_what_the_source_and_status_writer_use(objects: dict) -> None:
    used = {(r.group, r.plural, verb) for r in RESOURCES for verb in r.verbs}
    used |= {
        ("gateway.networking.k8s.io", f"{plural}/status", verb)
        for plural in PLURALS.values()
        for verb in STATUS_VERBS
    }
    assert grants(objects[("ClusterRole", "gammaxds")]) == used


def test_leases_are_granted_only_in_the_own_namespace(objects: dict) -> None:
    role = objects[("Role", "gammaxds-leader-election")]
    assert role["metadata"]["namespace"] == NS
    assert grants(role) == {("coordination.k8s.io", "leases", verb) for verb in LEASE_VERBS}
    assert not any("leases" in r for _g, r, _v in grants(objects[("ClusterRole", "gammaxds")]))


def test_bindings_give_the_roles_to_the_service_account(objects: dict) -> None:
    account = {"kind": "ServiceAccount", "name": "gammaxds", "namespace": NS}
    assert objects[("ServiceAccount", "gammaxds")]["metadata"]["namespace"] == NS
    for kind, role in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = next(o for (k, _n), o in objects.items() if k == kind)
        assert binding["subjects"] == [account]
        assert binding["roleRef"]["kind"] == role
        assert (role, binding["roleRef"]["name"]) in objects


def test_deployment_runs_two_replicas_of_serve_in_cluster_with_probes(objects: dict) -> None:
    deployment = objects[("Deployment", "gammaxds")]
    assert deployment["metadata"]["namespace"] == NS and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gammaxds"
    [container] = pod["containers"]
    assert container["args"] == [
        "serve",
        "--in-cluster",
        "--xds-address",
        "0.0.0.0:18000",
        "--admin-address",
        "0.0.0.0:9901",
        "--webhook-address",
        "0.0.0.0:8443",
        "--webhook-config",
        "gammaxds",
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc-xds": 18000, "http-admin": 9901, "https-webhook": 8443}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-admin"}


def test_service_exposes_xds_and_admin(objects: dict) -> None:
    service = objects[("Service", "gammaxds")]
    deployment = objects[("Deployment", "gammaxds")]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (18000, "grpc-xds"),
        (9901, "http-admin"),
        (443, "https-webhook"),
    }


def test_everything_namespaced_lives_in_gammaxds_system(objects: dict) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
    for (kind, _name), obj in objects.items():
        if kind not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NS, kind
