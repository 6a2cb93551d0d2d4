"""The two version-aware rollback alarms (PutMetricAlarm arguments): metric math over the per-version
request metrics (sentiment_api.http.record_request) and AWS/Lambda errors of the alias. The PreTraffic hook
arms them with the versions of each release, the PostTraffic hook sets them idle again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .observability import logger
from .release import Release, function_name_of
from .settings import HookSettings

# The FunctionVersion the rollback alarms watch between releases (template.yaml declares them with it): no
# version has that name, so they see no data and stay OK.
IDLE_VERSION = "no-release-in-progress"


def _metric(namespace: str, name: str, dimensions: Mapping[str, str], stat: str, period: int) -> dict[str, Any]:
    return {
        "Metric": {
            "Namespace": namespace,
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        },
        "Period": period,
        "Stat": stat,
    }


def version_dimensions(settings: HookSettings, version: str) -> dict[str, str]:
    """The dimension set record_request adds to the request metrics (sentiment_api.observability)."""
    return {"Stage": settings.stage, "FunctionVersion": version}


def lambda_error_dimensions(settings: HookSettings, version: str) -> dict[str, str]:
    """AWS/Lambda metrics of invocations through the alias, per executed version: unhandled errors and
    timeouts, which never reach record_request."""
    name = function_name_of(settings.function_name)
    return {"FunctionName": name, "Resource": f"{name}:{settings.alias}", "ExecutedVersion": version}


# Both alarms: 1-minute periods, 5 of 5 breaching (the rule's "sustained 5 minutes"); no data (the canary
# has no traffic yet, or no longer) is not a breach.
ALARM_PERIOD_S = 60


def latency_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """PutMetricAlarm arguments: canary p95 / stable p95 > max_latency_ratio for 5 consecutive minutes."""
    rule = settings.rule
    return {
        "AlarmName": settings.latency_alarm,
        "AlarmDescription": (
            f"Canary rollback: p95 latency of version {release.target_version} > {rule.max_latency_ratio} x "
            f"p95 of stable version {release.current_version}, 5 minutes in a row. Written by the PreTraffic "
            f"hook for deployment {release.deployment_id}. Runbook: 'Bad canary'."
        ),
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn],
        "Metrics": [
            {
                "Id": "canary_p95",
                "ReturnData": False,
                "MetricStat": _metric(
                    settings.namespace,
                    "Latency",
                    version_dimensions(settings, release.target_version),
                    "p95",
                    ALARM_PERIOD_S,
                ),
            },
            {
                "Id": "stable_p95",
                "ReturnData": False,
                "MetricStat": _metric(
                    settings.namespace,
                    "Latency",
                    version_dimensions(settings, release.current_version),
                    "p95",
                    ALARM_PERIOD_S,
                ),
            },
            {
                "Id": "ratio",
                "Expression": "canary_p95 / stable_p95",
                "Label": "canary p95 / stable p95",
                "ReturnData": True,
            },
        ],
        "EvaluationPeriods": rule.window_minutes,
        "DatapointsToAlarm": rule.window_minutes,
        "Threshold": rule.max_latency_ratio,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


# (5xx answers + unhandled errors) / (requests + unhandled errors): an unhandled error or timeout never
# reaches record_request, so it is neither a Request nor a 5xx there.
ERROR_RATE_EXPRESSION = "(FILL(errors, 0) + FILL(crashes, 0)) / (FILL(requests, 0) + FILL(crashes, 0))"


def error_rate_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """PutMetricAlarm arguments: canary error rate > max_error_rate for 5 consecutive minutes."""
    rule = settings.rule
    canary = version_dimensions(settings, release.target_version)
    return {
        "AlarmName": settings.error_alarm,
        "AlarmDescription": (
            f"Canary rollback: error rate (5xx answers + unhandled errors) of version {release.target_version} "
            f"> {rule.max_error_rate:.0%}, 5 minutes in a row. Written by the PreTraffic hook for deployment "
            f"{release.deployment_id}. Runbook: 'Bad canary'."
        ),
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn],
        "Metrics": [
            {
                "Id": "requests",
                "ReturnData": False,
                "MetricStat": _metric(settings.namespace, "Requests", canary, "Sum", ALARM_PERIOD_S),
            },
            {
                "Id": "errors",
                "ReturnData": False,
                "MetricStat": _metric(settings.namespace, "5xx", canary, "Sum", ALARM_PERIOD_S),
            },
            {
                "Id": "crashes",
                "ReturnData": False,
                "MetricStat": _metric(
                    "AWS/Lambda",
                    "Errors",
                    lambda_error_dimensions(settings, release.target_version),
                    "Sum",
                    ALARM_PERIOD_S,
                ),
            },
            {"Id": "rate", "Expression": ERROR_RATE_EXPRESSION, "Label": "canary error rate", "ReturnData": True},
        ],
        "EvaluationPeriods": rule.window_minutes,
        "DatapointsToAlarm": rule.window_minutes,
        "Threshold": rule.max_error_rate,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def idle_alarms(settings: HookSettings) -> list[dict[str, Any]]:
    """The rollback alarms between releases, as the template declares them. Left armed after a release they
    would keep watching the now-live version, and an incident on it would put them in ALARM, which makes
    CodeDeploy fail the next deployment at once, the fix included."""
    idle = Release("-", settings.function_name, settings.alias, IDLE_VERSION, IDLE_VERSION)
    alarms = [latency_alarm(settings, idle), error_rate_alarm(settings, idle)]
    for alarm in alarms:
        alarm["AlarmDescription"] = (
            "Canary rollback alarm, idle: no release in progress. The PreTraffic hook "
            "arms it with the versions of each release; the PostTraffic hook disarms it."
        )
    return alarms


def disarm_alarms(settings: HookSettings, put_metric_alarm: Callable[..., Any]) -> None:
    """Best effort: the verdict stands whether or not this works. An alarm left armed only matters if the
    live version misbehaves before the next release (idle_alarms), so a failure is logged, not fatal."""
    try:
        for alarm in idle_alarms(settings):
            put_metric_alarm(**alarm)
    except (ClientError, BotoCoreError):
        logger.warning("could not disarm the canary alarms; the next release re-arms them", exc_info=True)
