"""The bulk jobs API over real HTTP through the whole local stack (the shipped model, real tokens, the local
S3 with its presigned-URL checks, the local engine running the jobs state machine's steps in the worker's
own processes): a 20,000-row CSV made from the held-out VADER test split round-trips, every row in order,
labels as /predict answers them, rows with problems carrying their error; the job is its owner's only;
the upload URL holds to its signed size."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.local.test_batch_e2e import ROOT

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

ROWS = 20_000
TIMEOUT_S = 30
JOB_TIMEOUT_S = 600
#: Rows with problems, by row number (1-based), and the error each must carry.
PROBLEMS = {7: "EMPTY_TEXT", 1_234: "VALIDATION_ERROR", 19_999: "MALFORMED_ROW"}


def heldout_texts() -> list[str]:
    from sentiment_model.data import read_dataset_csv, split_examples

    _, test = split_examples(read_dataset_csv(ROOT / ".cache" / "data" / "vader_icwsm2014.csv"))
    return [ex.text for ex in test if 0 < len(ex.text) <= 1024 and ex.text.strip()]


def input_file() -> tuple[bytes, list[str]]:
    """id,text,source: the held-out texts in turn, with the problem rows; and the text of each row."""
    texts = heldout_texts()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["review_id", "text", "source"])
    row_texts = []
    for number in range(1, ROWS + 1):
        text = texts[(number - 1) % len(texts)]
        if PROBLEMS.get(number) == "EMPTY_TEXT":
            text = "  "
        elif PROBLEMS.get(number) == "VALIDATION_ERROR":
            text = "x" * 1025
        row_texts.append(text)
        if PROBLEMS.get(number) == "MALFORMED_ROW":
            writer.writerow([f"r{number}", text, "vader", "an extra field"])
        else:
            writer.writerow([f"r{number}", text, "vader"])
    return buffer.getvalue().encode("utf-8"), row_texts


def call(method: str, url: str, token: str, **kwargs: Any) -> requests.Response:
    headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=TIMEOUT_S, **kwargs)


def wait_until_done(stack: RunningStack, job_id: str, token: str) -> dict[str, Any]:
    deadline, last = time.monotonic() + JOB_TIMEOUT_S, {}
    seen_progress = set()
    while time.monotonic() < deadline:
        last = call("GET", f"{stack.api_url}/jobs/{job_id}", token).json()
        seen_progress.add(last["progress"]["rows_done"])
        if last["status"] in ("SUCCEEDED", "FAILED"):
            last["_progress_seen"] = sorted(seen_progress)
            return dict(last)
        time.sleep(1.0)
    pytest.fail(f"job {job_id} not done after {JOB_TIMEOUT_S} s: {last}")


def test_a_20000_row_csv_round_trips_in_order_with_predict_labels(
    local_stack: RunningStack, token: Callable[..., str]
) -> None:
    data, row_texts = input_file()
    owner = token(sub="jobs-owner")
    created = call(
        "POST",
        f"{local_stack.api_url}/jobs",
        owner,
        json={"input_format": "csv", "text_field": "text", "id_field": "review_id", "size_bytes": len(data)},
    )
    assert created.status_code == 201, created.text
    job = created.json()
    upload = job["upload"]
    put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=TIMEOUT_S)
    assert put.status_code == 200, put.text
    started = call("POST", f"{local_stack.api_url}/jobs/{job['job_id']}/start", owner)
    assert started.status_code == 202 and started.json()["status"] == "QUEUED", started.text

    # another user sees no such job (the unit tests also try the same subject from another issuer)
    stranger = token(sub="someone-else")
    for method, path in (("GET", ""), ("POST", "/start")):
        answer = call(method, f"{local_stack.api_url}/jobs/{job['job_id']}{path}", stranger)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "NOT_FOUND"

    done = wait_until_done(local_stack, job["job_id"], owner)
    assert done["status"] == "SUCCEEDED", done
    assert done["progress"]["rows_done"] == done["progress"]["rows_total"] == ROWS
    assert done["counts"]["errors"] == len(PROBLEMS) and sum(done["counts"][k] for k in done["counts"]) == ROWS
    assert done["model_version"].startswith("minilm-")

    result = requests.get(done["result"]["url"], timeout=TIMEOUT_S)
    assert result.status_code == 200
    rows = list(csv.DictReader(io.StringIO(result.content.decode("utf-8"))))
    assert [int(r["row"]) for r in rows] == list(range(1, ROWS + 1))
    assert [r["id"] for r in rows] == [f"r{n}" for n in range(1, ROWS + 1)]
    for number, code in PROBLEMS.items():
        assert rows[number - 1]["error"] == code and rows[number - 1]["sentiment"] == "", rows[number - 1]
    assert all(r["sentiment"] in ("positive", "neutral", "negative") for r in rows if not r["error"])

    # a sample of 200 scored rows: the label /predict gives the same text
    sampler, predictor = random.Random(13), token(sub="jobs-sample")
    sample = sampler.sample([n for n in range(1, ROWS + 1) if n not in PROBLEMS], 200)
    for number in sample:
        single = call("POST", f"{local_stack.api_url}/predict", predictor, json={"text": row_texts[number - 1]})
        assert single.status_code == 200, single.text
        assert single.json()["sentiment"] == rows[number - 1]["sentiment"], (number, row_texts[number - 1][:80])


def test_the_upload_url_refuses_another_size_and_a_start_without_upload_is_409(
    local_stack: RunningStack, token: Callable[..., str]
) -> None:
    owner = token(sub="jobs-upload")
    job = call("POST", f"{local_stack.api_url}/jobs", owner, json={"input_format": "jsonl", "size_bytes": 20}).json()
    upload = job["upload"]
    bigger = requests.put(upload["url"], data=b'{"text": "hello"}\n' * 3, headers={"Content-Type": "application/jsonl"})
    assert bigger.status_code == 403 and b"SignatureDoesNotMatch" in bigger.content
    tampered = requests.put(
        upload["url"].replace("/input?", "/result.jsonl?"), data=b"x" * 20, headers=upload["headers"]
    )
    assert tampered.status_code == 403
    started = call("POST", f"{local_stack.api_url}/jobs/{job['job_id']}/start", owner)
    assert started.status_code == 409 and started.json()["error"]["code"] == "UPLOAD_MISSING"


def test_a_file_without_the_text_field_fails_the_job_with_its_code(
    local_stack: RunningStack, token: Callable[..., str]
) -> None:
    owner = token(sub="jobs-refused")
    data = b"body,stars\nnice,5\n"
    job = call("POST", f"{local_stack.api_url}/jobs", owner, json={"input_format": "csv"}).json()
    assert requests.put(job["upload"]["url"], data=data, headers=job["upload"]["headers"]).status_code == 200
    assert call("POST", f"{local_stack.api_url}/jobs/{job['job_id']}/start", owner).status_code == 202
    done = wait_until_done(local_stack, job["job_id"], owner)
    assert done["status"] == "FAILED" and done["error"]["code"] == "MISSING_TEXT_FIELD", done
    assert "result" not in done


def test_the_client_writes_the_same_output_in_job_mode_as_in_batch_mode(
    local_stack: RunningStack, token: Callable[..., str], tmp_path: Path
) -> None:
    """`make score ... MODE=job` (upload, progress, download) and the batch mode give the same OUT (scores to 1e-6)."""
    from sentiment_client import cli

    texts = heldout_texts()[:300]
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([n, text] for n, text in enumerate(texts))
        writer.writerow(["empty", " "])
        writer.writerow(["malformed", "a text", "one field too many"])
    outputs = {}
    for mode in ("batch", "job"):
        out, stderr = tmp_path / f"out-{mode}.csv", io.StringIO()
        argv = ["score", str(source), str(out), "--url", local_stack.api_url, "--mode", mode]
        code = cli.main([*argv, "--token", token(sub=f"client-{mode}")], stderr=stderr, environ={})
        assert code == 0, stderr.getvalue()
        outputs[mode] = out.read_text("utf-8")
        if mode == "job":
            assert "SUCCEEDED 302 of 302 rows" in stderr.getvalue(), stderr.getvalue()
    # the same columns and rows; labels, versions and errors equal, scores within one unit of their 6th digit
    # (the model is batch-invariant to 1e-6, and the two modes batch the texts differently)
    job_rows = list(csv.reader(io.StringIO(outputs["job"])))
    batch_rows = list(csv.reader(io.StringIO(outputs["batch"])))
    assert job_rows[0] == batch_rows[0] and len(job_rows) == len(batch_rows)
    scores = {job_rows[0].index(name) for name in ("score_negative", "score_neutral", "score_positive")}
    for job_row, batch_row in zip(job_rows[1:], batch_rows[1:], strict=True):
        for index, (a, b) in enumerate(zip(job_row, batch_row, strict=True)):
            if index in scores and a and b:
                assert abs(float(a) - float(b)) <= 1e-6 + 1e-12, (job_row, batch_row)
            else:
                assert a == b, (job_row, batch_row)
    rows = list(csv.DictReader(io.StringIO(outputs["job"])))
    assert len(rows) == 302 and rows[300]["error"] == "EMPTY_TEXT" and rows[301]["error"] == "MALFORMED_ROW"
