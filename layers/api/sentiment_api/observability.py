"""The one place that creates Logger, Metrics and Tracer for the API functions (predict, explain).

Tracer: powertools' Tracer imports aws-xray-sdk (measured in bench/cold_import.py). It is created with
auto-patching limited to botocore, so the SageMaker call shows as a subsegment without patching every
library the SDK knows about. POWERTOOLS_TRACE_DISABLED=true (local stack, tests) turns it off."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from sentiment_core.contract import smoke_version

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
tracer = Tracer(patch_modules=("botocore",))

__all__ = [
    "MetricUnit",
    "add_version_dimension_set",
    "count",
    "function_version",
    "logger",
    "metrics",
    "timed",
    "tracer",
]

# Set by the Lambda runtime in every execution environment: the published version number ("7") when the
# function runs through the alias `live` or a qualified ARN, "$LATEST" when invoked unqualified.
FUNCTION_VERSION_ENV = "AWS_LAMBDA_FUNCTION_VERSION"


def function_version() -> str | None:
    """The Lambda version this code runs as, or None outside Lambda (tests, local stack)."""
    return os.environ.get(FUNCTION_VERSION_ENV) or None


def add_version_dimension_set(smoke: bool = False) -> None:
    """Also publishes the current EMF blob's metrics per function version (a second dimension set
    Stage + FunctionVersion in the same blob: no extra log line). The canary rules compare the new
    version with the stable one on these (functions/canary_hooks); a smoke request of the PreTraffic hook
    is published as version "<n>-smoke" (sentiment_core.contract.smoke_version); outside Lambda nothing is
    added."""
    version = function_version()
    if version is not None:
        metrics.add_dimensions(FunctionVersion=smoke_version(version) if smoke else version)


def count(name: str, dimension: str, value: str, n: int = 1, **more_dimensions: str) -> None:
    """A counter (``n``, default 1) with its own dimension(s) (error code, label, model version), emitted as a
    separate EMF blob so it does not multiply the cardinality of the request metrics."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=n,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=value)
        for extra_name, extra_value in more_dimensions.items():
            metric.add_dimension(name=extra_name, value=extra_value)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Adds a Milliseconds metric for the block, also when it raises (a slow failure is still slow)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
