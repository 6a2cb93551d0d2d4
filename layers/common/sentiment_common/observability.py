"""The one place that creates Logger, Metrics and Tracer; every function imports them from here.

Tracer: powertools' Tracer imports aws-xray-sdk (measured in bench/cold_import.py). It is created with
auto-patching limited to botocore, so the SageMaker call shows as a subsegment without patching every
library the SDK knows about. POWERTOOLS_TRACE_DISABLED=true (local stack, tests) turns it off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
tracer = Tracer(patch_modules=("botocore",))

__all__ = ["MetricUnit", "count", "logger", "metrics", "timed", "tracer"]


def count(name: str, dimension: str, value: str) -> None:
    """A counter with its own dimension (error code, label), emitted as a separate EMF blob so it does
    not multiply the cardinality of the request metrics."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Adds a Milliseconds metric for the block, also when it raises (a slow failure is still slow)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
