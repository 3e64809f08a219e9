"""The control plane's Prometheus metrics, on `prometheus_client`, in a registry of their own per cache.

Why a registry per `Metrics` (never the library's global one): a process can hold several caches (every test
makes its own, a benchmark makes many), and a global registry would both mix their figures and refuse the
second registration of a name. `/metrics` renders this registry alone.

The small wrappers below keep the calls the xDS code makes (`pushes.inc(type=...)`, `nacks.value(...)`,
`connected_streams.read = ...`, `push_latency.observe(...)`) independent of the library's label API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Counter:
    """A counter, with or without labels (label values are passed as keyword arguments)."""

    def __init__(
        self, registry: CollectorRegistry, name: str, help: str, labels: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self._registry = registry
        self._labels = labels
        self._metric = prometheus_client.Counter(name, help, labels, registry=registry)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        (self._metric.labels(**labels) if self._labels else self._metric).inc(amount)

    def value(self, **labels: str) -> float:
        """The current count (0 for label values never counted): what a scrape would show."""
        return self._registry.get_sample_value(self.name, labels) or 0.0


class Gauge:
    """A gauge read from `read` at scrape time, so it can never drift from the truth. The xDS server sets
    `read` once it has the streams to count."""

    def __init__(self, registry: CollectorRegistry, name: str, help: str) -> None:
        self.read: Callable[[], float] = lambda: 0.0
        prometheus_client.Gauge(name, help, registry=registry).set_function(lambda: self.read())


class Histogram:
    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help: str,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        self._metric = prometheus_client.Histogram(name, help, buckets=buckets, registry=registry)

    def observe(self, value: float) -> None:
        self._metric.observe(value)

    @contextmanager
    def time(self) -> Iterator[None]:
        with self._metric.time():
            yield


class Metrics:
    """The control plane's metrics. One instance (and registry) per cache, so caches do not mix figures."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connected_streams = Gauge(r, "gammaxds_connected_streams", "ADS streams currently connected.")
        self.pushes = Counter(
            r, "gammaxds_pushes_total", "xDS responses written to streams, by type.", ("type",)
        )
        self.nacks = Counter(
            r, "gammaxds_nacks_total", "Responses rejected by a client (NACK), by type.", ("type",)
        )
        self.push_latency = Histogram(
            r, "gammaxds_push_latency_seconds", "From a config update to its resources written to a stream."
        )
        self.ack_latency = Histogram(
            r, "gammaxds_ack_latency_seconds", "From a response written to the client's ACK or NACK of it."
        )
        self.translation = Histogram(
            r, "gammaxds_translation_seconds", "Time to translate the World into views."
        )
        self.recomputes = Counter(
            r, "gammaxds_snapshot_recomputes_total", "Debounced snapshot recomputations."
        )

    def observe_translation(self, seconds: float) -> None:
        self.translation.observe(seconds)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for a scraper's `Accept` header: (body, Content-Type). The Prometheus text format
        0.0.4 unless the scraper asks for OpenMetrics or a newer text format."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
