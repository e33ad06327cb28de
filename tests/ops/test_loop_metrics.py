"""The lock-free metrics (app/loop_metrics.py), once flushed, scrape exactly as the prometheus_client
classes they stand in for would have from the same updates; unflushed, they show nothing yet."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.loop_metrics import LoopCounter, LoopHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SECONDS = [0.0001, 0.001, 0.0011, 0.0025, 0.003, 0.05, 0.7, 1.0, 4.99, 5.0, 5.01, 60.0]


def _without_created(exposition: bytes) -> list[str]:
    return [line for line in exposition.decode().splitlines() if "_created" not in line]


def test_a_counter_scrapes_as_prometheus_client_s() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counters = [Counter("t_requests", "Requests.", ["method", "status"], registry=theirs),
                LoopCounter("t_requests", "Requests.", ["method", "status"], ours)]
    for counter in counters:
        for method, status, amount in (("GET", "200", 1), ("POST", "200", 2), ("GET", "200", 3), ("GET", "404", 1)):
            counter.labels(method, status).inc(amount)
    assert "t_requests_total{" not in generate_latest(ours).decode()  # waiting for the flush
    counters[1].flush()
    counters[1].flush()  # a second flush adds nothing
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))


def test_a_histogram_scrapes_as_prometheus_client_s() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histograms = [Histogram("t_seconds", "Time.", ["route"], registry=theirs, buckets=BUCKETS),
                  LoopHistogram("t_seconds", "Time.", "route", ours, buckets=BUCKETS)]
    for histogram in histograms:
        for number, seconds in enumerate(SECONDS):  # boundaries included: `le` counts equal values in
            histogram.labels("/graphql" if number % 3 else "other").observe(seconds)
            if number == 5:
                histograms[1].flush()  # flushes in between add up
    histograms[1].flush()
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))


def test_wrong_label_count_is_refused() -> None:
    counter = LoopCounter("t_wrong", "Wrong.", ["a", "b"], CollectorRegistry())
    with pytest.raises(ValueError):
        counter.labels("only one")
