"""The BeforeAllowTraffic hook end to end: CodeDeploy event in, Succeeded/Failed reported, alarms written.

Lambda, CodeDeploy and CloudWatch are moto; the smoke tests run once against moto's scripted Lambda answers
and once against the real predict handler in-process (the contract between the smoke cases and the
function: event shape, status codes, error codes, correlation id echo)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from botocore.response import StreamingBody
from botocore.stub import Stubber
from canary import release as canary_release
from canary import smoke as canary_smoke
from sentiment_api.endpoint import SageMakerEndpoint
from sentiment_api.observability import logger as api_logger
from sentiment_core import contract

from tests.helpers import FUNCTION_ENV, FakeContext, create_rate_limit_table, load_function
from tests.unit.canary_hooks.conftest import (
    FUNCTION,
    HOOK_ENV,
    REGION,
    TOPIC_ARN,
    appspec,
    emf_blobs,
    emf_request_document,
    queue_lambda_answers,
    serve_log_tails,
)

SMOKE_TEXTS, smoke_cases = contract.SMOKE_TEXTS, canary_smoke.smoke_cases


@pytest.fixture
def pre(codedeploy: Any, predict_versions: Any) -> ModuleType:
    module = load_function("pre_traffic", env=HOOK_ENV)
    module.deployments = canary_release.CodeDeployDeployments(codedeploy.client)
    module.versions = canary_smoke.LambdaFunctionVersions(boto3.client("lambda", region_name=REGION))
    serve_log_tails(module.versions._client)
    return module


def hook_event(deployment_id: str) -> dict[str, str]:
    return {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": f"exec-{deployment_id}"}


def good_answers(deployment_id: str) -> list[dict[str, Any]]:
    """What a healthy predict version answers to the smoke cases, in order."""
    answers = []
    for case in smoke_cases():
        headers = {"Content-Type": "application/json", "x-correlation-id": f"smoke-{deployment_id}-{case.name}"}
        answers.append({"statusCode": case.status, "headers": headers, "body": json.dumps(case.passing_body())})
    return answers


def written_alarms() -> dict[str, dict[str, Any]]:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    return {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}


def dimensions(alarm: Mapping[str, Any], query_id: str) -> dict[str, str]:
    (query,) = [m for m in alarm["Metrics"] if m["Id"] == query_id]
    return {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}


@pytest.mark.parametrize("revision_type", ["String", "AppSpecContent"])
def test_healthy_release_passes_and_arms_the_version_aware_alarms(
    pre: ModuleType, codedeploy: Any, revision_type: str
) -> None:
    # String: a deployment CloudFormation created; AppSpecContent: one a state machine/CLI created.
    deployment = codedeploy.create(appspec(current="1", target="2"), revision_type)
    queue_lambda_answers(*good_answers(deployment))

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Succeeded"

    assert codedeploy.status_of(deployment) == ["Succeeded"]
    alarms = written_alarms()
    latency, errors = alarms[HOOK_ENV["CANARY_LATENCY_ALARM"]], alarms[HOOK_ENV["CANARY_ERROR_ALARM"]]
    assert dimensions(latency, "canary_p95") == {"Stage": "prod", "FunctionVersion": "2"}
    assert dimensions(latency, "stable_p95") == {"Stage": "prod", "FunctionVersion": "1"}
    assert [m["Expression"] for m in latency["Metrics"] if "Expression" in m] == ["canary_p95 / stable_p95"]
    assert (latency["Threshold"], latency["ComparisonOperator"]) == (1.3, "GreaterThanThreshold")
    assert dimensions(errors, "requests") == {"Stage": "prod", "FunctionVersion": "2"}
    assert dimensions(errors, "crashes") == {
        "FunctionName": FUNCTION,
        "Resource": f"{FUNCTION}:live",
        "ExecutedVersion": "2",
    }
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (0.02, "GreaterThanThreshold")
    for alarm in (latency, errors):
        # "sustained 5 minutes": 5 one-minute periods, all breaching; no traffic is no breach
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 5)
    fast = alarms[HOOK_ENV["CANARY_FAST_ERROR_ALARM"]]
    assert (fast["Threshold"], fast["EvaluationPeriods"], fast["DatapointsToAlarm"]) == (0.05, 2, 2)
    assert dimensions(fast, "errors") == {"Stage": "prod", "FunctionVersion": "2"}
    client_errors = alarms[HOOK_ENV["CANARY_CLIENT_ERROR_ALARM"]]
    assert dimensions(client_errors, "canary_4xx")["FunctionVersion"] == "2"
    assert dimensions(client_errors, "stable_4xx")["FunctionVersion"] == "1"
    crashes = alarms[HOOK_ENV["CANARY_UNHANDLED_ERRORS_ALARM"]]
    assert dimensions(crashes, "invocations")["ExecutedVersion"] == "2"
    assert dimensions(crashes, "crashes") == dimensions(crashes, "invocations")  # one source: one lag
    for alarm in alarms.values():  # no alarm mixes request metrics with AWS/Lambda ones in a ratio...
        namespaces = {m["MetricStat"]["Metric"]["Namespace"] for m in alarm["Metrics"] if "MetricStat" in m}
        # ...except the spec's error rate, whose unhandled errors are added (not divided) to the 5xx
        assert len(namespaces) == 1 or alarm["AlarmName"] == HOOK_ENV["CANARY_ERROR_ALARM"], alarm["AlarmName"]
    assert set(alarms) == {HOOK_ENV[v] for v in HOOK_ENV if v.startswith("CANARY_") and v.endswith("_ALARM")}
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [TOPIC_ARN]
        assert deployment in alarm["AlarmDescription"]


def test_a_version_that_publishes_no_metrics_fails_before_any_traffic(
    pre: ModuleType, codedeploy: Any, log_lines: Any
) -> None:
    """Every answer right, but no request metrics in the log: invisible to the rollback alarms."""
    pre.versions = canary_smoke.LambdaFunctionVersions(boto3.client("lambda", region_name=REGION))
    serve_log_tails(pre.versions._client, publishes_metrics=False)
    deployment = codedeploy.create(appspec(current="1", target="2"))
    queue_lambda_answers(*good_answers(deployment))

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"

    assert written_alarms() == {}
    (failure,) = [line for line in log_lines() if line["message"] == "smoke tests failed"]
    assert all("no Requests metric for version 2" in problem for problem in failure["problems"])


def _with(document: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**document, **changes})


SMOKE_DOCUMENT = emf_request_document("2")
DIRECTIVE = SMOKE_DOCUMENT["_aws"]["CloudWatchMetrics"][0]


@pytest.mark.parametrize(
    ("log", "published"),
    [
        (json.dumps(SMOKE_DOCUMENT), True),
        (json.dumps(emf_request_document("3")), False),  # another version's metrics
        (_with(SMOKE_DOCUMENT, FunctionVersion="2"), False),  # not marked as a smoke request: would count
        (_with(SMOKE_DOCUMENT, Stage="dev"), False),  # another stage's dimension value
        (json.dumps({"message": json.dumps(SMOKE_DOCUMENT)}), True),  # wrapped by the JSON log format
        (json.dumps(SMOKE_DOCUMENT)[1500:], False),  # cut by the 4 KB tail
        ("START RequestId: x Version: 2\nnot json\n", False),
        (_with(SMOKE_DOCUMENT, _aws={"CloudWatchMetrics": [{**DIRECTIVE, "Dimensions": [["Stage"]]}]}), False),
        (  # an extra dimension in the set: the alarms, which read exactly Stage + FunctionVersion, see nothing
            _with(
                SMOKE_DOCUMENT,
                _aws={"CloudWatchMetrics": [{**DIRECTIVE, "Dimensions": [["Stage", "FunctionVersion", "Tenant"]]}]},
            ),
            False,
        ),
        (_with(SMOKE_DOCUMENT, _aws={"CloudWatchMetrics": [{**DIRECTIVE, "Namespace": "Other"}]}), False),
    ],
)
def test_publishes_request_metric_reads_the_log_tail(log: str, published: bool, settings: Any) -> None:
    assert canary_smoke.publishes_request_metric(log, settings, "2") is published


def test_the_real_log_tail_of_a_smoke_request_passes_when_cut_at_4_kb(
    pre: ModuleType, codedeploy: Any, real_predict: ModuleType, settings: Any
) -> None:
    """The predict handler's real output for a smoke request (its log lines and EMF documents, as they
    leave the function) plus Lambda's JSON platform records, cut to the last 4 KB as LogType=Tail does."""
    queue_model_labels("positive")
    (case,) = [c for c in smoke_cases() if c.name == "label-positive"]
    event = canary_smoke.smoke_event(case, "d-1", datetime.now(UTC))
    out = io.StringIO()
    previous = api_logger.registered_handler.setStream(out)  # the function's log lines, in order with its EMF
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
            patch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "2")
            real_predict.lambda_handler(event, FakeContext())
    finally:
        api_logger.registered_handler.setStream(previous)
    # Lambda's own records after the function's output: END and REPORT are ~0.5 KB; allow 2 KB
    report = {"time": "2026-12-02T06:00:00.000Z", "type": "platform.report", "record": {"requestId": "x" * 36}}
    platform = "".join(json.dumps(report) + "\n" for _ in range(16))
    assert 1900 < len(platform) < 2200
    tail = (out.getvalue() + platform).encode()[-4096:].decode("utf-8", "replace")
    assert '"level":"INFO"' in out.getvalue()  # the log lines are in it, not only the EMF
    assert canary_smoke.publishes_request_metric(tail, settings, "2")


@pytest.mark.parametrize(
    ("broken_case", "change"),
    [
        ("label-positive", {"body": json.dumps({"sentiment": "negative"})}),  # the model got worse
        ("invalid-body", {"statusCode": 500}),  # validation broke
        ("oversize-body", {"statusCode": 400, "body": json.dumps({"error": {"code": "VALIDATION_ERROR"}})}),
        ("label-neutral", {"headers": {"content-type": "application/json"}}),  # correlation id lost
    ],
)
def test_a_failed_smoke_case_fails_the_deployment_and_arms_nothing(
    pre: ModuleType,
    codedeploy: Any,
    broken_case: str,
    change: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    log_lines: Any,
) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2"))
    answers = good_answers(deployment)
    index = [case.name for case in smoke_cases()].index(broken_case)
    answers[index] = {**answers[index], **change}
    queue_lambda_answers(*answers)

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"

    assert codedeploy.status_of(deployment) == ["Failed"]
    assert written_alarms() == {}
    (failure,) = [line for line in log_lines() if line["message"] == "smoke tests failed"]
    assert [p.split(":")[0] for p in failure["problems"]] == [broken_case]  # the log says which case failed
    verdicts = [b["Verdict"] for b in emf_blobs(capsys.readouterr().out) if "CanaryVerdicts" in b]
    assert verdicts == ["rollback"]  # CanaryVerdicts metric -> the deploy-rolled-back alarm


def test_alias_is_the_truth_about_the_stable_version(pre: ModuleType, codedeploy: Any, predict_versions: Any) -> None:
    predict_versions.publish_version(FunctionName=FUNCTION)  # version 3
    predict_versions.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="2")
    deployment = codedeploy.create(appspec(current="1", target="3"))
    queue_lambda_answers(*good_answers(deployment))

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Succeeded"

    latency = written_alarms()[HOOK_ENV["CANARY_LATENCY_ALARM"]]
    assert dimensions(latency, "stable_p95")["FunctionVersion"] == "2"
    assert dimensions(latency, "canary_p95")["FunctionVersion"] == "3"


def test_a_deployment_of_another_function_is_refused(pre: ModuleType, codedeploy: Any) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2", function="someone-elses-function"))
    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"
    assert codedeploy.status_of(deployment) == ["Failed"]


def test_a_crashing_version_fails_the_deployment(pre: ModuleType, codedeploy: Any) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2"))
    client = boto3.client("lambda", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_response("get_alias", {"FunctionVersion": "1"})
    crash = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "init failed"}'
    for _ in smoke_cases():
        stubber.add_response(
            "invoke",
            {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": StreamingBody(io.BytesIO(crash), len(crash))},
        )
    stubber.activate()
    pre.versions = canary_smoke.LambdaFunctionVersions(client)

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"
    assert codedeploy.status_of(deployment) == ["Failed"]
    stubber.assert_no_pending_responses()


def test_an_aws_error_while_arming_alarms_fails_safe(pre: ModuleType, codedeploy: Any) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2"))
    queue_lambda_answers(*good_answers(deployment))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stubber = Stubber(cloudwatch)
    stubber.add_client_error("put_metric_alarm", service_error_code="AccessDenied", http_status_code=403)
    stubber.activate()
    pre.cloudwatch = cloudwatch

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"
    assert codedeploy.status_of(deployment) == ["Failed"]


# ---- the smoke cases against the real predict handler ----------------------------------------------------
class InProcessVersions:
    """FunctionVersions that runs the predict handler in this process (what the new version would do)."""

    def __init__(self, predict: ModuleType) -> None:
        self.predict = predict
        self.invoked: list[tuple[str, str]] = []

    def alias_version(self, function_name: str, alias: str) -> str:
        return "1"

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> canary_smoke.Invocation:
        """The handler's answer, and what it printed (its EMF documents) as the log tail."""
        self.invoked.append((function_name, version))
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
            patch.setenv("AWS_LAMBDA_FUNCTION_VERSION", version)
            answer: dict[str, Any] = self.predict.lambda_handler(json.loads(json.dumps(event)), FakeContext())
        return canary_smoke.Invocation(answer, out.getvalue())


@pytest.fixture
def real_predict(aws: None) -> Iterator[ModuleType]:
    create_rate_limit_table(boto3.client("dynamodb", region_name=REGION), FUNCTION_ENV["RATE_LIMIT_TABLE_NAME"])
    predict = load_function("predict", env={"STAGE": HOOK_ENV["STAGE"]})  # one stack: the hooks' stage
    predict.endpoint = SageMakerEndpoint(boto3.client("sagemaker-runtime", region_name=REGION), "sentiment-test")
    yield predict


def queue_model_labels(*labels: str) -> None:
    """The model's answers to the smoke texts: once one by one (POST /predict), then as the batch case's one
    call (its three texts in one answer; its empty item is never sent)."""
    results = [{"Body": json.dumps({"predicted_label": label}), "ContentType": "application/json"} for label in labels]
    batch = {"predictions": [{"predicted_label": label} for label in labels]}
    results.append({"Body": json.dumps(batch), "ContentType": "application/json"})
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": results, "region": REGION},
        timeout=5,
    )


def test_smoke_cases_match_the_real_predict_function(
    pre: ModuleType, codedeploy: Any, real_predict: ModuleType
) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2"))
    queue_model_labels(*SMOKE_TEXTS)  # a model that classifies the smoke texts correctly
    versions = InProcessVersions(real_predict)
    pre.versions = versions

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Succeeded"
    # every case went to the new version directly, none through the alias
    assert versions.invoked == [(FUNCTION, "2")] * len(smoke_cases())


def test_real_predict_function_with_a_confused_model_fails(
    pre: ModuleType, codedeploy: Any, real_predict: ModuleType
) -> None:
    deployment = codedeploy.create(appspec(current="1", target="2"))
    queue_model_labels("positive", "positive", "positive")  # says positive to everything
    pre.versions = InProcessVersions(real_predict)

    assert pre.pre_traffic(hook_event(deployment), FakeContext()) == "Failed"


# ---- a cold serverless endpoint ----------------------------------------------------------------------------
class ScriptedVersions:
    """Answers the first ``cold`` invocations with a 504 (the endpoint starting a container), then 200s."""

    def __init__(self, cold: int) -> None:
        self.cold = cold
        self.calls = 0

    def alias_version(self, function_name: str, alias: str) -> str:
        return "1"

    def invoke(self, function_name: str, version: str, event: Mapping[str, Any]) -> canary_smoke.Invocation:
        self.calls += 1
        status = 504 if self.calls <= self.cold else 200
        return canary_smoke.Invocation({"statusCode": status, "body": "{}"}, "")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _first_event() -> dict[str, Any]:
    release = canary_smoke.Release("d-1", FUNCTION, "live", "1", "2")
    return canary_smoke.smoke_event(smoke_cases()[0], release.deployment_id, datetime(2026, 12, 2, tzinfo=UTC))


@pytest.mark.parametrize(("cold", "calls", "status"), [(0, 1, 200), (3, 4, 200), (100, 15, 504)])
def test_the_first_case_waits_for_a_cold_endpoint_within_its_budget(cold: int, calls: int, status: int) -> None:
    """A warm endpoint costs no extra call; a cold one (504 while SageMaker starts a container) is asked again
    every 2 s for up to 30 s; one that stays cold is judged on its last answer (the smoke test fails)."""
    versions, clock = ScriptedVersions(cold), FakeClock()
    release = canary_smoke.Release("d-1", FUNCTION, "live", "1", "2")
    invocation = canary_smoke.invoke_until_warm(release, versions, _first_event(), clock=clock, sleep=clock.sleep)
    assert versions.calls == calls
    assert invocation.answer["statusCode"] == status
    assert clock.now <= canary_smoke.WARM_UP_BUDGET_S
