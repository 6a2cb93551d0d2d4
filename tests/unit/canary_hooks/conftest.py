"""Fixtures for the CodeDeploy hook tests: moto (Lambda, CodeDeploy, CloudWatch) and what moto lacks.

moto implements CodeDeploy applications, deployment groups and deployments, but not the two calls a Lambda
hook makes (GetApplicationRevision, PutLifecycleEventHookExecutionStatus): CodeDeployEmulator answers those
from the deployments it created, through botocore's before-call event (how Stubber answers too). Like real
CodeDeploy, GetDeployment returns the revision without its AppSpec content."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from canary.observability import logger
from canary.settings import HookSettings
from moto import mock_aws
from sentiment_core.contract import smoke_version

from tests.helpers import AWS_TEST_ENV, function_env

REGION = "us-east-1"
FUNCTION = "sentiment-api-prod-PredictFunction-AbC123"
APPLICATION = "sentiment-api-prod-ServerlessDeploymentApplication-XyZ"
GROUP = "sentiment-api-prod-PredictFunctionDeploymentGroup-XyZ"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:sentiment-api-prod-alarms"

# What the template's references resolve to for the hooks (example physical names of a prod stack).
HOOK_REFS = {
    "Stage": "prod",
    "PredictFunction": FUNCTION,
    "CanaryLatencyAlarm": "sentiment-api-prod-canary-p95-latency",
    "CanaryErrorRateAlarm": "sentiment-api-prod-canary-error-rate",
    "CanaryFastErrorRateAlarm": "sentiment-api-prod-canary-fast-error-rate",
    "CanaryClientErrorAlarm": "sentiment-api-prod-canary-4xx-increase",
    "CanaryUnhandledErrorsAlarm": "sentiment-api-prod-canary-unhandled-errors",
    "AlarmTopic": TOPIC_ARN,
}
# What template.yaml gives the hooks (both get the same environment), resolved with HOOK_REFS.
HOOK_ENV = function_env("pre_traffic", HOOK_REFS)


@pytest.fixture
def settings() -> HookSettings:
    return HookSettings.from_env(HOOK_ENV)


def appspec(current: str, target: str, function: str = FUNCTION, alias: str = "live") -> str:
    """A Lambda AppSpec as CloudFormation writes it for an AutoPublishAlias deployment."""
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    "PredictFunction": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": function,
                            "Alias": alias,
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
            "Hooks": [
                {"BeforeAllowTraffic": f"CodeDeployHook_{FUNCTION}-pre"},
                {"AfterAllowTraffic": f"CodeDeployHook_{FUNCTION}-post"},
            ],
        }
    )


class CodeDeployEmulator:
    """moto's CodeDeploy plus GetApplicationRevision and PutLifecycleEventHookExecutionStatus."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.reports: list[dict[str, str]] = []
        self._contents: dict[str, str] = {}
        events = client.meta.events
        events.register("before-call.codedeploy.GetApplicationRevision", self._get_application_revision)
        events.register("before-call.codedeploy.PutLifecycleEventHookExecutionStatus", self._put_status)
        events.register("after-call.codedeploy.GetDeployment", self._hide_content)
        client.create_application(applicationName=APPLICATION, computePlatform="Lambda")
        client.create_deployment_group(
            applicationName=APPLICATION,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::123456789012:role/CodeDeployServiceRole",
            deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        )

    def create(self, content: str, revision_type: str = "String") -> str:
        """A deployment whose revision is `content`: revisionType String is what CloudFormation creates,
        AppSpecContent what `aws deploy create-deployment` / a state machine would send."""
        sha = hashlib.sha256(content.encode()).hexdigest()
        self._contents[sha] = content
        key = "string" if revision_type == "String" else "appSpecContent"
        deployment_id: str = self.client.create_deployment(
            applicationName=APPLICATION,
            deploymentGroupName=GROUP,
            revision={"revisionType": revision_type, key: {"content": content, "sha256": sha}},
        )["deploymentId"]
        return deployment_id

    def status_of(self, deployment_id: str) -> list[str]:
        return [r["status"] for r in self.reports if r["deploymentId"] == deployment_id]

    @staticmethod
    def _params(params: dict[str, Any]) -> dict[str, Any]:
        body = params["body"]
        return json.loads(body.decode() if isinstance(body, bytes) else body)

    def _get_application_revision(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        request = self._params(params)
        revision = request["revision"]
        key = "string" if revision["revisionType"] == "String" else "appSpecContent"
        assert "content" not in revision[key], "the hook must not rely on content from GetDeployment"
        content = self._contents[revision[key]["sha256"]]
        parsed = {
            "applicationName": request["applicationName"],
            "revision": {
                "revisionType": revision["revisionType"],
                key: {"content": content, "sha256": revision[key]["sha256"]},
            },
        }
        return AWSResponse(None, 200, {}, None), parsed

    def _put_status(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        request = self._params(params)
        self.reports.append(request)
        return AWSResponse(None, 200, {}, None), {
            "lifecycleEventHookExecutionId": request["lifecycleEventHookExecutionId"]
        }

    @staticmethod
    def _hide_content(parsed: dict[str, Any], **_: Any) -> None:
        # Real CodeDeploy: "The content property of the appSpecContent object in the returned revision is
        # always null" (GetDeployment); moto returns it, so drop it.
        revision = parsed.get("deploymentInfo", {}).get("revision", {})
        for key in ("string", "appSpecContent"):
            if isinstance(revision.get(key), dict):
                revision[key].pop("content", None)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, AWS_TEST_ENV[key])
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def codedeploy(aws: None) -> CodeDeployEmulator:
    return CodeDeployEmulator(boto3.client("codedeploy", region_name=REGION))


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def predict_versions(aws: None) -> Any:
    """The predict function in moto with versions 1 (stable, behind `live`) and 2 (the release)."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="predict", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("lambda", region_name=REGION)
    client.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": _zip()},
        Architectures=["arm64"],
    )
    client.publish_version(FunctionName=FUNCTION)
    client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip())
    client.publish_version(FunctionName=FUNCTION)
    client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="1")
    return client


def emf_request_document(version: str, stage: str = "prod") -> dict[str, Any]:
    """The request metrics of one smoke invocation as powertools writes them for sentiment_api.http.
    record_request (the test of the real predict function checks the real output against the same reader)."""
    return {
        "_aws": {
            "Timestamp": 1764655200000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "SentimentApi",
                    "Dimensions": [["Stage", "service"], ["Stage", "FunctionVersion"]],
                    "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}],
                }
            ],
        },
        "Stage": stage,
        "service": "sentiment-api",
        "FunctionVersion": smoke_version(version),
        "Requests": [1.0],
        "Latency": [42.0],
    }


def serve_log_tails(client: Any, publishes_metrics: bool = True) -> None:
    """Invoke(LogType=Tail) answers with a LogResult (moto's Docker-less Lambda returns none): the last 4 KB
    of the invocation's log, holding the version's request metrics unless publishes_metrics is False."""
    qualifiers: list[str] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        qualifiers.append(str(params.get("Qualifier", "$LATEST")))

    def add_tail(parsed: dict[str, Any], **_: Any) -> None:
        version = qualifiers.pop(0)
        lines = [json.dumps({"time": "2026-12-02T06:00:00Z", "type": "platform.start", "record": {"version": version}})]
        if publishes_metrics:
            lines.append(json.dumps(emf_request_document(version)))
        lines.append(json.dumps({"time": "2026-12-02T06:00:00Z", "type": "platform.report", "record": {}}))
        parsed["LogResult"] = base64.b64encode("\n".join(lines).encode()).decode()

    client.meta.events.register("provide-client-params.lambda.Invoke", remember)
    client.meta.events.register("after-call.lambda.Invoke", add_tail)


def queue_lambda_answers(*answers: dict[str, Any]) -> None:
    """What moto's Docker-less Lambda returns for the next invocations, in order."""
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response",
        json={"results": [json.dumps(a) for a in answers], "region": REGION},
        timeout=5,
    )


@pytest.fixture
def log_lines() -> Iterator[Any]:
    """The hooks' structured log lines (powertools Logger writes JSON to its own stream)."""
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)


def emf_blobs(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
