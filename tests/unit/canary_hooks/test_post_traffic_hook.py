"""The AfterAllowTraffic hook end to end: CodeDeploy event in, the canary window read from CloudWatch
(GetMetricData answered by a botocore Stubber with synthetic data), the verdict reported to CodeDeploy.

The acceptance cases of the rule: latency +31 % -> rollback, +29 % -> promote; 2.1 % errors -> rollback;
too little traffic -> the documented choice (promote with an inconclusive metric by default, or rollback
when CanaryLowTrafficVerdict=rollback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from canary import alarms as canary_alarms
from canary import cloudwatch as canary_cloudwatch
from canary import release as canary_release
from canary import verdict as canary_verdict

from tests.helpers import FakeContext, load_function
from tests.unit.canary_hooks.conftest import FUNCTION, HOOK_ENV, REGION, appspec, emf_blobs

HOOK_STARTED = datetime(2026, 11, 26, 6, 10, 23, tzinfo=UTC)  # when CodeDeploy ran AfterAllowTraffic
WINDOW_START = datetime(2026, 11, 26, 6, 5, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 26, 6, 10, tzinfo=UTC)


def synthetic(
    canary_requests: float,
    canary_5xx: float,
    canary_p95: float | None,
    stable_requests: float,
    stable_p95: float | None,
    crashes: float = 0,
    invocations: float | None = None,
    canary_4xx: float = 0,
    stable_4xx: float = 0,
) -> dict[str, Any]:
    """A GetMetricData answer for the window: one datapoint per query (Period = the window)."""

    def result(query_id: str, value: float | None) -> dict[str, Any]:
        values = [] if value is None else [value]
        return {
            "Id": query_id,
            "Label": query_id,
            "Timestamps": [WINDOW_START] * len(values),
            "Values": values,
            "StatusCode": "Complete",
        }

    return {
        "MetricDataResults": [
            result("canary_requests", canary_requests),
            result("canary_5xx", canary_5xx),
            result("canary_crashes", crashes),
            result("canary_invocations", canary_requests + crashes if invocations is None else invocations),
            result("canary_p95", canary_p95),
            result("canary_4xx", canary_4xx),
            result("stable_requests", stable_requests),
            result("stable_p95", stable_p95),
            result("stable_4xx", stable_4xx),
        ]
    }


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def run_post_traffic(
    codedeploy: Any,
    answer: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None = None,
    cloudwatch: Any = None,
) -> tuple[str, Clock]:
    """Creates a release 1 -> 2 and runs the hook on the synthetic metrics: (reported status, clock)."""
    post: ModuleType = load_function("post_traffic", env={**HOOK_ENV, **(env or {})})
    post.deployments = canary_release.CodeDeployDeployments(codedeploy.client)
    clock = Clock(HOOK_STARTED)
    monkeypatch.setattr(post, "utcnow", clock)
    monkeypatch.setattr(post, "time", SimpleNamespace(sleep=clock.sleep))
    if cloudwatch is not None:
        monkeypatch.setattr(post, "cloudwatch", cloudwatch)  # where the alarms are disarmed

    deployment = codedeploy.create(appspec(current="1", target="2"))
    release = canary_release.Release(deployment, FUNCTION, "live", "1", "2")
    window = canary_verdict.Window(WINDOW_START, WINDOW_END)
    metrics_client = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(metrics_client)
    stubber.add_response(
        "get_metric_data",
        answer,
        expected_params={
            "MetricDataQueries": canary_cloudwatch.window_queries(post.settings, release, window),
            "StartTime": WINDOW_START,
            "EndTime": WINDOW_END,
        },
    )
    stubber.activate()
    post.source = canary_cloudwatch.CloudWatchMetrics(metrics_client)

    status = post.post_traffic({"DeploymentId": deployment, "LifecycleEventHookExecutionId": "exec-1"}, FakeContext())
    stubber.assert_no_pending_responses()
    assert codedeploy.status_of(deployment) == [status]
    return status, clock


# stable: 9 000 requests at p95 200 ms; canary: 1 000 requests (10 %)
@pytest.mark.parametrize(
    ("case", "answer", "expected", "verdict"),
    [
        ("latency +31 %", synthetic(1000, 0, 262.0, 9000, 200.0), "Failed", "rollback"),
        ("latency +29 %", synthetic(1000, 0, 258.0, 9000, 200.0), "Succeeded", "promote"),
        ("latency +30 % exactly", synthetic(1000, 0, 260.0, 9000, 200.0), "Succeeded", "promote"),
        ("errors 2.1 %", synthetic(1000, 21, 200.0, 9000, 200.0), "Failed", "rollback"),
        ("errors 2.0 % exactly", synthetic(1000, 20, 200.0, 9000, 200.0), "Succeeded", "promote"),
        ("unhandled errors count", synthetic(1000, 0, 200.0, 9000, 200.0, crashes=25), "Failed", "rollback"),
        ("faster canary", synthetic(1000, 0, 120.0, 9000, 200.0), "Succeeded", "promote"),
        ("4xx +6 points", synthetic(1000, 0, 200.0, 9000, 200.0, canary_4xx=70, stable_4xx=90), "Failed", "rollback"),
        ("4xx as stable", synthetic(1000, 0, 200.0, 9000, 200.0, canary_4xx=10, stable_4xx=90), "Succeeded", "promote"),
        ("no metrics", synthetic(0, 0, None, 9000, 200.0, invocations=1000), "Failed", "rollback"),
        ("metrics for 40 %", synthetic(400, 0, 200.0, 9000, 200.0, invocations=1000), "Failed", "rollback"),
    ],
)
def test_verdicts(
    codedeploy: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    answer: dict[str, Any],
    expected: str,
    verdict: str,
) -> None:
    status, _ = run_post_traffic(codedeploy, answer, monkeypatch)
    assert status == expected, case
    assert [b["Verdict"] for b in emf_blobs(capsys.readouterr().out) if "CanaryVerdicts" in b] == [verdict]


def idle(alarm: dict[str, Any]) -> bool:
    dimensions = [d for m in alarm["Metrics"] if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]]
    versions = {d["Value"] for d in dimensions if d["Name"] in ("FunctionVersion", "ExecutedVersion")}
    return versions == {canary_alarms.IDLE_VERSION}


@pytest.mark.parametrize(
    "answer",
    [synthetic(1000, 0, 200.0, 9000, 200.0), synthetic(1000, 0, 400.0, 9000, 200.0)],
    ids=["promoted", "rolled-back"],
)
def test_the_verdict_disarms_the_rollback_alarms(
    codedeploy: Any, monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any]
) -> None:
    # Left armed on the now-live version, an incident on it would make CodeDeploy refuse the next release.
    run_post_traffic(codedeploy, answer, monkeypatch)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {HOOK_ENV[v] for v in HOOK_ENV if v.startswith("CANARY_") and v.endswith("_ALARM")}
    assert len(alarms) == 5
    assert all(idle(alarm) for alarm in alarms.values())
    assert all("idle" in alarm["AlarmDescription"] for alarm in alarms.values())


def test_a_failure_to_disarm_does_not_change_the_verdict(
    codedeploy: Any, monkeypatch: pytest.MonkeyPatch, log_lines: Any
) -> None:
    def denied(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutMetricAlarm")

    post_cloudwatch = SimpleNamespace(put_metric_alarm=denied)
    status, _ = run_post_traffic(
        codedeploy, synthetic(1000, 0, 200.0, 9000, 200.0), monkeypatch, cloudwatch=post_cloudwatch
    )
    assert status == "Succeeded"
    assert any(line["message"].startswith("could not disarm") for line in log_lines())


def test_waits_for_the_metric_lag_before_reading(codedeploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, clock = run_post_traffic(codedeploy, synthetic(1000, 0, 200.0, 9000, 200.0), monkeypatch)
    # window ends 06:10:00, lag 180 s -> read at 06:13:00; the hook started at 06:10:23
    assert clock.slept == [157.0]


def test_low_traffic_promotes_with_an_inconclusive_verdict_by_default(
    codedeploy: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], log_lines: Any
) -> None:
    status, _ = run_post_traffic(codedeploy, synthetic(20, 0, 900.0, 180, 200.0), monkeypatch)
    assert status == "Succeeded"
    assert [b["Verdict"] for b in emf_blobs(capsys.readouterr().out) if "CanaryVerdicts" in b] == ["inconclusive"]
    (verdict,) = [line for line in log_lines() if line["message"] == "canary verdict"]
    assert verdict["inconclusive"] is True
    assert verdict["level"] == "WARNING"


def test_low_traffic_rolls_back_when_configured(codedeploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    status, _ = run_post_traffic(
        codedeploy, synthetic(20, 0, 200.0, 180, 200.0), monkeypatch, env={"CANARY_LOW_TRAFFIC_VERDICT": "rollback"}
    )
    assert status == "Failed"


def test_errors_roll_back_even_at_low_traffic(codedeploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 failures among 10 requests: even if the 40 missing requests up to 50 had all succeeded, 4 % > 2 %
    status, _ = run_post_traffic(codedeploy, synthetic(10, 2, 200.0, 90, 200.0), monkeypatch)
    assert status == "Failed"


def test_no_canary_data_at_all_is_low_traffic(codedeploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    status, _ = run_post_traffic(codedeploy, synthetic(0, 0, None, 0, None), monkeypatch)
    assert status == "Succeeded"


def test_a_cloudwatch_failure_fails_safe(codedeploy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    post: ModuleType = load_function("post_traffic", env=HOOK_ENV)
    post.deployments = canary_release.CodeDeployDeployments(codedeploy.client)
    monkeypatch.setattr(post, "time", SimpleNamespace(sleep=lambda _: None))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(cloudwatch)
    stubber.add_client_error("get_metric_data", service_error_code="AccessDenied", http_status_code=403)
    stubber.activate()
    post.source = canary_cloudwatch.CloudWatchMetrics(cloudwatch)
    deployment = codedeploy.create(appspec(current="1", target="2"))

    assert (
        post.post_traffic({"DeploymentId": deployment, "LifecycleEventHookExecutionId": "e"}, FakeContext()) == "Failed"
    )
    assert codedeploy.status_of(deployment) == ["Failed"]
