"""Envoy API classes used by the translator, and small constructors that keep the modules readable."""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    config_source_pb2,
    extension_pb2,
    protocol_pb2,
    substitution_format_string_pb2,
)
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.http.stateful_session.v3 import stateful_session_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.http.stateful_session.cookie.v3 import cookie_pb2 as cookie_state_pb2
from envoy.extensions.http.stateful_session.header.v3 import header_pb2 as header_state_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.http.v3 import cookie_pb2 as http_cookie_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

__all__ = [
    "accesslog_pb2",
    "address_pb2",
    "base_pb2",
    "cluster_pb2",
    "config_source_pb2",
    "cookie_state_pb2",
    "cors_pb2",
    "endpoint_components_pb2",
    "endpoint_pb2",
    "extension_pb2",
    "hcm_pb2",
    "header_state_pb2",
    "http_cookie_pb2",
    "http_protocol_options_pb2",
    "listener_components_pb2",
    "listener_pb2",
    "original_dst_pb2",
    "percent_pb2",
    "protocol_pb2",
    "regex_pb2",
    "route_components_pb2",
    "route_pb2",
    "router_pb2",
    "stateful_session_pb2",
    "stream_pb2",
    "string_pb2",
    "substitution_format_string_pb2",
    "tcp_proxy_pb2",
    "wrappers_pb2",
]


def packed(msg: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def duration_ms(ms: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def socket_address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )


def regex(pattern: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=pattern)


def string_exact(value: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=value)


def string_regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex(pattern))
