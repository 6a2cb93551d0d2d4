"""The CodeDeploy lifecycle hooks of the predict function: entry points only (one CodeUri, two functions).

pre_traffic  (BeforeAllowTraffic): smoke-tests the new version and arms the version-aware rollback alarms
             before any traffic shifts (canary.smoke);
post_traffic (AfterAllowTraffic): judges the finished canary window from CloudWatch and fails the
             deployment, which rolls it back, when the rule is broken; then disarms the alarms
             (canary.cloudwatch)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from canary.cloudwatch import CloudWatchMetrics, post_traffic_check
from canary.observability import logger, metrics
from canary.release import CodeDeployDeployments, run_hook
from canary.settings import HookSettings
from canary.smoke import LambdaFunctionVersions, pre_traffic_check

settings = HookSettings.from_env()  # cold start: fails the init phase when configuration is missing
deployments = CodeDeployDeployments(boto3.client("codedeploy"))
versions = LambdaFunctionVersions(boto3.client("lambda"))
cloudwatch = boto3.client("cloudwatch")
source = CloudWatchMetrics(cloudwatch)
metrics.set_default_dimensions(Stage=settings.stage)


def utcnow() -> datetime:
    return datetime.now(UTC)


# No @metrics.log_metrics: the hooks' only metric (CanaryVerdicts) is written at once by count_verdict().
@logger.inject_lambda_context(clear_state=True)
def pre_traffic(event: dict[str, Any], context: LambdaContext) -> str:
    check = partial(
        pre_traffic_check,
        settings=settings,
        versions=versions,
        put_metric_alarm=cloudwatch.put_metric_alarm,
        now=utcnow(),
    )
    return run_hook(event, deployments, check, settings)


@logger.inject_lambda_context(clear_state=True)
def post_traffic(event: dict[str, Any], context: LambdaContext) -> str:
    check = partial(
        post_traffic_check,
        settings=settings,
        source=source,
        started=utcnow(),
        now=utcnow,
        sleep=time.sleep,
        put_metric_alarm=cloudwatch.put_metric_alarm,
    )
    return run_hook(event, deployments, check, settings)
