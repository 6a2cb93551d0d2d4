"""CodeDeploy BeforeAllowTraffic hook of the predict function: entry point only.

Smoke-tests the new version and arms the version-aware rollback alarms before any traffic shifts; the logic
lives in the shared layer (sentiment_common.canary)."""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentiment_common.canary import (
    CodeDeployDeployments,
    LambdaFunctionVersions,
    load_hook_settings,
    pre_traffic_check,
    run_hook,
    utcnow,
)
from sentiment_common.observability import logger, metrics

settings = load_hook_settings()  # cold start: fails the init phase when configuration is missing
deployments = CodeDeployDeployments(boto3.client("codedeploy"))
versions = LambdaFunctionVersions(boto3.client("lambda"))
cloudwatch = boto3.client("cloudwatch")
metrics.set_default_dimensions(Stage=settings.stage)


# No @metrics.log_metrics: the hooks' only metric (CanaryVerdicts) is written at once by count().
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> str:
    check = partial(pre_traffic_check, settings=settings, versions=versions,
                    put_metric_alarm=cloudwatch.put_metric_alarm, now=utcnow())
    return run_hook(event, deployments, check, settings)
