"""Why did my request go there: a real proxy-mode Envoy sidecar, configured by the real pipeline, writes one
access-log line per request naming the route, cluster and endpoint, and its own 404/500/503 replies say why
(body and `x-gammaxds-reason`); a sidecar bootstrapped with `--access-log off` writes no line.

The mesh (namespace `store`): `reviews` (pod b1) with the HTTPRoute `reviews`, one rule per outcome; its
backends `reviews-v1` (b2) and `empty` (no endpoints); `ratings` (b3) with no route. Each test starts its own
sidecars, so the access-log test can stop its Envoys before it reads their output: a stopped Envoy has written
every line it will ever write, which is what proves that the `--access-log off` sidecar wrote none.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gamma_harness import Backends, Pipeline, Reply, Sidecar, start_sidecars, stop_sidecars

from gammaxds.model import World
from gammaxds.testing.envoy_process import ENVOY_BINARY
from gammaxds.testing.gamma import backend, endpoint_slice, http_route, parent, service, service_port

pytestmark = pytest.mark.skipif(not ENVOY_BINARY.exists(), reason="no envoy executable beside the Python")

NS = "store"
V1 = "outbound|80||reviews-v1.store.svc.cluster.local"
EXT = {"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "Filter", "name": "auth"}}
PREFIX_V1 = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v1"}
REWRITE = {"type": "URLRewrite", "urlRewrite": {"path": PREFIX_V1}}
# Rule N of HTTPRoute store/reviews is named `httproute/store/reviews/rule/N/match/0` (one match per rule).
RULES = [
    ("/v1", [backend("reviews-v1")], []),
    ("/ghost", [backend("ghost")], []),
    ("/half", [backend("reviews-v1"), backend("ghost")], []),
    ("/empty", [backend("empty")], []),
    ("/ext", [backend("reviews-v1")], [EXT]),
    ("/zero", [backend("reviews-v1", weight=0)], []),
    ("/rewrite", [backend("reviews-v1")], [REWRITE]),
]


def route_name(rule: int) -> str:
    return f"httproute/{NS}/reviews/rule/{rule}/match/0"


def manifests(backends: Backends) -> list[dict[str, object]]:
    port = backends.port
    docs: list[dict[str, object]] = []
    for name, ip, pods in [("reviews", 10, ["b1"]), ("reviews-v1", 11, ["b2"]), ("empty", 12, []),
                           ("ratings", 13, ["b3"])]:  # fmt: skip
        docs.append(service(name, NS, f"10.96.0.{ip}", [service_port("http", 80, port)]))
        addresses = [backends.address(p) for p in pods]
        docs.append(endpoint_slice(f"{name}-1", NS, name, addresses, {"http": port}))
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": p}}], "backendRefs": refs, "filters": filters}
        for p, refs, filters in RULES
    ]
    docs.append(http_route("reviews", NS, [parent("reviews")], rules))
    return docs


@dataclass
class Mesh:
    pipeline: Pipeline
    backends: Backends
    world: World
    workdir: Path

    def sidecar(self, name: str, access_log: bool = True) -> Sidecar:
        """A sidecar in `store` (delta ADS), started: its listener is up."""
        (sidecar,) = start_sidecars(self.pipeline, [(name, NS, True)], self.workdir, access_log=access_log)
        return sidecar


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    backends = Backends(3)
    pipeline = Pipeline()
    try:
        world = pipeline.publish(manifests(backends))
        yield Mesh(pipeline, backends, world, tmp_path_factory.mktemp("why"))
    finally:
        pipeline.close()
        backends.shutdown()


@pytest.fixture
def sidecar(mesh: Mesh) -> Iterator[Sidecar]:
    one = mesh.sidecar(f"why-{uuid.uuid4().hex[:6]}")
    try:
        mesh.pipeline.wait_synced(mesh.world, 1, timeout=20)
        yield one
    finally:
        stop_sidecars([one])


# -- the sidecar's own replies --------------------------------------------------------------------------------

REPLIES = [
    # (Host, path, status, what the body and x-gammaxds-reason say)
    ("reviews.store", "/nothing", 404, "no route of store/reviews:80 matched"),
    ("reviews.store", "/ghost", 500, "HTTPRoute store/reviews rules[1]: backendRef Service store/ghost not found"),
    ("reviews.store", "/half", 500, "HTTPRoute store/reviews rules[2]: backendRef Service store/ghost not found"),
    ("reviews.store", "/empty", 503, "no ready endpoints for Service store/empty port 80"),
    ("reviews.store", "/ext", 500,
     "HTTPRoute store/reviews rules[4]: ExtensionRef example.io/Filter auth not supported"),
    ("reviews.store", "/zero", 500, "HTTPRoute store/reviews rules[5]: every backendRef has weight 0"),
    ("nosuch.store", "/", 404, "no Service port of the mesh is named by this request's Host"),
]  # fmt: skip


def first_local_reply(sidecar: Sidecar, host: str, path: str, tries: int = 100) -> Reply:
    """The first reply not from a backend (a split sends only a share of the requests to the invalid one)."""
    for _ in range(tries):
        reply = sidecar.get(host, path)
        if reply.pod is None:
            return reply
    raise AssertionError(f"{tries} requests to {host}{path}, every one answered by a backend")


@pytest.mark.parametrize(
    ("host", "path", "status", "reason"), REPLIES, ids=[h + p for h, p, _s, _r in REPLIES]
)
def test_the_sidecars_own_reply_says_why(
    sidecar: Sidecar, host: str, path: str, status: int, reason: str
) -> None:
    reply = first_local_reply(sidecar, host, path)
    assert reply.status == status, reply
    assert reply.body.get("text") == reason and reply.headers.get("x-gammaxds-reason") == reason, reply
    assert reply.headers["content-type"] == "text/plain"


def test_a_split_still_sends_the_valid_share_to_its_backend(sidecar: Sidecar) -> None:
    """The 500s of `/half` are the invalid share only: the other share reaches reviews-v1 (b2)."""
    assert sidecar.pods("reviews.store", "/half", count=60).keys() == {"b2", None}


# -- the access log -------------------------------------------------------------------------------------------

# The fields of `HTTP_ACCESS_LOG_FORMAT` (README.md, "Access logs"): a line starts with the start time in
# brackets, then `outbound`, the request line in quotes, the status, key=value fields, the duration.
LINE = re.compile(
    r'^\[(?P<start>[^\]]+)\] outbound "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" (?P<code>\d+) '
    r"(?P<fields>(?:\w+=\S* )+)(?P<duration>\d+)ms$"
)


def access_log(text: str) -> list[dict[str, str]]:
    """Every access-log line of an Envoy's output, parsed (other output is Envoy's own log)."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            fields = dict(kv.split("=", 1) for kv in m["fields"].split())
            out.append({**{k: v for k, v in m.groupdict().items() if k != "fields"}, **fields, "line": line})
    return out


def test_access_log_names_the_route_the_cluster_and_the_endpoint_and_off_writes_none(mesh: Mesh) -> None:
    marker = uuid.uuid4().hex[:8]
    on = mesh.sidecar(f"log-on-{marker}")
    off = mesh.sidecar(f"log-off-{marker}", access_log=False)
    try:
        mesh.pipeline.wait_synced(mesh.world, 2, timeout=20)
        for sidecar in (on, off):
            assert sidecar.get("reviews.store", f"/v1/{marker}").pod == "b2"
            assert sidecar.get("ratings.store", f"/{marker}").pod == "b3"
            assert sidecar.get("reviews.store", f"/nothing/{marker}").status == 404
            upstream = sidecar.get("reviews.store", f"/rewrite/{marker}")
            assert upstream.body["path"] == f"/v1/{marker}"  # the backend saw the rewritten path
    finally:
        stop_sidecars([on, off], show_logs=False)
    lines = {entry["path"]: entry for entry in access_log(on.envoy.logs()) if marker in entry["path"]}
    print("\n".join(entry["line"] for entry in lines.values()))
    assert lines.keys() == {f"/v1/{marker}", f"/{marker}", f"/nothing/{marker}", f"/rewrite/{marker}"}, lines
    routed = lines[f"/v1/{marker}"]
    assert routed["method"] == "GET" and routed["protocol"] == "HTTP/1.1" and routed["code"] == "200"
    assert routed["route"] == route_name(0) and routed["cluster"] == V1
    assert routed["upstream"] == f"{mesh.backends.address('b2')}:{mesh.backends.port}"
    assert routed["authority"] == "reviews.store" and routed["flags"] == "-" and routed["grpc"] == "-"
    assert routed["details"] == "via_upstream" and int(routed["tx"]) > 0 and routed["rx"] == "0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", routed["start"]), routed["start"]
    default = lines[f"/{marker}"]  # no route on ratings: the `default` route to its own cluster
    assert (
        default["route"] == "default" and default["cluster"] == "outbound|80||ratings.store.svc.cluster.local"
    )
    unmatched = lines[f"/nothing/{marker}"]
    assert [unmatched[k] for k in ("code", "flags", "details", "route", "cluster", "upstream")] == [
        "404", "NR", "route_not_found", "-", "-", "-"
    ]  # fmt: skip
    rewritten = lines[f"/rewrite/{marker}"]  # logged with the client's path, not the one sent upstream
    assert rewritten["route"] == route_name(6) and rewritten["cluster"] == V1
    # `--access-log off`: the same requests, the same answers, no line at all.
    assert access_log(off.envoy.logs()) == [], off.envoy.logs()[-2000:]
    assert not re.search(r'\] outbound "', off.envoy.logs())
