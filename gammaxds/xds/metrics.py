"""Prometheus metrics, hand-rolled: counters, gauges and histograms rendered in the text format."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help: str) -> None:
        self.name, self.help = name, help
        self._values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(labels)} {_number(value)}"


class Gauge:
    """A gauge read from a callable at scrape time, so it can never drift from the truth."""

    def __init__(self, name: str, help: str, read: Callable[[], float] = lambda: 0.0) -> None:
        self.name, self.help, self.read = name, help, read

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        yield f"{self.name} {_number(self.read())}"


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help, buckets
        self._counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.sum += value

    @contextmanager
    def time(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start)

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        cumulative = 0
        for bound, n in zip((*self.buckets, math.inf), self._counts, strict=True):
            cumulative += n
            yield f"{self.name}_bucket{_labels((), (('le', _number(bound)),))} {cumulative}"
        yield f"{self.name}_sum {_number(self.sum)}"
        yield f"{self.name}_count {self.count}"


class Metrics:
    """The control plane's metrics. One instance per cache, so tests in one process do not mix figures."""

    def __init__(self) -> None:
        self.connected_streams = Gauge("gammaxds_connected_streams", "ADS streams currently connected.")
        self.pushes = Counter("gammaxds_pushes_total", "xDS responses written to streams, by type.")
        self.nacks = Counter("gammaxds_nacks_total", "Responses rejected by a client (NACK), by type.")
        self.push_latency = Histogram(
            "gammaxds_push_latency_seconds", "From a config update to its resources written to a stream."
        )
        self.ack_latency = Histogram(
            "gammaxds_ack_latency_seconds", "From a response written to the client's ACK or NACK of it."
        )
        self.translation = Histogram(
            "gammaxds_translation_seconds",
            "Time to translate the World into views.",
        )
        self.recomputes = Counter("gammaxds_snapshot_recomputes_total", "Debounced snapshot recomputations.")

    def observe_translation(self, seconds: float) -> None:
        self.translation.observe(seconds)

    def render(self) -> str:
        parts = (
            self.connected_streams,
            self.pushes,
            self.nacks,
            self.push_latency,
            self.ack_latency,
            self.translation,
            self.recomputes,
        )
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"
