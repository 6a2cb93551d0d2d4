"""POST /predict/batch over real HTTP through the whole local stack (the shipped model, real tokens): a batch
answers each text exactly as /predict does, item problems stay items, request problems are the usual
4xx, and a batch is one request for the per-user limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from sentiment_core.contract import MAX_BATCH_BODY_BYTES, MAX_TEXT_CHARS

from tests.helpers import rate_limit_fields

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30
SCORE_TOLERANCE = 1e-6 + 1e-12  # scores are rounded to 6 digits: one unit of the 6th digit, float error aside


def real_texts(n: int = 25) -> list[str]:
    """Texts of the VADER test split (built by `make model`), as product feedback arrives: varied lengths."""
    from sentiment_model.data import read_dataset_csv, split_examples

    _, test = split_examples(read_dataset_csv(ROOT / ".cache" / "data" / "vader_icwsm2014.csv"))
    texts = [ex.text for ex in test if 0 < len(ex.text) <= MAX_TEXT_CHARS]
    step = len(texts) // n
    return [texts[i * step] for i in range(n)]


def post(stack: RunningStack, path: str, body: bytes | str, token: str) -> requests.Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    return requests.post(f"{stack.api_url}{path}", data=data, headers=headers, timeout=TIMEOUT_S)


def batch(stack: RunningStack, texts: list[Any], token: str) -> requests.Response:
    return post(stack, "/predict/batch", json.dumps({"texts": texts}), token)


def test_a_batch_of_25_answers_each_text_as_predict_does(uncached_stack: RunningStack, token: Callable[..., str]):
    """With the answer cache off: the batch's answers and the single answers both come from the model."""
    texts, bearer = real_texts(), token(sub="batch-equivalence")

    response = batch(uncached_stack, texts, bearer)
    singles = [post(uncached_stack, "/predict", json.dumps({"text": t}), bearer).json() for t in texts]

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["errors"] == []
    assert [r["index"] for r in answer["results"]] == list(range(25))
    for result, alone in zip(answer["results"], singles, strict=True):
        assert result["sentiment"] == alone["sentiment"]
        for label, score in alone["scores"].items():
            assert abs(result["scores"][label] - score) <= SCORE_TOLERANCE
    assert answer["model_version"] == singles[0]["model_version"]
    assert len({r["sentiment"] for r in answer["results"]}) == 3  # real texts: every label occurs


def test_26_items_are_a_400(local_stack: RunningStack, token: Callable[..., str]):
    response = batch(local_stack, ["fine"] * 26, token(sub="batch-26"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["message"] == "texts must have at most 25 items."


def test_an_invalid_item_gets_its_own_entry_while_the_others_are_scored(
    local_stack: RunningStack, token: Callable[..., str]
):
    response = batch(local_stack, ["I love it", "   ", 7, "x" * 1025, "Awful, never again"], token(sub="batch-items"))

    assert response.status_code == 200
    answer = response.json()
    assert [(r["index"], r["sentiment"]) for r in answer["results"]] == [(0, "positive"), (4, "negative")]
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [
        (1, "EMPTY_TEXT"),
        (2, "VALIDATION_ERROR"),
        (3, "VALIDATION_ERROR"),
    ]


def test_a_body_of_32769_bytes_is_413(local_stack: RunningStack, token: Callable[..., str]):
    document = json.dumps({"texts": ["a" * 1000] * 25})
    body = document + " " * (MAX_BATCH_BODY_BYTES + 1 - len(document))

    response = post(local_stack, "/predict/batch", body, token(sub="batch-413"))

    assert len(body.encode()) == 32_769
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_batch_counts_as_one_request_for_the_per_user_limit(local_stack: RunningStack, token: Callable[..., str]):
    bearer = token(sub="batch-limit")
    first = batch(local_stack, ["one", "two", "three"], bearer)
    second = post(local_stack, "/predict", json.dumps({"text": "four"}), bearer)

    _, after_batch = rate_limit_fields(first.headers)
    _, after_single = rate_limit_fields(second.headers)
    assert first.status_code == second.status_code == 200
    assert after_batch["r"] == 199  # a burst of 200: the batch of 3 texts took one
    assert after_single["r"] == 198
