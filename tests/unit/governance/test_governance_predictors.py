"""Reading endpoint answers (every documented shape) and batching requests."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sentiment_core.wire import WireError as PredictionError

from governance.predictors import EndpointPredictor, batches, encode_batch, parse_batch

PROBS = {"labels": ["negative", "neutral", "positive"]}


def item(label: str, probabilities: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"predicted_label": label, **extra}
    if probabilities is not None:
        body.update(probabilities=probabilities, **PROBS)
    return body


def test_json_predictions_list() -> None:
    body = json.dumps(
        {
            "predictions": [
                item("positive", [0.1, 0.2, 0.7], model_version="m-1"),
                item("neutral", [0.2, 0.6, 0.2], model_version="m-1"),
            ]
        }
    ).encode()
    predictions, version = parse_batch(body, "application/json", 2)
    assert [p.label for p in predictions] == ["positive", "neutral"]
    assert predictions[0].probabilities == {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
    assert version == "m-1"


def test_single_object_and_plain_list() -> None:
    (one,), _ = parse_batch(json.dumps(item("Negative ")).encode(), "application/json", 1)
    assert one.label == "negative" and one.probabilities["negative"] == 1.0
    two, _ = parse_batch(json.dumps([item("positive"), item("neutral")]).encode(), "application/json", 2)
    assert [p.label for p in two] == ["positive", "neutral"]


def test_csv_rows_with_bracketed_lists() -> None:
    body = b"positive,0.7,\"[0.1, 0.2, 0.7]\",\"['negative', 'neutral', 'positive']\"\nnegative,0.9\n"
    predictions, version = parse_batch(body, "text/csv; charset=utf-8", 2)
    assert predictions[0].probabilities["positive"] == 0.7
    assert predictions[1].probabilities == {"negative": 1.0, "neutral": 0.0, "positive": 0.0}
    assert version is None


def test_json_lines() -> None:
    body = (json.dumps(item("positive")) + "\n" + json.dumps(item("negative")) + "\n").encode()
    predictions, _ = parse_batch(body, "application/jsonlines", 2)
    assert [p.label for p in predictions] == ["positive", "negative"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [(json.dumps({"predictions": [item("positive")]}), 2), (json.dumps(item("happy")), 1), ("[1]", 1)],
)
def test_unusable_answers_raise(body: str, expected: int) -> None:
    with pytest.raises(PredictionError):
        parse_batch(body.encode(), "application/json", expected)


def test_encode_batch_quotes_each_text_as_one_record() -> None:
    assert encode_batch(['say "hi", ok', "line\nbreak"]) == b'"say ""hi"", ok"\n"line\nbreak"\n'


def test_batches_respect_the_size() -> None:
    assert [len(b) for b in batches([str(i) for i in range(10)], size=4)] == [4, 4, 2]


class FakeRuntime:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        n = kwargs["Body"].count(b"\n")
        body = json.dumps({"predictions": [item("neutral", [0.1, 0.8, 0.1])] * n}).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json", "CustomAttributes": "model_version=v9"}


def test_endpoint_predictor_batches_and_reads_the_version_from_custom_attributes() -> None:
    runtime = FakeRuntime()
    predictor = EndpointPredictor(runtime, "live-endpoint", batch_size=3)
    predictions = predictor([f"text {i}" for i in range(7)])
    assert len(predictions) == 7 and predictor.calls == 3
    assert predictor.model_version == "v9"
    assert {r["EndpointName"] for r in runtime.requests} == {"live-endpoint"}
    assert {(r["ContentType"], r["Accept"]) for r in runtime.requests} == {("text/csv", "application/json")}
