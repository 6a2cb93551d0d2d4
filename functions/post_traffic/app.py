"""CodeDeploy AfterAllowTraffic hook of the predict function: entry point only.

Judges the finished canary window from CloudWatch (p95 latency and error rate, new version vs stable) and
fails the deployment, which rolls it back, when the rule is broken; then disarms the rollback alarms until
the next release. The logic lives in the shared layer (sentiment_common.canary)."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentiment_common.canary import (
    CloudWatchMetrics,
    CodeDeployDeployments,
    load_hook_settings,
    post_traffic_check,
    run_hook,
    utcnow,
)
from sentiment_common.observability import logger, metrics

settings = load_hook_settings()  # cold start: fails the init phase when configuration is missing
deployments = CodeDeployDeployments(boto3.client("codedeploy"))
cloudwatch = boto3.client("cloudwatch")
source = CloudWatchMetrics(cloudwatch)
metrics.set_default_dimensions(Stage=settings.stage)


# No @metrics.log_metrics: the hooks' only metric (CanaryVerdicts) is written at once by count().
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> str:
    check = partial(post_traffic_check, settings=settings, source=source, started=utcnow(), now=utcnow,
                    sleep=time.sleep, put_metric_alarm=cloudwatch.put_metric_alarm)
    return run_hook(event, deployments, check, settings)
