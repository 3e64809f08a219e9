"""deploy/kubernetes/examples/: the injected Deployments are exactly what `gammaxds inject` makes of their source,
the routes are examples/routes/, and the pieces fit together (Service selectors and named ports, namespaces
the webhook selects, routes the translator accepts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gammaxds.cli import main
from gammaxds.inject.rewrite import ANNOTATION_STATUS, PROXY_CONTAINER
from gammaxds.model import parse_text
from gammaxds.translate import Translator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "kubernetes" / "examples"
SOURCE = EXAMPLE / "apps" / "apps.yaml"
INJECTED = EXAMPLE / "20-apps.injected.yaml"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def body_of(path: Path) -> str:
    """The file without its leading comment lines: what the command printed."""
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[start:])


def test_the_injected_file_is_what_inject_prints_for_the_source(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["inject", "-f", str(SOURCE.relative_to(REPO))])
    out, err = capsys.readouterr()
    assert done.value.code == 0 and err == ""
    assert body_of(INJECTED) == out, (
        f"{INJECTED.relative_to(REPO)} is stale: regenerate it with the command in its header"
    )


def test_every_deployment_is_meshed_and_the_source_is_not() -> None:
    for doc in docs(SOURCE):
        assert ANNOTATION_STATUS not in (doc["spec"]["template"]["metadata"].get("annotations") or {})
    injected = docs(INJECTED)
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in injected] == [
        ("store", "reviews-v1"),
        ("store", "reviews-v2"),
        ("store", "ratings-v1"),
        ("web", "client"),
        ("store", "client"),
    ]
    for doc in injected:
        names = [c["name"] for c in doc["spec"]["template"]["spec"]["initContainers"]]
        assert names[-1] == PROXY_CONTAINER


def test_the_routes_are_those_of_examples() -> None:
    routes = REPO / "examples" / "routes"
    assert docs(EXAMPLE / "30-routes.yaml") == docs(routes / "reviews.yaml") + docs(
        routes / "ratings-for-web.yaml"
    )


def test_services_match_the_examples_and_select_pods_with_their_target_port() -> None:
    wanted = {
        (d["metadata"]["name"], str(d["spec"]["selector"]), str(d["spec"]["ports"]))
        for d in docs(REPO / "examples" / "services.yaml")
    }
    services = docs(EXAMPLE / "10-services.yaml")
    assert {
        (d["metadata"]["name"], str(d["spec"]["selector"]), str(d["spec"]["ports"])) for d in services
    } == wanted
    pods = [d["spec"]["template"] for d in docs(INJECTED)]
    for service in services:
        selected = [
            p
            for p in pods
            if service["spec"]["selector"].items() <= p["metadata"]["labels"].items()
            and service["metadata"]["namespace"] == "store"
        ]
        assert selected, service["metadata"]["name"]
        for pod in selected:
            ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_the_namespaces_are_the_ones_the_webhook_selects() -> None:
    [config] = docs(REPO / "deploy" / "kubernetes" / "40-webhook.yaml")
    selector = config["webhooks"][0]["namespaceSelector"]["matchLabels"]
    namespaces = docs(EXAMPLE / "00-namespaces.yaml")
    assert {d["metadata"]["name"] for d in namespaces} == {"store", "web"}
    for namespace in namespaces:
        assert selector.items() <= namespace["metadata"]["labels"].items()


def test_the_translator_accepts_every_route_of_the_example() -> None:
    """Once the API server has given each Service a cluster IP (which offline nobody does), every route is
    accepted."""
    services = docs(EXAMPLE / "10-services.yaml")
    for i, service in enumerate(services):
        service["spec"]["clusterIP"] = f"10.96.10.{10 + i}"
    text = "\n---\n".join(
        [
            (EXAMPLE / "00-namespaces.yaml").read_text(),
            yaml.safe_dump_all(services),
            (EXAMPLE / "30-routes.yaml").read_text(),
        ]
    )
    loaded = parse_text(text, "example")
    assert not loaded.errors
    assert Translator().load(loaded.world()).statuses.all_accepted
