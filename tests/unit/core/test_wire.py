"""sentiment_core.wire: the one endpoint wire format, both directions and every answer shape."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sentiment_core import wire
from sentiment_core.contract import LABELS


@pytest.mark.parametrize("texts", [["plain"], ['quote " and, comma', "new\nline"], ["émoji 😀", ""], ["\x00ctrl"]])
def test_texts_round_trip_through_csv(texts: list[str]) -> None:
    body = wire.encode_texts(texts)
    assert list(csv.reader(io.StringIO(body.decode("utf-8")))) == [[t] for t in texts]
    assert wire.decode_texts(body) == (texts if texts != [""] else [""])


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"\xff", "not valid UTF-8"), (b'"unterminated', "not valid CSV"), (b"a,b\n", "2 fields")],
)
def test_undecodable_requests_say_why(body: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_texts(body)


def test_an_empty_request_is_one_empty_text() -> None:
    assert wire.decode_texts(b"") == [""]


def test_a_batch_answer_keeps_request_order_and_checks_the_count() -> None:
    objects = [wire.answer_object([0.1, 0.2, 0.7], LABELS, "v1"), wire.answer_object([0.6, 0.3, 0.1], LABELS, "v1")]
    body = json.dumps({"predictions": objects}).encode()
    predictions = wire.parse_answers(body, "application/json", 2)
    assert [p.label for p in predictions] == ["positive", "negative"]
    assert wire.model_version_of(predictions) == "v1"
    with pytest.raises(wire.WireError, match="sent 3 texts, got 2 predictions"):
        wire.parse_answers(body, "application/json", 3)


def test_autopilot_csv_rows_and_json_lines() -> None:
    rows = b"neutral,0.6,\"[0.2, 0.6, 0.2]\",\"['negative', 'neutral', 'positive']\"\npositive\n"
    first, second = wire.parse_answers(rows, "text/csv", 2, custom_attributes="model_version=m7")
    assert (first.label, first.scores, first.model_version) == (
        "neutral",
        {"negative": 0.2, "neutral": 0.6, "positive": 0.2},
        "m7",
    )
    assert (second.label, second.scores) == ("positive", None)
    lines = b'{"predicted_label": "negative"}\n{"predicted_label": "Neutral "}\n'
    assert [p.label for p in wire.parse_answers(lines, "application/jsonlines", 2)] == ["negative", "neutral"]


@pytest.mark.parametrize(
    ("labels", "probabilities"),
    [
        (["negative", "neutral"], [0.5, 0.5]),
        (LABELS, [0.2, 0.2, 1.2]),
        (LABELS, ["nan", 0.5, 0.5]),
        (["a", "b", "c"], [0.3, 0.3, 0.4]),
    ],
)
def test_scores_that_do_not_name_the_three_labels_as_probabilities_are_dropped(
    labels: list[str], probabilities: list[object]
) -> None:
    body = json.dumps({"predicted_label": "neutral", "labels": list(labels), "probabilities": probabilities})
    assert wire.parse_answer(body.encode(), "application/json").scores is None


@pytest.mark.parametrize("body", [b"\xff", b"not json", b'{"predicted_label": "sarcastic"}', b"[1]", b"{}"])
def test_unusable_answers_are_wire_errors(body: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.parse_answer(body, "application/json")


def test_custom_attributes_both_ways() -> None:
    header = wire.custom_attributes(correlation_id="abc-123", model_version="v2")
    assert header == "correlation_id=abc-123,model_version=v2"
    assert wire.custom_attribute(header, "model_version") == "v2"
    assert wire.custom_attribute(" model_version= ,x=1", "model_version") is None
    assert wire.custom_attribute(None, "correlation_id") is None
