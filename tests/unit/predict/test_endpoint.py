"""The endpoint client: wire format, both answer formats, and botocore failures -> domain errors."""

import csv
import io
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.stub import Stubber
from sentiment_api.deadline import ANSWER_RESERVE_S, Deadline
from sentiment_api.endpoint import RETRY_BACKOFF_S, SageMakerEndpoint
from sentiment_api.endpoint import read_answer as parse_answer
from sentiment_api.errors import ModelError, ModelTimeout, ModelUnavailable
from sentiment_core.wire import encode_texts

#: A deadline far away, for the tests that are not about time.
ROOMY = Deadline(expires_at=float("inf"))


def encode_request(text: str) -> bytes:
    return encode_texts([text])


REGION = "us-east-1"


@pytest.mark.parametrize("text", ["plain", 'quote " and, comma', "new\nline", "émoji 😀", "", "\x00\x07ctrl"])
def test_request_is_one_csv_record_that_round_trips(text: str) -> None:
    rows = list(csv.reader(io.StringIO(encode_request(text).decode("utf-8"))))
    assert rows == [[text]]


def test_parses_local_server_json() -> None:
    body = {
        "predicted_label": "positive",
        "probability": 0.9,
        "probabilities": [0.05, 0.05, 0.9],
        "labels": ["negative", "neutral", "positive"],
        "model_version": "tfidf-lr-abc",
    }
    answer = parse_answer(json.dumps(body).encode(), "application/json")
    assert answer.label == "positive"
    assert answer.scores == {"negative": 0.05, "neutral": 0.05, "positive": 0.9}
    assert answer.model_version == "tfidf-lr-abc"


def test_parses_predictions_wrapper_and_reorders_scores() -> None:
    body = {
        "predictions": [
            {
                "predicted_label": "Negative",
                "probabilities": [0.7, 0.2, 0.1],
                "labels": ["negative", "positive", "neutral"],
            }
        ]
    }
    answer = parse_answer(json.dumps(body).encode(), "application/json; charset=utf-8")
    assert answer.label == "negative"
    assert answer.scores == {"negative": 0.7, "neutral": 0.1, "positive": 0.2}
    assert answer.model_version is None


def test_parses_autopilot_csv_row() -> None:
    row = b"neutral,0.61,\"[0.2, 0.61, 0.19]\",\"['negative', 'neutral', 'positive']\"\n"
    answer = parse_answer(row, "text/csv", custom_attributes="model_version=v7")
    assert answer.label == "neutral"
    assert answer.scores == {"negative": 0.2, "neutral": 0.61, "positive": 0.19}
    assert answer.model_version == "v7"


def test_label_only_answer_has_no_scores() -> None:
    assert parse_answer(b"positive\n", "text/csv").scores is None
    assert parse_answer(b'{"predicted_label": "positive"}', "application/json").scores is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"not json", "application/json"),
        (b'{"predicted_label": "angry"}', "application/json"),
        (b'{"predicted_label": 1}', "application/json"),
        (b'{"predictions": []}', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"", "text/csv"),
        (b"positive\nnegative\n", "text/csv"),
    ],
)
def test_unusable_answers_are_model_errors(body: bytes, content_type: str) -> None:
    with pytest.raises(ModelError):
        parse_answer(body, content_type)


def test_malformed_scores_are_dropped_not_trusted() -> None:
    labels = ["negative", "neutral", "positive"]
    body = {"predicted_label": "positive", "probabilities": [2.0, -1, 0.1], "labels": labels}
    assert parse_answer(json.dumps(body).encode(), "application/json").scores is None


# ---- botocore failures, through Stubber ---------------------------------------------------------
def stubbed(code: str, status: int) -> SageMakerEndpoint:
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=status)
    stubber.activate()
    return SageMakerEndpoint(client, "sentiment-test")


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [("ThrottlingException", 400, "1"), ("ServiceUnavailable", 503, "2"), ("ModelNotReadyException", 429, "5")],
)
def test_throttling_and_unavailable_are_503_with_retry_after(code: str, status: int, retry_after: str) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        stubbed(code, status).classify("hi", "cid-12345678", ROOMY)
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": retry_after}


@pytest.mark.parametrize(
    ("code", "status"),
    [("ModelError", 424), ("InternalFailure", 500), ("ValidationError", 400), ("InternalDependencyException", 530)],
)
def test_model_and_endpoint_errors_are_502(code: str, status: int) -> None:
    with pytest.raises(ModelError) as caught:
        stubbed(code, status).classify("hi", "cid-12345678", ROOMY)
    assert caught.value.status == 502


class RaisingClient:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def invoke_endpoint(self, **_: Any) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "error", "status"),
    [
        (ReadTimeoutError(endpoint_url="http://x"), ModelTimeout, 504),
        (EndpointConnectionError(endpoint_url="http://x"), ModelUnavailable, 503),
        (ConnectionClosedError(endpoint_url="http://x"), ModelError, 502),
    ],
)
def test_transport_failures(exc: Exception, error: type, status: int) -> None:
    with pytest.raises(error) as caught:
        SageMakerEndpoint(RaisingClient(exc), "ep").classify("hi", "cid-12345678", ROOMY)
    assert caught.value.status == status


def test_request_parameters_sent_to_sagemaker() -> None:
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_response(
        "invoke_endpoint",
        {"Body": io.BytesIO(b'{"predicted_label": "neutral"}'), "ContentType": "application/json"},
        {
            "EndpointName": "sentiment-test",
            "ContentType": "text/csv",
            "Accept": "application/json",
            "Body": b'"hello, world"\n',
            "CustomAttributes": "correlation_id=cid-12345678",
        },
    )
    with stubber:
        answer = SageMakerEndpoint(client, "sentiment-test").classify("hello, world", "cid-12345678", ROOMY)
    assert answer.label == "neutral"


# ---- a real socket that never answers: the read timeout and bounded retries ------------------------
@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)  # read nothing, answer nothing
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_read_timeout_is_504_after_one_attempt(
    silent_server: tuple[str, list[socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client exactly as the function builds it (from_settings), pointed at a socket that never answers."""
    from sentiment_api.endpoint import EndpointSettings

    url, accepted = silent_server
    for name, value in {
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(name, value)
    endpoint = SageMakerEndpoint.from_settings(EndpointSettings("ep", 0.2, 0.2, 2))
    with pytest.raises(ModelTimeout):
        endpoint.classify("hi", "cid-12345678", ROOMY)
    assert len(accepted) == 1  # a read timeout is never retried, whatever the attempts and the time left


def test_answer_shapes_shared_with_the_governance_reader() -> None:
    """One wire format (sentiment_core.wire): a one-element JSON list and a JSON-lines answer holding the
    predictions wrapper are read; more or fewer predictions than texts are a ModelError."""
    assert parse_answer(b'[{"predicted_label": "positive"}]', "application/json").label == "positive"
    wrapped = b'{"predictions": [{"predicted_label": "neutral"}]}\n'
    assert parse_answer(wrapped, "application/jsonlines").label == "neutral"
    with pytest.raises(ModelError):
        parse_answer(b'[{"predicted_label": "positive"}, {"predicted_label": "neutral"}]', "application/json")


def test_a_csv_field_over_the_csv_module_limit_is_a_model_error() -> None:
    with pytest.raises(ModelError):
        parse_answer(b'positive,"' + b"x" * 200_000 + b'"\n', "text/csv")


# ---- no 500 from a misbehaving endpoint (issue 11, first part) -----------------------------------------
def test_an_over_long_model_version_in_the_answer_is_cut_not_a_failure() -> None:
    body = json.dumps({"predicted_label": "positive", "model_version": "v" * 200}).encode()
    answer = parse_answer(body, "application/json")
    assert answer.label == "positive" and answer.model_version == "v" * 128


def test_an_answer_nested_too_deeply_is_a_model_error() -> None:
    with pytest.raises(ModelError):
        parse_answer(b"[" * 100_000 + b"]" * 100_000, "application/json")


@pytest.mark.parametrize("field", ["[" * 5_000 + "]" * 5_000, "[1e999999, 0, 0]", "[1, 2] + [3]", "[{1: 2}]"])
def test_scores_that_literal_eval_cannot_read_are_dropped_not_a_failure(field: str) -> None:
    row = f"positive,0.9,\"{field}\",\"['negative', 'neutral', 'positive']\"\n".encode()
    answer = parse_answer(row, "text/csv")
    assert answer.label == "positive" and answer.scores is None


def test_a_stream_that_breaks_while_reading_the_answer_is_a_model_error() -> None:
    from botocore.exceptions import ResponseStreamingError

    class BrokenBody:
        def read(self) -> bytes:
            raise ResponseStreamingError(error="connection reset mid-body")

    class Client:
        def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
            return {"Body": BrokenBody(), "ContentType": "application/json"}

    with pytest.raises(ModelError):
        SageMakerEndpoint(Client(), "ep").classify("text", "corr-12345678", ROOMY)


# ---- retries inside the deadline, on a simulated clock -------------------------------------------------
class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedClient:
    """Answers each call with the next scripted outcome (an exception, or a label), after ``takes_s``."""

    def __init__(self, clock: SimulatedClock, *outcomes: Exception | str, takes_s: float = 0.0) -> None:
        self.clock, self.outcomes, self.takes_s, self.calls = clock, list(outcomes), takes_s, 0

    def invoke_endpoint(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        self.clock.now += self.takes_s
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return {
            "Body": io.BytesIO(json.dumps({"predicted_label": outcome}).encode()),
            "ContentType": "application/json",
        }


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint")


def endpoint_for(client: ScriptedClient, clock: SimulatedClock) -> SageMakerEndpoint:
    return SageMakerEndpoint(client, "ep", max_attempts=2, attempt_s=0.75, sleep=clock.sleep)


@pytest.mark.parametrize(
    "first",
    [ConnectTimeoutError(endpoint_url="http://x"), EndpointConnectionError(endpoint_url="http://x"), throttled()],
    ids=["connect-timeout", "no-connection", "throttled"],
)
def test_a_failure_before_the_model_is_retried_once_when_the_deadline_allows(first: Exception) -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, first, "positive", takes_s=0.1)
    answer = endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(1.5, clock))
    assert answer.label == "positive" and client.calls == 2 and clock.sleeps == [RETRY_BACKOFF_S]


def test_no_retry_that_could_not_finish_before_the_deadline() -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, throttled(), "positive", takes_s=0.71)  # 0.79 s left < 0.05 + 0.75
    with pytest.raises(ModelUnavailable):
        endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(1.5, clock))
    assert client.calls == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        ReadTimeoutError(endpoint_url="http://x"),
        ClientError({"Error": {"Code": "ModelError", "Message": "boom"}}, "InvokeEndpoint"),
        ClientError({"Error": {"Code": "ModelNotReadyException", "Message": "wait"}}, "InvokeEndpoint"),
        ConnectionClosedError(endpoint_url="http://x"),
    ],
    ids=["read-timeout", "model-error", "model-not-ready", "connection-closed"],
)
def test_failures_at_or_after_the_model_are_never_retried(failure: Exception) -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, failure, "positive")
    with pytest.raises((ModelTimeout, ModelError, ModelUnavailable)):
        endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(100.0, clock))
    assert client.calls == 1


def test_attempts_are_bounded_even_with_time_to_spare() -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, throttled(), throttled(), throttled())
    with pytest.raises(ModelUnavailable):
        endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(100.0, clock))
    assert client.calls == 2


def test_the_deadline_is_the_budget_or_what_the_invocation_has_left() -> None:
    class Context:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    clock = SimulatedClock()
    assert Deadline.for_invocation(1.5, Context(3000), clock).remaining_s() == 1.5
    assert Deadline.for_invocation(1.5, Context(1000), clock).remaining_s() == pytest.approx(1.0 - ANSWER_RESERVE_S)
    assert Deadline.for_invocation(1.5, Context(100), clock).remaining_s() == 0.0
    assert Deadline.for_invocation(1.5, None, clock).remaining_s() == 1.5


def test_from_settings_makes_one_botocore_attempt_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from sentiment_api.endpoint import EndpointSettings

    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    endpoint = SageMakerEndpoint.from_settings(EndpointSettings("ep", 0.25, 0.5, 2))
    assert endpoint._client.meta.config.retries["total_max_attempts"] == 1
    assert (endpoint._max_attempts, endpoint._attempt_s) == (2, 0.75)


def test_no_attempt_starts_when_not_even_one_fits_the_deadline() -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, "positive")
    with pytest.raises(ModelTimeout):
        endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(0.5, clock))  # < one 0.75 s attempt
    assert client.calls == 0


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (SSLError(endpoint_url="https://x", error="handshake"), ModelUnavailable),
        (ProxyConnectionError(proxy_url="http://proxy", error="refused"), ModelUnavailable),
        (HTTPClientError(error="something in urllib3"), ModelError),
    ],
    ids=["tls", "proxy", "http-client"],
)
def test_every_transport_failure_is_a_documented_5xx(failure: Exception, error: type) -> None:
    clock = SimulatedClock()
    client = ScriptedClient(clock, failure, failure)
    with pytest.raises(error):
        endpoint_for(client, clock).classify("hi", "cid-12345678", Deadline(100.0, clock))
