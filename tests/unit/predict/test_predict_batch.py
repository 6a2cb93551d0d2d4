"""POST /predict/batch: request-level problems are the usual 4xx, item-level ones go to `errors` while the
other items are scored in one endpoint call; the handler end to end with SageMaker stubbed at botocore
(both answer formats: the local model server's JSON and the Autopilot container's CSV rows)."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from prediction.request import BatchRequest, ItemError, parse_batch_request
from prediction.usecase import predict_batch
from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SageMakerEndpoint
from sentiment_api.errors import InvalidJson, ModelError, PayloadTooLarge, ValidationFailed
from sentiment_api.schemas import ERROR_SCHEMA, compile_schema
from sentiment_core import wire
from sentiment_core.contract import MAX_BATCH_BODY_BYTES, MAX_BATCH_TEXTS, MAX_TEXT_CHARS
from sentiment_core.wire import Prediction

from tests.helpers import FakeContext

validate_error_body = compile_schema(ERROR_SCHEMA)
SCORES = {"negative": 0.1, "neutral": 0.2, "positive": 0.7}


def body(texts: Any, **extra: Any) -> str:
    return json.dumps({"texts": texts, **extra})


class RecordingEndpoint:
    """The SentimentEndpoint interface: label from the text, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
        return self.classify_batch([text], correlation_id, deadline)[0]

    def classify_batch(self, texts: Any, correlation_id: str, deadline: Deadline) -> list[Prediction]:
        self.calls.append(list(texts))
        return [Prediction("negative" if "bad" in t else "positive", dict(SCORES), "m-1") for t in texts]


def run(request_body: str, endpoint: Any = None) -> dict[str, Any]:
    return predict_batch(request_body, False, "application/json", "cid-12345678", endpoint or RecordingEndpoint(),
                         Deadline.for_invocation(2.5))  # fmt: skip


# ---- request level ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        (body([]), ValidationFailed, "texts must have at least 1 items."),
        (body(["a"] * (MAX_BATCH_TEXTS + 1)), ValidationFailed, "texts must have at most 25 items."),
        (body("just one"), ValidationFailed, "texts must be an array."),
        (json.dumps({"text": "x"}), ValidationFailed, "body must have the properties texts."),
        (body(["a"], extra=1), ValidationFailed, "body has a property that is not allowed (allowed: texts)."),
        (json.dumps(["a"]), ValidationFailed, "body must be a JSON object."),
        ("{not json", InvalidJson, "The body is not valid JSON"),
        (body(["ok"]).replace('"ok"', "1" * 4301), InvalidJson, "a number with too many digits"),
        (json.dumps({"texts": ["ok"], "n": 0}).replace("0}", "9" * 5000 + "}"), InvalidJson, "too many digits"),
        ("", InvalidJson, 'send a JSON object such as {"texts": ["..."]}'),
    ],
)
def test_request_level_problems_are_refused_whole(request_body: str, error: type, message: str):
    endpoint = RecordingEndpoint()

    with pytest.raises(error) as raised:
        run(request_body, endpoint)

    assert message in raised.value.message
    assert endpoint.calls == []


def test_the_body_limit_is_32768_bytes_after_decoding():
    document = json.dumps({"texts": ["é" * 500] * 25}, ensure_ascii=False)  # 2 UTF-8 bytes per character
    at_limit = document + " " * (MAX_BATCH_BODY_BYTES - len(document.encode()))
    assert len(at_limit.encode()) == MAX_BATCH_BODY_BYTES

    assert len(run(at_limit)["results"]) == 25
    with pytest.raises(PayloadTooLarge, match="32769 bytes; the limit is 32768"):
        run(at_limit + " ")


# ---- item level -------------------------------------------------------------------------------------
def test_item_problems_get_their_own_entry_and_the_others_are_scored():
    texts: list[Any] = ["good", 42, "", "x" * (MAX_TEXT_CHARS + 1), "bad", "\ud800 lone", " \t\n", None, "fine"]
    endpoint = RecordingEndpoint()

    answer = run(json.dumps({"texts": texts}), endpoint)

    assert endpoint.calls == [["good", "bad", "fine"]]  # one call, only the items that can be scored
    assert [r["index"] for r in answer["results"]] == [0, 4, 8]
    assert [r["sentiment"] for r in answer["results"]] == ["positive", "negative", "positive"]
    empty = "is empty or only whitespace: there is nothing to classify."
    assert answer["errors"] == [
        {"index": 1, "code": "VALIDATION_ERROR", "message": "texts[1] must be a string."},
        {"index": 2, "code": "EMPTY_TEXT", "message": f"texts[2] {empty}"},
        {"index": 3, "code": "VALIDATION_ERROR", "message": "texts[3] must be at most 1024 characters long."},
        {"index": 5, "code": "INVALID_ENCODING", "message": "texts[5] contains an unpaired UTF-16 surrogate escape "
                                                            "(e.g. \\ud800)."},
        {"index": 6, "code": "EMPTY_TEXT", "message": f"texts[6] {empty}"},
        {"index": 7, "code": "VALIDATION_ERROR", "message": "texts[7] must be a string."},
    ]  # fmt: skip
    indexes = sorted([r["index"] for r in answer["results"]] + [e["index"] for e in answer["errors"]])
    assert indexes == list(range(len(texts)))  # every index exactly once
    assert answer["model_version"] == "m-1"


def test_a_batch_with_no_valid_item_calls_nothing():
    endpoint = RecordingEndpoint()

    answer = run(body(["", 1]), endpoint)

    assert endpoint.calls == [] and answer["results"] == [] and len(answer["errors"]) == 2
    assert "model_version" not in answer


def test_item_messages_never_quote_the_item():
    secret = "my-password-1234 " * 70  # over 1024 characters

    answer = run(body([secret]))

    assert "my-password" not in json.dumps(answer)


def test_parse_returns_texts_by_index():
    assert parse_batch_request(body(["a", "", "b"]), False, None) == BatchRequest(
        size=3,
        texts={0: "a", 2: "b"},
        errors=[ItemError(1, "EMPTY_TEXT", "texts[1] is empty or only whitespace: there is nothing to classify.")],
    )


def test_the_batch_item_rule_is_the_predict_text_rule():
    from prediction.request import SCHEMAS

    single = json.loads((SCHEMAS / "predict_request.json").read_text())["properties"]["text"]
    batch = json.loads((SCHEMAS / "predict_batch_request.json").read_text())
    item = batch["definitions"]["text"]

    assert {k: v for k, v in item.items() if k != "description"} == {
        k: v for k, v in single.items() if k != "description"
    }
    assert batch["properties"]["texts"]["maxItems"] == MAX_BATCH_TEXTS


# ---- the endpoint call (botocore stubbed) -------------------------------------------------------------
def stubbed(payload: bytes, content_type: str, attributes: str = "") -> tuple[SageMakerEndpoint, Stubber]:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    response: dict[str, Any] = {"Body": StreamingBody(_Raw(payload), len(payload)), "ContentType": content_type}
    if attributes:
        response["CustomAttributes"] = attributes
    stubber.add_response("invoke_endpoint", response, {
        "EndpointName": "sentiment-test", "ContentType": "text/csv", "Accept": "application/json", "Body": ANY,
        "CustomAttributes": ANY,
    })  # fmt: skip
    stubber.activate()
    return SageMakerEndpoint(client, "sentiment-test"), stubber


class _Raw:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def read(self, *_: Any) -> bytes:
        payload, self._payload = self._payload, b""
        return payload


def test_the_local_model_servers_answer_to_several_rows_is_read():
    answers = [
        wire.answer_object(p, ["negative", "neutral", "positive"], "minilm-x")
        for p in ([0.9, 0.05, 0.05], [0.1, 0.1, 0.8])
    ]
    endpoint, stubber = stubbed(json.dumps({"predictions": answers}).encode(), "application/json")

    answer = run(body(["awful", "great"]), endpoint)

    assert [r["sentiment"] for r in answer["results"]] == ["negative", "positive"]
    assert answer["results"][1]["scores"] == {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
    assert answer["model_version"] == "minilm-x"
    stubber.assert_no_pending_responses()


def test_the_autopilot_csv_answer_to_several_rows_is_read():
    rows = (
        "positive,0.8,\"[0.1, 0.1, 0.8]\",\"['negative', 'neutral', 'positive']\"\n"
        "negative,0.7,\"[0.7, 0.2, 0.1]\",\"['negative', 'neutral', 'positive']\"\n"
    )
    endpoint, _ = stubbed(rows.encode(), "text/csv", "model_version=autopilot-7")

    answer = run(body(["great", "awful"]), endpoint)

    assert [r["sentiment"] for r in answer["results"]] == ["positive", "negative"]
    assert answer["model_version"] == "autopilot-7"


def test_the_sent_body_holds_one_csv_record_per_valid_text(monkeypatch: pytest.MonkeyPatch):
    answers = [wire.answer_object([0.1, 0.1, 0.8], ["negative", "neutral", "positive"], "v")] * 2
    endpoint, _ = stubbed(json.dumps({"predictions": answers}).encode(), "application/json")
    sent: list[bytes] = []
    encode = wire.encode_texts
    monkeypatch.setattr(wire, "encode_texts", lambda texts: sent.append(encode(texts)) or sent[-1])

    run(body(['a, "quoted"', "", "line\nbreak"]), endpoint)

    assert [wire.decode_texts(b) for b in sent] == [['a, "quoted"', "line\nbreak"]]


@pytest.mark.parametrize("rows", [1, 3])
def test_an_answer_with_another_number_of_rows_is_a_model_error(rows: int):
    answers = [wire.answer_object([0.1, 0.1, 0.8], ["negative", "neutral", "positive"], "v")] * rows
    endpoint, _ = stubbed(json.dumps({"predictions": answers}).encode(), "application/json")

    with pytest.raises(ModelError):
        run(body(["a", "b"]), endpoint)


# ---- the handler ------------------------------------------------------------------------------------
def test_the_handler_answers_a_batch_event(predict: ModuleType, event: Any, lambda_context: FakeContext):
    original = predict.endpoint
    answers = [wire.answer_object(p, ["negative", "neutral", "positive"], "minilm-x")
               for p in ([0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1])]  # fmt: skip
    predict.endpoint, stubber = stubbed(json.dumps({"predictions": answers}).encode(), "application/json")
    try:
        response = predict.lambda_handler(event("predict-batch"), lambda_context)
    finally:
        predict.endpoint = original

    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    assert [r["sentiment"] for r in answer["results"]] == ["positive", "neutral", "negative"]
    assert answer["errors"] == []
    assert response["headers"]["x-correlation-id"] == "batch-example-0001"
    assert "RateLimit" in response["headers"]
    stubber.assert_no_pending_responses()


def test_the_handler_answers_a_bad_batch_with_the_error_shape(
    predict: ModuleType, event: Any, lambda_context: FakeContext
):
    response = predict.lambda_handler(event("predict-batch", body=body(["a"] * 26)), lambda_context)

    assert response["statusCode"] == 400
    error = json.loads(response["body"])
    validate_error_body(error)
    assert error["error"]["code"] == "VALIDATION_ERROR"


def test_a_batch_publishes_its_size_labels_and_item_errors_once_per_value(capsys: pytest.CaptureFixture[str]):
    from sentiment_api.observability import metrics

    run(body(["good", "bad", "fine", "", 3, "bad again"]))
    metrics.flush_metrics()

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    counted = {
        (name, blob.get("Label") or blob.get("ErrorCode")): sum(blob[name])
        for blob in blobs
        for name in ("Predictions", "BatchItemErrors")
        if name in blob
    }
    assert counted == {
        ("Predictions", "positive"): 2,
        ("Predictions", "negative"): 2,
        ("BatchItemErrors", "EMPTY_TEXT"): 1,
        ("BatchItemErrors", "VALIDATION_ERROR"): 1,
    }
    assert [blob["BatchSize"] for blob in blobs if "BatchSize" in blob] == [[6.0]]


def test_a_batch_connect_failure_is_retried_inside_the_batch_budget():
    """Connect timeout + backoff + a whole second attempt fit BATCH_REQUEST_BUDGET_S (a cold connection under
    load must not be a 504 without a second try)."""
    from prediction.config import PredictSettings
    from sentiment_api.endpoint import RETRY_BACKOFF_S

    from tests.helpers import FUNCTION_ENV

    settings = PredictSettings.from_env(dict(FUNCTION_ENV))
    endpoint = settings.endpoint
    assert endpoint.max_attempts >= 2
    assert endpoint.connect_timeout_s + RETRY_BACKOFF_S + endpoint.batch_attempt_s <= settings.batch_budget_s
