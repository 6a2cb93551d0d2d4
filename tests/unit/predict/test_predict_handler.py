"""The predict handler end to end inside the process: events/*.json in, API Gateway responses out,
with SageMaker served by moto (queued results) or a botocore Stubber (failures)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from sentiment_api.endpoint import SageMakerEndpoint
from sentiment_api.schemas import ERROR_SCHEMA, compile_schema

from tests.helpers import FakeContext, load_function

validate_error_body = compile_schema(ERROR_SCHEMA)

ANSWERS = {
    "positive": [0.02, 0.08, 0.90],
    "negative": [0.85, 0.10, 0.05],
    "neutral": [0.10, 0.80, 0.10],
}


@pytest.fixture
def moto_endpoint(predict: ModuleType) -> Iterator[Any]:
    """Points the function at moto's sagemaker-runtime; yields queue(label) to script the next answers."""
    original = predict.endpoint
    predict.endpoint = SageMakerEndpoint(boto3.client("sagemaker-runtime", region_name="us-east-1"), "sentiment-test")

    def queue(*labels: str) -> None:
        results = [
            {
                "Body": json.dumps(
                    {
                        "predicted_label": label,
                        "probabilities": ANSWERS[label],
                        "labels": ["negative", "neutral", "positive"],
                        "model_version": "test-model-1",
                    }
                ),
                "ContentType": "application/json",
                "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": "model_version=test-model-1",
            }
            for label in labels
        ]
        requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
            json={"results": results, "region": "us-east-1"},
            timeout=5,
        )

    yield queue
    predict.endpoint = original


@pytest.fixture
def log_lines() -> Iterator[Any]:
    """The function's structured log lines (powertools Logger writes JSON to its own stream)."""
    from sentiment_api.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)


def failing_endpoint(code: str, status: int) -> SageMakerEndpoint:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status)
    stubber.activate()
    return SageMakerEndpoint(client, "sentiment-test")


def call(predict: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = predict.lambda_handler(event, FakeContext())
    headers = {k.lower(): v for k, v in response["headers"].items()}
    return response["statusCode"], headers, json.loads(response["body"])


def assert_error(
    status: int, headers: dict[str, str], body: dict[str, Any], expected: int, code: str, correlation_id: str
) -> None:
    assert status == expected
    validate_error_body(body)
    assert body["error"]["code"] == code
    assert body["error"]["correlation_id"] == correlation_id == headers["x-correlation-id"]
    assert "Traceback" not in body["error"]["message"]


@pytest.mark.parametrize("label", ["positive", "negative", "neutral"])
def test_each_label_event(predict: ModuleType, moto_endpoint: Any, event: Any, label: str) -> None:
    moto_endpoint(label)
    status, headers, body = call(predict, event(f"predict-{label}"))
    assert status == 200
    assert body["sentiment"] == label
    assert body["model_version"] == "test-model-1"
    assert set(body["scores"]) == {"negative", "neutral", "positive"}
    assert headers["content-type"].startswith("application/json")
    assert headers["x-correlation-id"] == f"event-predict-{label}-0001"


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("predict-invalid-json", 400, "INVALID_JSON"),
        ("predict-schema-violation", 400, "VALIDATION_ERROR"),
        ("predict-oversize", 413, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_bad_input_events(predict: ModuleType, event: Any, name: str, status: int, code: str) -> None:
    got, headers, body = call(predict, event(name))
    assert_error(got, headers, body, status, code, f"event-{name}-0001")


def test_schema_message_comes_from_the_validator(predict: ModuleType, event: Any) -> None:
    _, _, body = call(predict, event("predict-schema-violation"))
    assert body["error"]["message"] == "text must be a string."


def test_wrong_content_type_is_415(predict: ModuleType, event: Any) -> None:
    got, headers, body = call(predict, event(headers={"content-type": "text/plain"}))
    assert_error(got, headers, body, 415, "UNSUPPORTED_MEDIA_TYPE", "event-predict-positive-0001")


def test_missing_sub_claim_is_refused(predict: ModuleType, event: Any) -> None:
    e = event()
    del e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    got, headers, body = call(predict, e)
    assert_error(got, headers, body, 401, "UNAUTHENTICATED", "event-predict-positive-0001")


def test_malformed_correlation_id_is_replaced_by_request_id(
    predict: ModuleType, moto_endpoint: Any, event: Any
) -> None:
    moto_endpoint("positive")
    _, headers, _ = call(predict, event(headers={"x-correlation-id": "bad id\nwith newline"}))
    assert headers["x-correlation-id"] == "Jk1YzjT5IAMEbqQ="


def test_unknown_route_gets_the_standard_404(predict: ModuleType, event: Any) -> None:
    e = event(rawPath="/nope", routeKey="GET /nope")
    e["requestContext"]["http"].update(method="GET", path="/nope")
    got, headers, body = call(predict, e)
    assert_error(got, headers, body, 404, "NOT_FOUND", "event-predict-positive-0001")


@pytest.mark.parametrize(
    ("code", "http_status", "status", "error_code", "retry_after"),
    [
        ("ThrottlingException", 400, 503, "MODEL_UNAVAILABLE", "1"),
        ("ModelError", 424, 502, "MODEL_ERROR", None),
        ("ValidationError", 400, 502, "MODEL_ERROR", None),
    ],
)
def test_endpoint_failures(
    predict: ModuleType,
    event: Any,
    monkeypatch: pytest.MonkeyPatch,
    code: str,
    http_status: int,
    status: int,
    error_code: str,
    retry_after: str | None,
) -> None:
    monkeypatch.setattr(predict, "endpoint", failing_endpoint(code, http_status))
    got, headers, body = call(predict, event())
    assert_error(got, headers, body, status, error_code, "event-predict-positive-0001")
    assert headers.get("retry-after") == retry_after


def test_unexpected_bug_is_a_generic_500_without_internals(
    predict: ModuleType, event: Any, log_lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = "internal secret detail"

    class Exploding:
        def classify(self, text: str, correlation_id: str, deadline: Any) -> Any:
            raise KeyError(detail)

    monkeypatch.setattr(predict, "endpoint", Exploding())
    got, headers, body = call(predict, event())
    assert_error(got, headers, body, 500, "INTERNAL_ERROR", "event-predict-positive-0001")
    assert "secret" not in json.dumps(body)
    lines = log_lines()
    error_lines = [line for line in lines if line["level"] == "ERROR"]
    assert error_lines and all(line["correlation_id"] == "event-predict-positive-0001" for line in error_lines)
    # the type and the place are logged; the message is not (it could embed the user's text)
    assert error_lines[0]["error_type"] == "KeyError"
    assert any("raise KeyError(detail)" in frame for frame in error_lines[0]["stack"])
    assert "internal secret detail" not in json.dumps(lines)


def test_an_answer_that_fails_our_schema_is_a_500_with_the_public_message(
    predict: ModuleType, event: Any, log_lines: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validator's text goes to the log with the correlation id, never to the client."""
    from sentiment_core.wire import Prediction

    class Confused:
        def classify(self, text: str, correlation_id: str, deadline: Any) -> Any:
            return Prediction("sarcastic")  # no endpoint parser lets this through: a bug of ours

    monkeypatch.setattr(predict, "endpoint", Confused())
    got, headers, body = call(predict, event())
    assert_error(got, headers, body, 500, "INTERNAL_ERROR", "event-predict-positive-0001")
    assert body["error"]["message"] == "The service failed to process the request."
    (failed,) = [line for line in log_lines() if line["message"] == "request failed"]
    assert "failed its schema" in failed["detail"] and failed["correlation_id"] == "event-predict-positive-0001"


def test_an_over_long_model_version_still_answers_200(
    predict: ModuleType, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Verbose:
        def classify(self, text: str, correlation_id: str, deadline: Any) -> Any:
            from sentiment_api.endpoint import read_answer

            return read_answer(
                json.dumps({"predicted_label": "neutral", "model_version": "m" * 200}).encode(), "application/json"
            )

    monkeypatch.setattr(predict, "endpoint", Verbose())
    got, _, body = call(predict, event())
    assert got == 200 and body == {"sentiment": "neutral", "model_version": "m" * 128}


def test_logs_carry_the_correlation_id_and_never_the_text(
    predict: ModuleType, moto_endpoint: Any, event: Any, log_lines: Any
) -> None:
    moto_endpoint("positive")
    call(predict, event("predict-positive"))
    call(predict, event("predict-schema-violation"))
    call(predict, event("predict-invalid-json"))
    lines = log_lines()
    assert len(lines) >= 2
    assert all(line["correlation_id"].startswith("event-predict-") for line in lines)
    logged = json.dumps(lines)
    assert "missing the closing brace" not in logged
    assert "absolutely love" not in logged


def test_emits_request_error_and_label_metrics(
    predict: ModuleType, moto_endpoint: Any, event: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    moto_endpoint("negative")
    call(predict, event("predict-negative"))
    call(predict, event("predict-oversize"))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Requests", "Latency", "ModelLatency", "4xx", "5xx", "Predictions", "Errors"} <= names
    labels = [blob.get("Label") for blob in blobs if "Label" in blob and "ModelVersion" not in blob]
    by_model = [(blob["ModelVersion"], blob["Label"]) for blob in blobs if "ModelVersion" in blob]
    assert by_model == [("test-model-1", "negative")]
    codes = [blob.get("ErrorCode") for blob in blobs if "ErrorCode" in blob]
    assert labels == ["negative"]
    assert codes == ["PAYLOAD_TOO_LARGE"]
    assert all(blob.get("Stage") == "test" for blob in blobs)


# ---- per-user rate limiting through the handler ---------------------------------------------------
def test_ratelimit_headers_on_success_and_on_errors(predict: ModuleType, moto_endpoint: Any, event: Any) -> None:
    moto_endpoint("positive")
    for name in ("predict-positive", "predict-invalid-json"):
        e = event(name)
        e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = f"headers-user-{name}"
        _, headers, _ = call(predict, e)
        assert headers["ratelimit-policy"] == '"per-user";q=200;w=120;qu="request"'
        assert headers["ratelimit"] == '"per-user";r=199;t=1'


def test_over_the_limit_is_429_and_other_users_are_unaffected(aws: None, event: Any) -> None:
    small = load_function("predict", {"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "2"})
    e = event("predict-invalid-json")  # cheap requests: no model call, still limited
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "greedy"
    statuses = [call(small, e)[0] for _ in range(3)]
    assert statuses == [400, 400, 429]
    status, headers, body = call(small, e)
    assert_error(status, headers, body, 429, "RATE_LIMITED", "event-predict-invalid-json-0001")
    assert headers["ratelimit"] == f'"per-user";r=0;t={headers["retry-after"]}'  # agrees with Retry-After
    assert int(headers["retry-after"]) >= 1
    assert "at most 1 per minute, bursts up to 2" in body["error"]["message"]
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "someone-else"
    assert call(small, e)[0] == 400


def throttled_limiter(module: ModuleType, code: str, status: int) -> Stubber:
    stubber = Stubber(module.limiter._client)
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=status)
    return stubber


@pytest.mark.parametrize(("mode", "expected"), [("open", 400), ("closed", 503)])
def test_a_transient_store_failure_follows_the_fail_mode(
    aws: None, event: Any, mode: str, expected: int, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_function("predict", {"RATE_LIMIT_FAIL_MODE": mode})
    with throttled_limiter(module, "ProvisionedThroughputExceededException", 400):
        status, headers, body = call(module, event("predict-invalid-json"))
    assert status == expected  # open: served (here: the body's own 400); closed: 503
    if mode == "closed":
        assert body["error"]["code"] == "RATE_LIMITER_UNAVAILABLE" and headers["retry-after"] == "1"
    assert '"RateLimiterErrors"' in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["open", "closed"])
@pytest.mark.parametrize(
    ("code", "status"), [("ValidationException", 400), ("ResourceNotFoundException", 400), ("AccessDenied", 403)]
)
def test_any_other_store_failure_fails_closed_in_both_modes(
    aws: None, event: Any, mode: str, code: str, status: int
) -> None:
    module = load_function("predict", {"RATE_LIMIT_FAIL_MODE": mode})
    with throttled_limiter(module, code, status):
        answer, _, body = call(module, event("predict-invalid-json"))
    assert answer == 503 and body["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"
    assert code not in body["error"]["message"]


def test_a_missing_table_fails_closed_even_when_configured_open(aws: None, event: Any) -> None:
    module = load_function("predict", {"RATE_LIMIT_FAIL_MODE": "open", "RATE_LIMIT_TABLE_NAME": "no-such-table"})
    status, _, body = call(module, event("predict-invalid-json"))
    assert status == 503 and body["error"]["code"] == "RATE_LIMITER_UNAVAILABLE"


def test_a_3000_byte_subject_is_limited_like_any_other_caller(aws: None, event: Any) -> None:
    small = load_function("predict", {"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "2"})
    e = event("predict-invalid-json")
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "s" * 3000
    assert [call(small, e)[0] for _ in range(3)] == [400, 400, 429]
