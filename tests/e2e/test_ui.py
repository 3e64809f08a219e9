"""The dashboard at `/ui`, in a real browser, over a real `gammaxds serve` with a real Envoy sidecar.

`gammaxds serve --manifests <a copy of examples/>` on kernel-chosen ports, one proxy-mode sidecar in namespace
`web` bootstrapped by `gammaxds bootstrap`, and Debian's headless Chromium loading the page
(`gammaxds.testing.dashboard`, the code `make screenshot` runs). What is checked is what a user sees on the
page: examples/'s Services with their routes Accepted, the graph's arrows (the producer view and web's
consumer view), the sidecar with its node id and ACK state; then an edit of a route file and a broken
manifest reach the open page without a reload.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gammaxds.testing.dashboard import (
    Chromium,
    Element,
    Mesh,
    find_chromium,
    open_dashboard,
    parse_dom,
    running_mesh,
)

ROOT = Path(__file__).resolve().parents[2]
XDS_TYPES = ("Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration")

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium is not installed: `make` installs Debian's chromium package where it runs as root with apt",
)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifests") / "examples"
    shutil.copytree(ROOT / "examples", path)
    return path


@pytest.fixture(scope="module")
def mesh(manifests: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with running_mesh(tmp_path_factory.mktemp("mesh"), manifests, namespaces=("web",)) as running:
        yield running


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Chromium]:
    async with Chromium(tmp_path) as chromium:
        yield chromium


async def page(browser: Chromium) -> Element:
    return parse_dom(await browser.html())


def edges(dom: Element) -> dict[tuple[str, str], Element]:
    return {(e.attrs["data-from"], e.attrs["data-to"]): e for e in dom.select("g", class_="edge")}


async def test_the_services_of_the_examples_and_their_routes_accepted(browser: Chromium, mesh: Mesh) -> None:
    await open_dashboard(browser, mesh)
    dom = await page(browser)
    services = {e.attrs["data-service"]: e for e in dom.select(class_="service")}
    assert sorted(services) == ["store/ratings", "store/reviews", "store/reviews-v1", "store/reviews-v2"]
    assert "10.96.10.10" in services["store/reviews"].text()

    [producer] = services["store/reviews"].select("li", data_route="HTTPRoute store/reviews")
    assert producer.attrs["data-accepted"] == "True"
    assert (
        "producer" in producer.text() and "Accepted" in producer.text() and "ResolvedRefs" in producer.text()
    )
    [consumer] = services["store/ratings"].select("li", data_route="HTTPRoute web/ratings")
    assert consumer.attrs["data-accepted"] == "True" and "consumer: clients in web" in consumer.text()
    assert "no routes" in services["store/reviews-v1"].text()
    [errors] = dom.select(id="errors")
    assert "every input is in force" in errors.text()


async def test_the_graph_shows_who_routes_to_whom_per_client_namespace(browser: Chromium, mesh: Mesh) -> None:
    await open_dashboard(browser, mesh)
    producer = edges(await page(browser))
    assert sorted(producer) == [("store/reviews", "store/reviews-v1"), ("store/reviews", "store/reviews-v2")]
    assert "90%" in producer["store/reviews", "store/reviews-v1"].text()
    assert all(e.attrs["data-valid"] == "true" for e in producer.values())

    # A user picks web's view in the selector: web's consumer route on ratings appears.
    await browser.evaluate(
        "(() => { const s = document.getElementById('client'); s.value = 'web';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    await browser.wait_for(
        'document.querySelector(\'g.edge[data-from="store/ratings"][data-to="store/ratings"]\')',
        "web's consumer route from ratings to ratings",
    )
    web = edges(await page(browser))
    assert ("store/reviews", "store/reviews-v1") in web  # the producer route, for the ports web has none for
    assert "100%" in web["store/ratings", "store/ratings"].text()


async def test_the_sidecar_is_listed_with_its_node_id_and_ack_state(browser: Chromium, mesh: Mesh) -> None:
    await open_dashboard(browser, mesh)
    [row] = (await page(browser)).select("tr", data_node="web-sidecar")
    assert row.attrs["data-state"] == "ACK"
    assert "web-sidecar" in row.text() and "proxy" in row.text() and "delta" in row.text()
    cells = {c.attrs["data-type"]: c.text() for c in row.select("td") if "data-type" in c.attrs}
    [proxy] = [p for p in mesh.get_json("/debug/proxies") if p["node_id"] == "web-sidecar"]
    for type_ in XDS_TYPES:
        assert cells[type_] == f"ACK {proxy['types'][type_]['acked_version'][:8]}", type_


async def test_the_open_page_follows_edits_of_the_manifests(
    browser: Chromium, mesh: Mesh, manifests: Path
) -> None:
    await open_dashboard(browser, mesh)
    route = manifests / "routes" / "reviews.yaml"
    original = route.read_text()
    broken = manifests / "routes" / "broken.yaml"
    v1 = 'document.querySelector(\'g.edge[data-from="store/reviews"][data-to="store/reviews-v1"]\')'
    try:
        route.write_text(original.replace("weight: 90", "weight: 0").replace("weight: 10", "weight: 100"))
        await browser.wait_for(f"{v1} && {v1}.textContent.endsWith('0%') && !{v1}.textContent.endsWith('90%')",
                               "the new weights in the graph")  # fmt: skip
        broken.write_text(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: broken, namespace: store}\n"
            "spec:\n  parentRefs: [{kind: Service, group: '', name: reviews}]\n"
            "  rules: [{backendRefs: [{name: reviews-v1, port: 80, weight: -1}]}]\n"
        )
        await browser.wait_for("document.querySelector('#errors tr.refused')", "the refused manifest")
        [refused] = (await page(browser)).select("tr", class_="refused")
        assert "HTTPRoute store/broken" in refused.text() and "broken.yaml" in refused.text()
        assert "weight" in refused.text() and "nothing in force" in refused.text()
    finally:
        route.write_text(original)
        broken.unlink(missing_ok=True)
