"""The one place that creates the hooks' Logger, Metrics and Tracer. The Tracer patches botocore only, so
each CodeDeploy, Lambda and CloudWatch call of a hook shows as a subsegment of its trace."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(log_uncaught_exceptions=False)
metrics = Metrics()
tracer = Tracer(patch_modules=("botocore",))


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
