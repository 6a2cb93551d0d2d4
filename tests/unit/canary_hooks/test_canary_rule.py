"""The canary package as plain functions: the rule, the AppSpec, the window, the AWS request shapes
(checked against botocore's API models), the configuration the template gives the hooks, and the smoke
texts against the shipped model."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters
from canary import alarms as canary_alarms
from canary import cloudwatch as canary_cloudwatch
from canary import release as canary_release
from canary import settings as hook_settings
from canary import smoke as canary_smoke
from canary import verdict as canary_verdict
from sentiment_core import contract
from sentiment_core.settings import ConfigurationError

from tests.unit.canary_hooks.conftest import FUNCTION, HOOK_ENV, appspec

RULE = hook_settings.DEFAULT_RULE


def stats(
    canary_requests: float = 1000,
    canary_errors: float = 0,
    canary_p95: float | None = 200.0,
    stable_requests: float = 9000,
    stable_p95: float | None = 200.0,
    canary_4xx: float = 10,
    stable_4xx: float = 90,
    canary_invocations: float | None = None,
    canary_published: float | None = None,
) -> Any:
    return canary_verdict.WindowStats(
        canary_requests,
        canary_errors,
        canary_p95,
        stable_requests,
        stable_p95,
        canary_4xx,
        stable_4xx,
        canary_invocations,
        canary_published,
    )


# ---- the rule ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("window", "decision", "inconclusive"),
    [
        (stats(canary_p95=262.0), "rollback", False),  # +31 %
        (stats(canary_p95=258.0), "promote", False),  # +29 %
        (stats(canary_p95=260.0), "promote", False),  # +30 %: "more than 30 %" is needed
        (stats(canary_errors=21), "rollback", False),  # 2.1 %
        (stats(canary_errors=20), "promote", False),  # 2.0 %: "more than 2 %" is needed
        (stats(canary_requests=49), "promote", True),  # too little canary traffic
        (stats(stable_requests=49), "promote", True),  # nothing to compare with
        (stats(canary_requests=49, canary_errors=1), "promote", True),  # 1/50 = 2 %: not decisive
        (stats(canary_requests=10, canary_errors=2), "rollback", False),  # 2/50 = 4 % at least: decisive
        (stats(canary_p95=None), "promote", True),
        (stats(canary_4xx=61), "rollback", False),  # 6.1 % vs 1 %: more than 5 points above
        (stats(canary_4xx=60), "promote", False),  # 6.0 % vs 1 %: exactly 5 points
        (stats(canary_invocations=1000, canary_published=1000), "promote", False),
        (stats(canary_invocations=1000, canary_published=499), "rollback", False),  # metrics for < 50 %
        (stats(canary_requests=0, canary_invocations=400, canary_published=0), "rollback", False),  # none at all
        (stats(canary_requests=0, canary_invocations=0, canary_published=0), "promote", True),  # no traffic
        (stats(canary_requests=10, canary_invocations=49, canary_published=0), "promote", True),  # too few to tell
    ],
)
def test_judge(window: Any, decision: str, inconclusive: bool) -> None:
    verdict = canary_verdict.judge(window, RULE)
    assert (verdict.decision, verdict.inconclusive) == (decision, inconclusive), verdict.reason


def test_low_traffic_verdict_is_configurable() -> None:
    strict = replace(RULE, low_traffic_verdict="rollback")
    assert canary_verdict.judge(stats(canary_requests=20), strict).decision == "rollback"
    assert canary_verdict.judge(stats(canary_requests=20), strict).inconclusive


def test_errors_are_judged_before_latency() -> None:
    verdict = canary_verdict.judge(stats(canary_errors=50, canary_p95=100.0), RULE)
    assert verdict.decision == "rollback" and "error rate" in verdict.reason


# ---- the window and the metric results ----------------------------------------------------------------------
def test_window_is_the_whole_minutes_before_the_hook() -> None:
    window = canary_verdict.canary_window(datetime(2026, 11, 26, 6, 10, 59, 999, tzinfo=UTC), 5)
    assert (window.start, window.end) == (
        datetime(2026, 11, 26, 6, 5, tzinfo=UTC),
        datetime(2026, 11, 26, 6, 10, tzinfo=UTC),
    )
    assert window.seconds == 300


def test_stats_add_unhandled_errors_to_requests_and_errors() -> None:
    results = [
        {"Id": "canary_requests", "Values": [600.0, 400.0]},  # should the window straddle two periods
        {"Id": "canary_5xx", "Values": [3.0]},
        {"Id": "canary_crashes", "Values": [2.0]},
        {"Id": "canary_p95", "Values": [210.0, 250.0]},
        {"Id": "stable_requests", "Values": [9000.0]},
        {"Id": "stable_p95", "Values": []},
    ]
    got = canary_cloudwatch.stats_from_results(results)
    assert got == canary_verdict.WindowStats(1002.0, 5.0, 250.0, 9000.0, None, 0.0, 0.0, 0.0, 1000.0)


def test_stats_carry_4xx_and_the_platform_invocation_count() -> None:
    results = [
        {"Id": "canary_requests", "Values": [100.0]},
        {"Id": "canary_invocations", "Values": [400.0]},
        {"Id": "canary_4xx", "Values": [7.0]},
        {"Id": "stable_4xx", "Values": [30.0]},
    ]
    got = canary_cloudwatch.stats_from_results(results)
    assert (got.canary_invocations, got.canary_published, got.canary_4xx, got.stable_4xx) == (400.0, 100.0, 7.0, 30.0)


# ---- the release ----------------------------------------------------------------------------------------------
def test_parse_appspec_of_a_cloudformation_deployment() -> None:
    release = canary_release.parse_appspec("d-1", appspec(current="7", target="8"))
    assert release == canary_release.Release("d-1", FUNCTION, "live", "7", "8")


@pytest.mark.parametrize(
    "content",
    [
        "version: 0.0\nResources: []",  # YAML
        json.dumps({"version": 0.0, "Resources": []}),
        json.dumps({"version": 0.0, "Resources": [{"A": {"Type": "AWS::Lambda::Function", "Properties": {}}}]}),
    ],
)
def test_unusable_appspec_is_a_canary_error(content: str) -> None:
    with pytest.raises(canary_release.CanaryError):
        canary_release.parse_appspec("d-1", content)


def test_function_name_of() -> None:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    assert canary_release.function_name_of(arn) == canary_release.function_name_of(f"{arn}:live") == FUNCTION
    assert canary_release.function_name_of(FUNCTION) == FUNCTION


# ---- AWS request shapes, validated against the botocore API models --------------------------------------------
def _validate(service: str, operation: str, params: dict[str, Any]) -> None:
    model = boto3.client(service, region_name="us-east-1").meta.service_model.operation_model(operation)
    validate_parameters(params, model.input_shape)  # raises ParamValidationError


def test_alarm_requests_are_valid_put_metric_alarm_calls(settings: Any) -> None:
    release = canary_release.Release("d-1", FUNCTION, "live", "1", "2")
    alarms = canary_alarms.armed_alarms(settings, release)
    assert [a["AlarmName"] for a in alarms] == list(settings.alarm_names)
    for alarm in alarms:
        _validate("cloudwatch", "PutMetricAlarm", alarm)
        assert sum(1 for m in alarm["Metrics"] if m["ReturnData"]) == 1
        assert '"2"' in json.dumps(alarm["Metrics"])  # every alarm watches the new version


def test_idle_alarms_are_valid_and_watch_no_version(settings: Any) -> None:
    for alarm in canary_alarms.idle_alarms(settings):
        _validate("cloudwatch", "PutMetricAlarm", alarm)
        assert canary_alarms.IDLE_VERSION in json.dumps(alarm["Metrics"])
        assert '"2"' not in json.dumps(alarm["Metrics"])


def test_window_queries_are_a_valid_get_metric_data_call(settings: Any) -> None:
    release = canary_release.Release("d-1", FUNCTION, "live", "1", "2")
    window = canary_verdict.Window(datetime(2026, 11, 26, 6, 5, tzinfo=UTC), datetime(2026, 11, 26, 6, 10, tzinfo=UTC))
    queries = canary_cloudwatch.window_queries(settings, release, window)
    _validate(
        "cloudwatch", "GetMetricData", {"MetricDataQueries": queries, "StartTime": window.start, "EndTime": window.end}
    )
    assert {q["MetricStat"]["Period"] for q in queries} == {300}


# ---- configuration ----------------------------------------------------------------------------------------------
def test_settings_carry_the_spec_rule(settings: Any) -> None:
    assert settings.rule == hook_settings.CanaryRule(1.3, 0.02, 5, 50, "promote")
    assert (settings.rule.sustained_minutes, settings.rule.fast_error_rate, settings.rule.fast_minutes) == (5, 0.05, 2)
    assert (settings.rule.fast_min_errors, settings.rule.max_4xx_increase) == (2, 0.05)
    assert settings.metric_lag_s == 180


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CANARY_LOW_TRAFFIC_VERDICT", "maybe"),
        ("CANARY_MAX_ERROR_RATE", "2%"),
        ("CANARY_WINDOW_MINUTES", "0"),
        ("CANARY_FAST_MINUTES", "0"),
        ("CANARY_MAX_4XX_INCREASE", "5"),
        ("CANARY_UNHANDLED_ERRORS_ALARM", ""),
        ("PREDICT_FUNCTION_NAME", ""),
    ],
)
def test_bad_configuration_fails_at_cold_start(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        hook_settings.HookSettings.from_env({**HOOK_ENV, name: value})


# ---- smoke texts ---------------------------------------------------------------------------------------------
def test_smoke_cases_cover_every_label_an_invalid_and_an_oversize_body() -> None:
    cases = canary_smoke.smoke_cases()
    assert sorted(c.label for c in cases if c.status == 200 and c.label) == ["negative", "neutral", "positive"]
    (batch,) = [c for c in cases if c.path == "/predict/batch"]
    assert batch.batch == (("label", "positive"), ("label", "neutral"), ("label", "negative"), ("error", "EMPTY_TEXT"))
    assert [(c.status, c.error_code) for c in cases if c.status != 200] == [
        (400, "INVALID_JSON"),
        (413, "PAYLOAD_TOO_LARGE"),
    ]
    (oversize,) = [c for c in cases if c.status == 413]
    assert len(oversize.body.encode()) > contract.MAX_BODY_BYTES


@pytest.mark.parametrize(
    "body",
    [
        {"results": [{"index": i + 7, "sentiment": s} for i, s in enumerate(["positive", "neutral", "negative"])],
         "errors": [{"index": 10, "code": "EMPTY_TEXT"}]},  # indexes shifted
        {"results": [{"index": 0, "sentiment": "positive"}, {"index": 0, "sentiment": "neutral"},
                     {"index": 2, "sentiment": "negative"}], "errors": [{"index": 3, "code": "EMPTY_TEXT"}]},
        {"results": ["x"], "errors": []},
        {"results": None},
    ],
)  # fmt: skip
def test_the_batch_smoke_case_checks_every_index_once(body: dict) -> None:
    (case,) = [c for c in canary_smoke.smoke_cases() if c.batch]
    answer = {"statusCode": 200, "headers": {"x-correlation-id": "c"}, "body": json.dumps(body)}

    assert canary_smoke.check_answer(case, "c", answer)  # a problem, not an exception
    good = {**answer, "body": json.dumps(case.passing_body())}
    assert canary_smoke.check_answer(case, "c", good) == []
