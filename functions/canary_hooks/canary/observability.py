"""The one place that creates the hooks' Logger and Metrics. No Tracer: the hooks call three AWS APIs a
handful of times per release, and X-Ray would add the SDK's import cost to every release."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()


def count_verdict(verdict: str) -> None:
    """CanaryVerdicts{Verdict=...}, written at once (the hooks do not use @log_metrics: one metric per run)."""
    with single_metric(
        name="CanaryVerdicts",
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name="Verdict", value=verdict)
