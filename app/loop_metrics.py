"""Counters and a histogram for what every request updates, without prometheus_client's lock.

prometheus_client takes a lock on every `inc()` and `observe()`, and a request updates four of its
metrics (requests, latency, executor, document cache): ~4 µs of a `{ __typename }` request in-process,
more served (bench/typename.py). These keep plain numbers instead, updated on the event loop's thread
(the only one that serves requests), and add them to the real prometheus_client metric behind them on
`flush()`: before each scrape, and every second (with several workers the scrape is served by one of
them, and each worker's numbers reach the shared multiprocess files that way).

Flushing a histogram adds to its per-bucket counts and sum directly (`_buckets`, `_sum`: private to
prometheus_client, hence its bounded version in pyproject.toml); observing each value again would
need the values, not their counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram


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
        self.labelnames = tuple(labelnames)
        self.metric = Counter(name, documentation, self.labelnames, registry=registry)
        self._children: dict[tuple[str, ...], _Count] = {}

    def labels(self, *values: str) -> _Count:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Count()
        return child

    def flush(self) -> None:
        for values, child in list(self._children.items()):
            if child.value:
                amount, child.value = child.value, 0.0
                self.metric.labels(*values).inc(amount)


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
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self.metric = Histogram(name, documentation, [labelname], registry=registry, buckets=self.bounds)
        self._children: dict[str, _Observations] = {}

    def labels(self, value: str) -> _Observations:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Observations(self.bounds)
        return child

    def flush(self) -> None:
        for value, child in list(self._children.items()):
            if not child.sum and not any(child.counts):
                continue
            counts, total = child.counts, child.sum
            child.counts, child.sum = [0] * len(counts), 0.0
            target = self.metric.labels(value)
            for index, count in enumerate(counts):  # the same buckets, +Inf last, per bucket
                if count:
                    target._buckets[index].inc(count)
            target._sum.inc(total)
