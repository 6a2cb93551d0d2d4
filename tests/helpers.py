"""Test helpers shared by every test package.

What a deployed function gets comes from template.yaml (local_stack.template): its code folder, handler,
layers and environment variables, resolved with TEST_REFS for the template's references. A function is
loaded the way the Lambda runtime loads it (local_stack.runtime, the project's one module loader), with
its environment set through pytest's MonkeyPatch and restored afterwards."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from local_stack import runtime, template

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

#: What the template's references resolve to in the tests (the endpoint name is deliberately distinctive).
TEST_REFS: dict[str, str] = {
    "Stage": "test",
    "SageMakerEndpointName": "sentiment-test",
    "RateLimitTable": "sentiment-test-rate-limits",
    "ReportsBucket": "sentiment-test-reports",
    "DataBucket": "sentiment-test-data",
    "JobsTable": "sentiment-test-jobs",
    "JobsBucket": "sentiment-test-jobs-bucket",
    "JobsStateMachine": "arn:aws:states:us-east-1:123456789012:stateMachine:sentiment-api-test-jobs",
    "AWS::StackName": "sentiment-api-test",
    "AWS::Region": "us-east-1",
    "PredictFunction": "sentiment-api-test-PredictFunction",
    "ModelReleaseRole.Arn": "arn:aws:iam::123456789012:role/sentiment-api-test-ModelReleaseRole",
    "CanaryLatencyAlarm": "sentiment-api-test-canary-p95-latency",
    "CanaryErrorRateAlarm": "sentiment-api-test-canary-error-rate",
    "CanaryFastErrorRateAlarm": "sentiment-api-test-canary-fast-error-rate",
    "CanaryClientErrorAlarm": "sentiment-api-test-canary-4xx-increase",
    "CanaryUnhandledErrorsAlarm": "sentiment-api-test-canary-unhandled-errors",
    "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:sentiment-api-test-alarms",
}
#: The test process's AWS identity: moto's, never a real one; X-Ray off.
AWS_TEST_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
#: The old short names of the functions the tests load (functions/<folder>, or the handler's name).
LOGICAL_IDS = {
    "predict": "PredictFunction",
    "explain": "ExplainFunction",
    "pre_traffic": "PreTrafficHookFunction",
    "post_traffic": "PostTrafficHookFunction",
    "validate_dataset": "ValidateDatasetFunction",
    "smoke_test_endpoint": "SmokeTestEndpointFunction",
    "release_model": "ReleaseModelFunction",
}


def function(name: str, refs: Mapping[str, str] | None = None) -> template.Function:
    return template.functions(TEST_REFS | dict(refs or {}))[LOGICAL_IDS.get(name, name)]


def function_env(name: str, refs: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment template.yaml gives the function, resolved with TEST_REFS (+ refs), plus the test
    identity."""
    return function(name, refs).resolved_environment(TEST_REFS | dict(refs or {})) | AWS_TEST_ENV


# The predict function's configuration (tests/template checks the template against the code's needs).
FUNCTION_ENV = function_env("predict")
_loaded = itertools.count()


def load_function(name: str, env: Mapping[str, str] | None = None, refs: Mapping[str, str] | None = None) -> ModuleType:
    """Imports the function's handler module under a unique module name, with the function's environment
    (template + ``env``) set while it imports; the process environment is restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (function_env(name, refs) | dict(env or {})).items():
            patch.setenv(key, value)
        return runtime.import_module(function(name, refs), f"{name}_under_test_{next(_loaded)}")


def handler_of(module: ModuleType, name: str) -> Any:
    """The function's handler in a module loaded by load_function."""
    return getattr(module, function(name).attribute)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text("utf-8"))


class FakeContext:
    function_name = "sentiment-api-PredictFunction"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentiment-api-PredictFunction:live"
    memory_limit_in_mb = 512
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    log_group_name = "/aws/lambda/sentiment-api-PredictFunction"
    log_stream_name = "2026/11/26/[1]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 3000


def create_rate_limit_table(client: Any, name: str) -> None:
    """The rate-limit table as template.yaml defines it (keys and TTL read from the template)."""
    template.table("RateLimitTable").create(client, name)


# ---- the RateLimit header fields ------------------------------------------------------------------------
def rate_limit_fields(headers: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """RateLimit-Policy and RateLimit of an answer, parsed as RFC 9651 structured fields (a strict parser:
    an invalid field raises): the parameters of the one "per-user" policy, e.g. ({"q": 200, "w": 120,
    "qu": "request"}, {"r": 199, "t": 1})."""
    import http_sf

    lower = {name.lower(): value for name, value in headers.items()}
    [(policy_name, policy)] = http_sf.parse(lower["ratelimit-policy"].encode("ascii"), tltype="list")
    [(limit_name, limit)] = http_sf.parse(lower["ratelimit"].encode("ascii"), tltype="list")
    assert policy_name == limit_name == "per-user"
    return dict(policy), dict(limit)
