"""The redaction rule, in behaviour: the user's text never reaches logs or metrics.

Rule (docs/security.md): the functions never log the request body, the `text`, the event or any value
derived from them; log lines at INFO and above carry only ids (correlation id, request id), codes, statuses
and latencies; EMF metrics carry only names, counts, latencies and low-cardinality dimensions (stage, error
code, label). Powertools' event logging (POWERTOOLS_LOGGER_LOG_EVENT / log_event=True) and debug mode
(POWERTOOLS_DEV) stay off; tests/template/test_template_security.py checks the template side.

Every path of the handler runs here with a sentinel in the text: success, each 4xx, each 5xx and an
unexpected exception. Everything the function writes is captured: the powertools logger's stream, stdout and
stderr (EMF metrics, prints) and standard logging (botocore and friends, at the INFO level Lambda uses).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from sentiment_api.endpoint import SageMakerEndpoint
from sentiment_core.wire import Prediction as EndpointAnswer

from tests.helpers import FakeContext, load_function

SENTINEL = "SENTINEL-c0ffee-users-own-words"
TEXT = f"{SENTINEL} the parcel arrived late and the box was crushed"


class Captured:
    """Everything written while the handler ran."""

    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
        # Imported here: the layer reads its configuration (metric namespace) when the function loads it.
        from sentiment_api.observability import logger

        self._capsys, self._caplog = capsys, caplog
        self._stream = io.StringIO()
        # Swapped, not setStream(): that flushes the old stream, which may be a capture already closed.
        self._handler = logger.registered_handler
        self._previous, self._handler.stream = self._handler.stream, self._stream

    def close(self) -> None:
        self._handler.stream = self._previous

    def text(self) -> str:
        out, err = self._capsys.readouterr()
        records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in self._caplog.records)
        return "\n".join([self._stream.getvalue(), out, err, records])


@pytest.fixture
def captured(
    predict: ModuleType, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[Captured]:
    caplog.set_level(logging.INFO)  # the Lambda runtime's default application log level
    capture = Captured(capsys, caplog)
    yield capture
    capture.close()


def event_with(
    event: Any,
    body: str | None,
    *,
    sub: str = "redaction-user",
    content_type: str = "application/json",
    base64_encoded: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    e = event("predict-positive", **changes)
    e["headers"]["content-type"] = content_type
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    e["body"], e["isBase64Encoded"] = body, base64_encoded
    return e


def run(module: ModuleType, e: dict[str, Any]) -> dict[str, Any]:
    return module.lambda_handler(e, FakeContext())


class StubbedEndpoint:
    """Swaps the function's endpoint for one test."""

    def __init__(self, module: ModuleType, endpoint: Any) -> None:
        self.module, self.endpoint = module, endpoint

    def __enter__(self) -> None:
        self.original, self.module.endpoint = self.module.endpoint, self.endpoint

    def __exit__(self, *exc: object) -> None:
        self.module.endpoint = self.original


def failing(code: str, status: int) -> SageMakerEndpoint:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status)
    stubber.activate()
    return SageMakerEndpoint(client, "sentiment-test")


class TimingOut:
    def invoke_endpoint(self, **_: Any) -> Any:
        raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com")


class Exploding:
    def classify(self, text: str, correlation_id: str, deadline: object) -> EndpointAnswer:
        raise RuntimeError("a bug far from the request")


def queue_answer(label: str = "negative") -> None:
    result = {
        "Body": json.dumps({"predicted_label": label}),
        "ContentType": "application/json",
        "InvokedProductionVariant": "AllTraffic",
    }
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": [result], "region": "us-east-1"},
        timeout=5,
    )


def moto_endpoint() -> SageMakerEndpoint:
    return SageMakerEndpoint(boto3.client("sagemaker-runtime", region_name="us-east-1"), "sentiment-test")


Case = Callable[[ModuleType, Any], dict[str, Any]]


def success(module: ModuleType, event: Any) -> dict[str, Any]:
    queue_answer()
    with StubbedEndpoint(module, moto_endpoint()):
        return run(module, event_with(event, json.dumps({"text": TEXT})))


def with_endpoint(endpoint: Callable[[], Any]) -> Case:
    def case(module: ModuleType, event: Any) -> dict[str, Any]:
        with StubbedEndpoint(module, endpoint()):
            return run(module, event_with(event, json.dumps({"text": TEXT})))

    return case


def rate_limited(module: ModuleType, event: Any) -> dict[str, Any]:
    small = load_function("predict", {"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "1"})
    e = event_with(event, json.dumps({"text": TEXT, "x": 1}), sub="redaction-greedy")
    run(small, e)
    return run(small, e)


def limiter_down(module: ModuleType, event: Any) -> dict[str, Any]:
    closed = load_function("predict", {"RATE_LIMIT_FAIL_MODE": "closed", "RATE_LIMIT_TABLE_NAME": "no-such-table"})
    return run(closed, event_with(event, json.dumps({"text": TEXT})))


def no_sub(module: ModuleType, event: Any) -> dict[str, Any]:
    e = event_with(event, json.dumps({"text": TEXT}))
    del e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    return run(module, e)


def unknown_route(module: ModuleType, event: Any) -> dict[str, Any]:
    e = event_with(event, json.dumps({"text": TEXT}), rawPath="/nope", routeKey="POST /nope")
    e["requestContext"]["http"]["path"] = "/nope"
    return run(module, e)


CASES: dict[str, tuple[Case, int]] = {
    "200-success": (success, 200),
    "400-invalid-json": (lambda m, ev: run(m, event_with(ev, f'{{"text": "{TEXT}')), 400),
    "400-validation-wrong-type": (lambda m, ev: run(m, event_with(ev, json.dumps({"text": [TEXT]}))), 400),
    "400-validation-unknown-property-named-by-the-user": (
        lambda m, ev: run(m, event_with(ev, json.dumps({"text": TEXT, SENTINEL: TEXT}))),
        400,
    ),
    "400-invalid-encoding": (
        lambda m, ev: run(
            m,
            event_with(
                ev,
                base64.b64encode(TEXT.encode() + b"\xff\xfe").decode(),
                content_type="application/octet-stream+json",
                base64_encoded=True,
            ),
        ),
        400,
    ),
    "400-unpaired-surrogate": (lambda m, ev: run(m, event_with(ev, f'{{"text": "{TEXT} \\ud800"}}')), 400),
    "401-no-sub": (no_sub, 401),
    "404-unknown-route": (unknown_route, 404),
    "413-too-large": (lambda m, ev: run(m, event_with(ev, json.dumps({"text": TEXT * 40}))), 413),
    "415-wrong-content-type": (lambda m, ev: run(m, event_with(ev, TEXT, content_type="text/plain")), 415),
    "429-rate-limited": (rate_limited, 429),
    "500-unexpected-exception": (with_endpoint(Exploding), 500),
    "502-model-error": (with_endpoint(lambda: failing("ModelError", 424)), 502),
    "503-model-throttled": (with_endpoint(lambda: failing("ThrottlingException", 400)), 503),
    "503-rate-limiter-down": (limiter_down, 503),
    "504-model-timeout": (with_endpoint(lambda: SageMakerEndpoint(TimingOut(), "sentiment-test")), 504),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_text_never_reaches_logs_or_metrics(name: str, predict: ModuleType, event: Any, captured: Captured) -> None:
    case, status = CASES[name]

    response = case(predict, event)
    output = captured.text()

    assert response["statusCode"] == status, response
    assert '"request handled"' in output, "the function's log lines were captured"
    assert '"Requests"' in output, "the EMF metrics were captured"
    assert SENTINEL not in output
    assert "parcel arrived late" not in output


def test_info_lines_carry_only_ids_codes_statuses_and_latencies(
    predict: ModuleType, event: Any, captured: Captured
) -> None:
    for case, _ in CASES.values():
        case(predict, event)
    lines = [json.loads(line) for line in captured.text().splitlines() if line.startswith('{"level"')]
    assert lines
    allowed = {
        # powertools' own keys
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "xray_trace_id",
        # ours: codes, statuses, latencies, the limiter's fail mode
        "error_code",
        "status",
        "latency_ms",
        "fail_open",
        "transient",
        "reason",
        # an unexpected error: its type and stack (code lines; no message, no locals, no event)
        "error_type",
        "stack",
    }
    for line in lines:
        assert set(line) <= allowed, set(line) - allowed
        if line["level"] == "INFO":
            assert line["message"] in {"request handled", "request rejected"}, line


@pytest.mark.filterwarnings("ignore:POWERTOOLS_DEV")
def test_the_capture_would_see_the_text_if_a_forbidden_setting_were_on(
    aws: None, event: Any, captured: Captured
) -> None:
    """Guards the test above: with POWERTOOLS_DEV=true the event handler prints whole events, and the capture
    sees the sentinel. This is why the template test forbids that variable."""
    debug = load_function("predict", {"POWERTOOLS_DEV": "true"})
    run(debug, event_with(event, json.dumps({"text": TEXT}), sub="redaction-debug", content_type="text/plain"))
    assert SENTINEL in captured.text()


def test_the_function_code_turns_no_event_logging_on() -> None:
    from tests.helpers import ROOT

    for app in (ROOT / "functions").glob("*/app.py"):
        source = app.read_text("utf-8")
        assert "log_event=True" not in source, app
        assert "debug=True" not in source, app
        assert "capture_response=True" not in source, app


class ExplodingWithTheText:
    def classify(self, text: str, correlation_id: str, deadline: object) -> EndpointAnswer:
        raise ValueError(f"cannot classify {text!r}")


def test_an_exception_that_embeds_the_text_is_not_logged(predict: ModuleType, event: Any, captured: Captured) -> None:
    """The unexpected-error path logs the exception's type and stack (code lines), never its message, which
    may embed the text (sentiment_api.http)."""
    with StubbedEndpoint(predict, ExplodingWithTheText()):
        response = run(predict, event_with(event, json.dumps({"text": TEXT})))
    assert response["statusCode"] == 500
    output = captured.text()
    assert "ValueError" in output, "the error itself is still logged"
    assert SENTINEL not in output
