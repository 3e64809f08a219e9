"""CSDS reports, per connected sidecar and resource, whether it is synced, waiting, or rejected."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import xds_views as v
from ads_client import AdsClient
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientStatusRequest, ClientStatusResponse, ConfigStatus
from xds_harness import Views
from xds_probe import PROBE, probed, sotw_then_probe

from gammaxds.translate.view import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE
from gammaxds.xds import XdsServer

Connect = Callable[..., AdsClient]


async def fetch(server: XdsServer) -> ClientStatusResponse:
    async with grpc.aio.insecure_channel(server.target) as channel:
        return await csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel).FetchClientStatus(
            ClientStatusRequest()
        )


def statuses(response: ClientStatusResponse) -> dict[tuple[str, str], str]:
    (config,) = response.config
    return {
        (c.type_url.rsplit(".", 1)[-1], c.name): ConfigStatus.Name(c.config_status)
        for c in config.generic_xds_configs
    }


async def test_csds_reports_synced_stale_and_error(views: Views, connect: Connect, server: XdsServer) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    cds = await client.recv()
    assert statuses(await fetch(server)) == {("Cluster", "a"): "STALE", ("Cluster", "b"): "STALE"}
    client.ack(cds)
    client.request(ENDPOINT_TYPE, ["a", "b"])
    eds = await client.recv()
    client.ack(eds, error="endpoint b: invalid port")
    # Answered after the NACK, so the NACK has been handled. (On RDS: an EDS request would acknowledge.)
    await sotw_then_probe(client, type_url=ROUTE_TYPE)
    response = await fetch(server)
    assert response.config[0].node.id == "sidecar-1"
    assert statuses(response) == {
        ("Cluster", "a"): "SYNCED",
        ("Cluster", "b"): "SYNCED",
        ("ClusterLoadAssignment", "a"): "ERROR",
        ("ClusterLoadAssignment", "b"): "ERROR",
        ("RouteConfiguration", PROBE): "STALE",  # sent, not yet acknowledged
    }
    errors = [c.error_state.details for c in response.config[0].generic_xds_configs if c.error_state.details]
    assert errors == ["endpoint b: invalid port"] * 2


async def test_csds_streams_status_and_filters_by_node_id(
    views: Views, connect: Connect, server: XdsServer
) -> None:
    views.set(probed(v.view()))
    client = connect()
    client.request(CLUSTER_TYPE)
    client.ack(await client.recv())
    await sotw_then_probe(client)  # answered after the ACK, so the ACK has been handled
    async with grpc.aio.insecure_channel(server.target) as channel:
        call = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel).StreamClientStatus()
        await call.write(ClientStatusRequest())
        everyone = await call.read()
        other = ClientStatusRequest()
        other.node_matchers.add().node_id.exact = "someone-else"
        await call.write(other)
        nobody = await call.read()
        await call.done_writing()
    assert [c.node.id for c in everyone.config] == ["sidecar-1"]
    assert statuses(everyone) == {
        ("Cluster", "a"): "SYNCED",
        ("Cluster", "b"): "SYNCED",
        ("ClusterLoadAssignment", PROBE): "STALE",  # sent, not yet acknowledged
    }
    assert list(nobody.config) == []
