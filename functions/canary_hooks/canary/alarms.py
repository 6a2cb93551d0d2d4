"""The version-aware rollback alarms (PutMetricAlarm arguments): metric math over the per-version request
metrics (sentiment_api.http.record_request) and the AWS/Lambda metrics of the alias per executed version.
The PreTraffic hook arms them with the versions of each release, the PostTraffic hook sets them idle again.

Two kinds: the spec's rule, sustained for 5 minutes (latency_alarm, error_rate_alarm), and what stops a
clear failure while the new version holds the canary share (fast_error_alarm, client_error_alarm,
unhandled_errors_alarm). Every alarm divides series of one source only (request metrics, or AWS/Lambda
metrics): the sources arrive with different lags. Their timing against the canary phase and the metric lag is what
`make simulate-release` (tools/release_simulator) shows; deploy/README.md has its table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .observability import logger
from .release import Release, function_name_of
from .settings import CanaryRule, HookSettings

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


# Every rollback alarm: 1-minute periods, no data is not a breach (the canary has no traffic yet, or no
# longer; a period whose metrics have not arrived yet is no evidence either way).
ALARM_PERIOD_S = 60


def _alarm(
    settings: HookSettings,
    name: str,
    description: str,
    metrics: list[dict[str, Any]],
    threshold: float,
    minutes: int,
) -> dict[str, Any]:
    """PutMetricAlarm arguments: the last query's value > threshold in `minutes` periods in a row."""
    return {
        "AlarmName": name,
        "AlarmDescription": f"{description} Runbook: 'Bad canary'.",
        "ActionsEnabled": True,
        "AlarmActions": [settings.alarm_topic_arn],
        "Metrics": metrics,
        "EvaluationPeriods": minutes,
        "DatapointsToAlarm": minutes,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def _query(query_id: str, namespace: str, name: str, dimensions: Mapping[str, str], stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "ReturnData": False,
        "MetricStat": _metric(namespace, name, dimensions, stat, ALARM_PERIOD_S),
    }


def _expression(query_id: str, expression: str, label: str) -> dict[str, Any]:
    return {"Id": query_id, "Expression": expression, "Label": label, "ReturnData": True}


def _written_for(release: Release) -> str:
    return f"Written by the PreTraffic hook for deployment {release.deployment_id}."


def latency_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """The spec's latency rule: canary p95 / stable p95 > max_latency_ratio, sustained_minutes in a row."""
    rule, ns = settings.rule, settings.namespace
    return _alarm(
        settings,
        settings.latency_alarm,
        f"Canary rollback: p95 latency of version {release.target_version} > {rule.max_latency_ratio} x "
        f"p95 of stable version {release.current_version}, {rule.sustained_minutes} minutes in a row. "
        f"{_written_for(release)}",
        [
            _query("canary_p95", ns, "Latency", version_dimensions(settings, release.target_version), "p95"),
            _query("stable_p95", ns, "Latency", version_dimensions(settings, release.current_version), "p95"),
            _expression("ratio", "canary_p95 / stable_p95", "canary p95 / stable p95"),
        ],
        rule.max_latency_ratio,
        rule.sustained_minutes,
    )


# (5xx answers + unhandled errors) / (requests + unhandled errors): an unhandled error or timeout never
# reaches record_request, so it is neither a Request nor a 5xx there.
ERROR_RATE_EXPRESSION = "(FILL(errors, 0) + FILL(crashes, 0)) / (FILL(requests, 0) + FILL(crashes, 0))"


def error_rate_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """The spec's error rule: canary error rate > max_error_rate, sustained_minutes in a row."""
    rule, ns = settings.rule, settings.namespace
    canary = version_dimensions(settings, release.target_version)
    return _alarm(
        settings,
        settings.error_alarm,
        f"Canary rollback: error rate (5xx answers + unhandled errors) of version {release.target_version} "
        f"> {rule.max_error_rate:.0%}, {rule.sustained_minutes} minutes in a row. {_written_for(release)}",
        [
            _query("requests", ns, "Requests", canary, "Sum"),
            _query("errors", ns, "5xx", canary, "Sum"),
            _query("crashes", "AWS/Lambda", "Errors", lambda_error_dimensions(settings, release.target_version), "Sum"),
            _expression("rate", ERROR_RATE_EXPRESSION, "canary error rate"),
        ],
        rule.max_error_rate,
        rule.sustained_minutes,
    )


def fast_error_expression(rule: CanaryRule) -> str:
    """5xx answers / requests of the canary, counted only in minutes with at least fast_min_errors errors
    (so one unlucky request at low traffic is not a clear failure). Request metrics only: a series from
    another source (AWS/Lambda) arrives with another lag and would put zeros in the newest minutes."""
    return f"IF(errors >= {rule.fast_min_errors}, errors / requests, 0)"


def fast_error_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """A clear failure stops the canary while it holds the canary share: error rate > fast_error_rate with
    at least fast_min_errors errors, fast_minutes minutes in a row."""
    rule, ns = settings.rule, settings.namespace
    canary = version_dimensions(settings, release.target_version)
    return _alarm(
        settings,
        settings.fast_error_alarm,
        f"Canary rollback (clear failure): 5xx rate of version {release.target_version} > "
        f"{rule.fast_error_rate:.0%} with at least {rule.fast_min_errors} errors a minute, {rule.fast_minutes} "
        f"minutes in a row. {_written_for(release)}",
        [
            _query("requests", ns, "Requests", canary, "Sum"),
            _query("errors", ns, "5xx", canary, "Sum"),
            _expression("rate", fast_error_expression(rule), "canary 5xx rate (minutes with enough errors)"),
        ],
        rule.fast_error_rate,
        rule.fast_minutes,
    )


def client_error_expression(rule: CanaryRule) -> str:
    """The canary's 4xx rate minus the stable version's, in minutes with at least min_4xx canary 4xx and
    min_requests_per_minute requests of each version (else 0: a single 4xx among a handful of requests, or a
    version without traffic, is no regression). CloudWatch counts a missing value as 0 in arithmetic."""
    enough = (
        f"canary_4xx >= {rule.min_4xx} AND canary_requests >= {rule.min_requests_per_minute} "
        f"AND stable_requests >= {rule.min_requests_per_minute}"
    )
    return f"IF({enough}, canary_4xx / canary_requests - stable_4xx / stable_requests, 0)"


def client_error_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """A 4xx regression (a new version that rejects valid requests): the canary's 4xx rate exceeds the
    stable version's by more than max_4xx_increase, fast_minutes minutes in a row. The smoke test's
    planned 4xx are published under their own version value (sentiment_core.contract.smoke_version)."""
    rule, ns = settings.rule, settings.namespace
    canary = version_dimensions(settings, release.target_version)
    stable = version_dimensions(settings, release.current_version)
    return _alarm(
        settings,
        settings.client_error_alarm,
        f"Canary rollback: 4xx rate of version {release.target_version} > the 4xx rate of stable version "
        f"{release.current_version} + {rule.max_4xx_increase:.0%}, {rule.fast_minutes} minutes in a row. "
        f"{_written_for(release)}",
        [
            _query("canary_requests", ns, "Requests", canary, "Sum"),
            _query("canary_4xx", ns, "4xx", canary, "Sum"),
            _query("stable_requests", ns, "Requests", stable, "Sum"),
            _query("stable_4xx", ns, "4xx", stable, "Sum"),
            _expression("increase", client_error_expression(rule), "canary 4xx rate - stable 4xx rate"),
        ],
        rule.max_4xx_increase,
        rule.fast_minutes,
    )


def unhandled_errors_expression(rule: CanaryRule) -> str:
    """Unhandled errors and timeouts / invocations of the canary through the alias, in minutes with at least
    fast_min_errors of them. Both series are AWS/Lambda metrics of the same minute, published together: a
    ratio across sources with different lags (request metrics vs platform metrics) would read the newest
    minutes of one against nothing of the other."""
    return f"IF(crashes >= {rule.fast_min_errors}, crashes / invocations, 0)"


def unhandled_errors_alarm(settings: HookSettings, release: Release) -> dict[str, Any]:
    """What the request metrics cannot show: invocations that crash or time out (no answer, no metrics),
    from the platform's own counts per executed version; a version that passed the smoke test and crashes
    under traffic is stopped while it holds the canary share."""
    rule = settings.rule
    dimensions = lambda_error_dimensions(settings, release.target_version)
    return _alarm(
        settings,
        settings.unhandled_errors_alarm,
        f"Canary rollback (clear failure): unhandled errors and timeouts of version {release.target_version} > "
        f"{rule.fast_error_rate:.0%} of its invocations with at least {rule.fast_min_errors} a minute, "
        f"{rule.fast_minutes} minutes in a row. {_written_for(release)}",
        [
            _query("invocations", "AWS/Lambda", "Invocations", dimensions, "Sum"),
            _query("crashes", "AWS/Lambda", "Errors", dimensions, "Sum"),
            _expression("rate", unhandled_errors_expression(rule), "canary unhandled-error rate"),
        ],
        rule.fast_error_rate,
        rule.fast_minutes,
    )


def armed_alarms(settings: HookSettings, release: Release) -> list[dict[str, Any]]:
    """Every rollback alarm, armed with the versions of one release (settings.alarm_names, in order)."""
    builders = (latency_alarm, error_rate_alarm, fast_error_alarm, client_error_alarm, unhandled_errors_alarm)
    return [build(settings, release) for build in builders]


def idle_alarms(settings: HookSettings) -> list[dict[str, Any]]:
    """The rollback alarms between releases, as the template declares them. Left armed after a release they
    would keep watching the now-live version, and an incident on it would put them in ALARM, which makes
    CodeDeploy fail the next deployment at once, the fix included."""
    idle = Release("-", settings.function_name, settings.alias, IDLE_VERSION, IDLE_VERSION)
    alarms = armed_alarms(settings, idle)
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
