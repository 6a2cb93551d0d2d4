"""The bulk jobs routes as a client sees them, over HTTP only (the local stack in `make test`, a deployed stack
with `make integration API_URL=... TOKEN=...`): a small CSV job from upload to result, the job's errors
(409 before the upload, 400 for a bad body, 404 for an unknown id and, locally, for another user)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
import requests
from sentiment_core.contract import SMOKE_TEXTS

from tests.integration.conftest import Target
from tests.integration.test_api import error_code, post

TIMEOUT_S = 30
JOB_TIMEOUT_S = 300  # a deployed job waits for a map run and, on a cold bootstrap endpoint, a container


def get(target: Target, path: str, token: str | None = None) -> requests.Response:
    headers = {"authorization": f"Bearer {target.token if token is None else token}"}
    return requests.get(f"{target.url}{path}", headers=headers, timeout=TIMEOUT_S)


def create(target: Target, **body: Any) -> dict[str, Any]:
    import json

    response = post(target, "/jobs", json.dumps({"input_format": "csv", **body}))
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/jobs/{response.json()['job_id']}"
    return dict(response.json())


def test_a_csv_job_from_upload_to_result(target: Target) -> None:
    rows = [["id", "text"], *[[label, text] for label, text in SMOKE_TEXTS.items()], ["blank", " "]]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    job = create(target, id_field="id", size_bytes=len(data))
    assert job["status"] == "AWAITING_UPLOAD" and job["upload"]["method"] == "PUT"
    assert requests.put(job["upload"]["url"], data=data, headers=job["upload"]["headers"], timeout=TIMEOUT_S).ok
    started = post(target, f"/jobs/{job['job_id']}/start", b"")
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (state := get(target, f"/jobs/{job['job_id']}").json())["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, state
        time.sleep(2)
    assert state["status"] == "SUCCEEDED", state
    assert state["counts"] == {"positive": 1, "neutral": 1, "negative": 1, "errors": 1}
    result = requests.get(state["result"]["url"], timeout=TIMEOUT_S)
    records = list(csv.DictReader(io.StringIO(result.content.decode())))
    assert [(r["row"], r["id"]) for r in records] == [
        ("1", "positive"),
        ("2", "neutral"),
        ("3", "negative"),
        ("4", "blank"),
    ]
    assert [r["sentiment"] for r in records[:3]] == ["positive", "neutral", "negative"]
    assert records[3]["error"] == "EMPTY_TEXT"


def test_start_before_upload_is_409(target: Target) -> None:
    job = create(target)
    response = post(target, f"/jobs/{job['job_id']}/start", b"")
    assert response.status_code == 409 and error_code(response) == "UPLOAD_MISSING"


@pytest.mark.parametrize("body", [b'{"input_format": "xml"}', b"{}", b'{"input_format": "csv", "x": 1}', b"{nope"])
def test_a_bad_create_request_is_400(target: Target, body: bytes) -> None:
    response = post(target, "/jobs", body)
    assert response.status_code == 400 and error_code(response) in ("VALIDATION_ERROR", "INVALID_JSON")


def test_an_unknown_job_is_404_and_another_users_job_too(target: Target) -> None:
    response = get(target, "/jobs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    if target.mint is None:
        pytest.skip("another user's token exists only on the local stack")
    job = create(target)
    other = get(target, f"/jobs/{job['job_id']}", token=target.mint("integration-someone-else"))
    assert other.status_code == 404 and error_code(other) == "NOT_FOUND"
