"""The API as a client sees it, over HTTP against any stack (tests/integration/conftest.py): each label,
both predict routes, the README's error table, the rate-limit fields, GET /explain, correlation ids (the jobs routes:
test_jobs.py).
Nothing here reads the stack's code or logs, so the same tests run against the local stack and a deployed one."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from local_stack.idp import DevIdentityProvider
from sentiment_api.schemas import ERROR_SCHEMA, compile_schema
from sentiment_core.contract import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES, SMOKE_TEXTS

from tests.helpers import rate_limit_fields
from tests.integration.conftest import Target

pytestmark = pytest.mark.slow

TIMEOUT_S = 30
validate_error = compile_schema(ERROR_SCHEMA)


def post(target: Target, path: str, body: bytes | str, token: str | None = None, **headers: str) -> requests.Response:
    sent = {"content-type": "application/json", **headers}
    bearer = target.token if token is None else token
    if bearer:
        sent["authorization"] = f"Bearer {bearer}"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(f"{target.url}{path}", data=data, headers=sent, timeout=TIMEOUT_S)


def error_code(response: requests.Response) -> str:
    body = response.json()
    validate_error(body)
    assert body["error"]["correlation_id"] == response.headers["x-correlation-id"]
    return str(body["error"]["code"])


@pytest.mark.parametrize(("label", "text"), list(SMOKE_TEXTS.items()))
def test_each_label(target: Target, label: str, text: str) -> None:
    response = post(target, "/predict", json.dumps({"text": text}))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["sentiment"] == label
    if "scores" in answer:
        assert abs(sum(answer["scores"].values()) - 1) < 1e-3


def test_a_batch_answers_every_index_once(target: Target) -> None:
    texts = [*SMOKE_TEXTS.values(), "  "]

    response = post(target, "/predict/batch", json.dumps({"texts": texts}))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(r["index"], r["sentiment"]) for r in answer["results"]] == list(enumerate(SMOKE_TEXTS))
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(3, "EMPTY_TEXT")]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/predict", b"{not json", {}, 400, "INVALID_JSON"),
        ("/predict", b'{"text": "\xff\xfe"}', {}, 400, "INVALID_ENCODING"),
        ("/predict", b'{"txt": "typo"}', {}, 400, "VALIDATION_ERROR"),
        ("/predict", b'{"text": " \\t "}', {}, 400, "EMPTY_TEXT"),
        ("/predict", b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}', {}, 413, "PAYLOAD_TOO_LARGE"),
        ("/predict", b'{"text": "hi"}', {"content-type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("/predict/batch", json.dumps({"texts": ["a"] * 26}).encode(), {}, 400, "VALIDATION_ERROR"),
        ("/predict/batch", b'{"texts": []}', {}, 400, "VALIDATION_ERROR"),
        ("/predict/batch", json.dumps({"texts": ["a" * 1000] * 33}).encode(), {}, 413, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_the_error_table(target: Target, path: str, body: bytes, headers: dict, status: int, code: str) -> None:
    if status == 413 and path == "/predict/batch":
        assert len(body) > MAX_BATCH_BODY_BYTES
    response = post(target, path, body, **headers)

    assert response.status_code == status, response.text
    assert error_code(response) == code


def test_no_token_and_a_forged_token_are_refused_by_the_gateway(target: Target, forger: DevIdentityProvider) -> None:
    for token in ("", forger.mint(sub="mallory")):
        response = post(target, "/predict", b'{"text": "hi"}', token=token)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}


def test_an_unknown_route_is_404(target: Target) -> None:
    response = post(target, "/predict/everything", b'{"text": "hi"}')

    assert response.status_code == 404


def test_rate_limit_fields_and_correlation_id(target: Target) -> None:
    response = post(target, "/predict", json.dumps({"text": "fine"}), **{"x-correlation-id": "integration-0001"})

    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "integration-0001"
    policy, limit = rate_limit_fields(response.headers)
    assert policy["q"] >= 1 and policy["w"] >= 1 and policy["qu"] == "request"
    assert 0 <= limit["r"] < policy["q"] and limit["t"] >= 0


def test_explain_answers_a_summary_or_404(target: Target) -> None:
    response = requests.get(
        f"{target.url}/explain", headers={"authorization": f"Bearer {target.token}"}, timeout=TIMEOUT_S
    )

    assert response.status_code in (200, 404), response.text
    if response.status_code == 404:
        assert error_code(response) == "NOT_FOUND"
    else:
        summary: dict[str, Any] = response.json()
        assert {"model_version", "report_date"} <= set(summary)


def test_a_caller_past_its_burst_gets_429_with_retry_after(target: Target) -> None:
    """Local only: against a deployed stack it would spend the pipeline token's whole burst."""
    if target.mint is None:
        pytest.skip("needs a user of its own (local stack)")
    token, session = target.mint("integration-burst"), requests.Session()
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    statuses = []
    for _ in range(400):  # the burst of 200, plus what the refill (100/min) adds while they are sent
        response = session.post(f"{target.url}/predict", data=b'{"text": "ok"}', headers=headers, timeout=TIMEOUT_S)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break

    assert statuses[-1] == 429 and statuses.count(200) == len(statuses) - 1 >= 200
    assert error_code(response) == "RATE_LIMITED"
    _, limit = rate_limit_fields(response.headers)
    assert limit["r"] == 0 and limit["t"] == int(response.headers["retry-after"]) >= 1
