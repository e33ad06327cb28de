"""Counters and a histogram for what every request updates, without prometheus_client's lock.

prometheus_client takes a lock on every `inc()` and `observe()`, and a request updates four of its
metrics (requests, latency, executor, document cache): ~4 µs of a `{ __typename }` request in-process,
more served (bench/typename.py). These keep plain numbers instead, updated on the event loop's thread
(the only one that serves requests), and hand them to Prometheus when it scrapes, as a collector in the
app's registry: names, help, label names, buckets and sample order as the classes they stand in for.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopCounter:
    """A labelled counter: `counter.labels("a", "b").inc()`, exposed as `<name>_total`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Count] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Count:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Count()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class _Observations:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1  # le: a value equal to a bound falls in it
        self.sum += amount


class LoopHistogram:
    """A histogram with one label: `histogram.labels("x").observe(seconds)`."""

    def __init__(
        self, name: str, documentation: str, labelname: str, registry: CollectorRegistry, buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelname = labelname
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self._le = [repr(bound) for bound in self.bounds] + ["+Inf"]  # as prometheus_client writes them
        self._children: dict[str, _Observations] = {}
        registry.register(self)

    def labels(self, value: str) -> _Observations:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Observations(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, "histogram")
        for value, child in list(self._children.items()):
            total = 0
            for le, count in zip(self._le, child.counts, strict=True):
                total += count
                metric.add_sample(f"{self.name}_bucket", {"le": le, self.labelname: value}, total)
            metric.add_sample(f"{self.name}_count", {self.labelname: value}, total)
            metric.add_sample(f"{self.name}_sum", {self.labelname: value}, child.sum)
        yield metric
