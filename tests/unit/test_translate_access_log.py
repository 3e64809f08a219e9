"""A sidecar's access-log choice (`gammaxds bootstrap --access-log off` → node metadata → ViewKey) changes its
listeners and nothing else, and the reasons of the sidecar's own replies are what Envoy will print.

What real Envoy does with these (the access-log line, each reply's body and header) is proven end to end in
tests/e2e/proxy/test_why_proxy.py; this pins what an end-to-end test cannot see: object sharing between the
views, the node-metadata contract, the CLI, and the README's description of the format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from envoy.config.core.v3.base_pb2 import Node

from gammaxds.bootstrap import bootstrap
from gammaxds.cli import main
from gammaxds.model import parse_text
from gammaxds.translate import Translator, View, ViewKey
from gammaxds.translate.envoy.listeners import HTTP_ACCESS_LOG_FORMAT, INBOUND_ACCESS_LOG_FORMAT
from gammaxds.translate.envoy.names import route_entry_name
from gammaxds.translate.envoy.protos import hcm_pb2, listener_pb2, tcp_proxy_pb2
from gammaxds.translate.envoy.replies import header_value
from gammaxds.xds.node import NodeError, view_key

ROOT = Path(__file__).resolve().parents[2]


def mesh(weight: int = 1) -> str:
    """Service store/reviews with a producer route splitting to v1 (`weight`) and a missing Service."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: store}}
spec: {{clusterIP: 10.96.0.10, ports: [{{name: http, port: 80}}, {{name: db, port: 5432, appProtocol: tcp}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: reviews-v1, namespace: store}}
spec: {{clusterIP: 10.96.0.11, ports: [{{name: http, port: 80}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: reviews, namespace: store}}
spec:
  parentRefs: [{{group: "", kind: Service, name: reviews, port: 80}}]
  rules:
  - backendRefs: [{{name: reviews-v1, port: 80, weight: {weight}}}, {{name: ghost, port: 80}}]
"""


def hcms(view: View) -> list[hcm_pb2.HttpConnectionManager]:
    out = []
    for listener in view.listeners:
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for f in chain.filters:
                if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    out.append(hcm)
    return out


def without_access_logs(listener: listener_pb2.Listener) -> listener_pb2.Listener:
    """`listener` with every access log removed (HTTP and TCP): what an `access_log: off` sidecar gets."""
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    for chain in [*out.filter_chains, out.default_filter_chain]:
        for f in chain.filters:
            for cls in (hcm_pb2.HttpConnectionManager, tcp_proxy_pb2.TcpProxy):
                if f.typed_config.Is(cls.DESCRIPTOR):
                    config = cls()
                    f.typed_config.Unpack(config)
                    del config.access_log[:]
                    f.typed_config.Pack(config)
    return out


@pytest.mark.parametrize("capture", ["transparent", "proxy"])
def test_access_log_off_changes_the_listeners_only_and_shares_everything_else(capture: str) -> None:
    translation = Translator().load(parse_text(mesh(), "mesh.yaml").world())
    on = translation.view(ViewKey("store", capture))  # type: ignore[arg-type]
    off = translation.view(ViewKey("store", capture, access_log=False))  # type: ignore[arg-type]
    for kind in ("clusters", "endpoints", "routes"):
        assert all(a is b for a, b in zip(getattr(on, kind), getattr(off, kind), strict=True)), kind
    assert [without_access_logs(lis) for lis in on.listeners] == list(off.listeners)
    assert on.listeners != off.listeners
    assert all(len(h.access_log) == 1 for h in hcms(on)) and hcms(on)
    assert all(not h.access_log for h in hcms(off)) and hcms(off)
    # The replies say why either way: every HTTP listener has the same local reply mappers.
    assert all(h.local_reply_config == hcms(on)[0].local_reply_config for h in hcms(on) + hcms(off))


def test_after_a_route_change_both_views_still_share_the_new_routes() -> None:
    """The incremental path (only routes changed) keeps the two views apart in listeners, together otherwise."""
    translator = Translator()
    first = translator.load(parse_text(mesh(1), "mesh.yaml").world())
    for access_log in (True, False):
        first.view(ViewKey("store", access_log=access_log))
    second = translator.load(parse_text(mesh(3), "mesh.yaml").world())
    on, off = (second.view(ViewKey("store", access_log=a)) for a in (True, False))
    assert all(a is b for a, b in zip(on.routes, off.routes, strict=True))
    weights = [
        c.weight.value for r in on.routes for vh in r.virtual_hosts for rt in vh.routes
        for c in rt.route.weighted_clusters.clusters
    ]  # fmt: skip
    assert weights == [3, 1]
    assert all(len(h.access_log) == 1 for h in hcms(on)) and not any(h.access_log for h in hcms(off))


def node(**metadata: object) -> Node:
    out = Node(id="n")
    out.metadata.update({"namespace": "store", **metadata})
    return out


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("on", True), ("off", False), (False, False), (True, True)],
)
def test_node_metadata_access_log_selects_the_view(value: object, expected: bool) -> None:
    """`false` too: a hand-written YAML bootstrap with `access_log: off` unquoted reaches us as a boolean."""
    metadata = {} if value is None else {"access_log": value}
    assert view_key(node(**metadata)).access_log is expected


@pytest.mark.parametrize("value", ["no", "OFF", "", 0])
def test_node_metadata_access_log_must_be_on_or_off(value: object) -> None:
    with pytest.raises(NodeError, match='access_log must be "on" or "off"'):
        view_key(node(access_log=value))


def test_bootstrap_access_log_off_reaches_the_view_key() -> None:
    assert "access_log" not in bootstrap("n", "store")["node"]["metadata"]  # on is the default, left unsaid
    metadata = bootstrap("n", "store", access_log=False)["node"]["metadata"]
    assert metadata["access_log"] == "off"
    assert view_key(node(**metadata)) == ViewKey("store", access_log=False)


def test_bootstrap_command_prints_the_metadata_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    """Quoted: YAML 1.1 (Envoy's) would read a bare `off` as a boolean."""
    with pytest.raises(SystemExit) as exit_:
        main(["bootstrap", "--node-id", "n", "--namespace", "store", "--access-log", "off"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "access_log: 'off'" in text and yaml.safe_load(text)["node"]["metadata"]["access_log"] == "off"


def test_translate_shows_either_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(mesh())
    logs = {}
    for choice in ("on", "off"):
        with pytest.raises(SystemExit):
            main(["translate", str(path), "--namespace", "store", "--access-log", choice])
        (listener,) = [
            lis for lis in yaml.safe_load(capsys.readouterr().out)["views"][0]["listeners"]
            if lis["name"] == "10.96.0.10_80"
        ]  # fmt: skip
        logs[choice] = listener["filterChains"][0]["filters"][0]["typedConfig"].get("accessLog")
    assert (
        logs["on"][0]["typedConfig"]["logFormat"]["textFormatSource"]["inlineString"]
        == HTTP_ACCESS_LOG_FORMAT
    )
    assert logs["off"] is None


def test_route_names_read_back_unambiguously() -> None:
    assert (
        route_entry_name("HTTPRoute", "store", "reviews.v2", 0, 1)
        == "httproute/store/reviews.v2/rule/0/match/1"
    )
    assert route_entry_name("GRPCRoute", "shop", "rpc", 3, 0) == "grpcroute/shop/rpc/rule/3/match/0"


def test_a_reason_is_a_literal_header_value() -> None:
    """Envoy reads `%` in a configured header value as a formatter operator and refuses a line break."""
    assert header_value("100% of\nrequests") == "100%% of requests"


def test_the_readme_describes_every_field_of_the_access_log() -> None:
    """The README's "Access logs" section names each `key=` of both formats and shows a real line."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Access logs") :]
    section = section[: section.index("\n## ", 3)]
    for fmt in (HTTP_ACCESS_LOG_FORMAT, INBOUND_ACCESS_LOG_FORMAT):
        for key in re.findall(r"(\w+)=%", fmt):
            assert f"`{key}=`" in section, key
    assert re.search(r'\] outbound "GET /\S+ HTTP/1.1" 200 flags=- ', section)
