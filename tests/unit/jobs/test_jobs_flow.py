"""The jobs API and worker, in-process against moto: a job from creation to its result, the owner rule,
the start's checks, row errors, file errors, and the orders that hurt (a task run twice, a start repeated)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from tests.unit.jobs.conftest import JobsWorld


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def test_a_csv_job_round_trips_with_row_errors_in_order(jobs_world: JobsWorld) -> None:
    rows = [["id", "text", "other"]]
    for n in range(100):
        rows.append([f"r{n}", ["good day", "bad day", "a day"][n % 3], "x"])
    rows[5] = ["r4", "   ", "x"]  # empty text
    rows[7] = ["r6", "x" * 1025, "x"]  # too long
    rows[9] = ["r8", "good", "x", "extra"]  # malformed
    status, job, headers = jobs_world.request("POST", "/jobs", {"input_format": "csv", "id_field": "id"})
    assert status == 201, job
    assert job["status"] == "AWAITING_UPLOAD" and headers["Location"] == f"/jobs/{job['job_id']}"
    assert job["upload"]["method"] == "PUT" and "X-Amz-Signature=" in job["upload"]["url"]
    jobs_world.upload(job, _csv(rows))
    status, started, _ = jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    assert status == 202 and started["status"] == "QUEUED"
    assert jobs_world.run(job["job_id"])["status"] == "SUCCEEDED"
    status, done, _ = jobs_world.request("GET", f"/jobs/{job['job_id']}")
    assert status == 200 and done["status"] == "SUCCEEDED"
    assert done["progress"] == {"rows_done": 100, "rows_total": 100}
    assert done["counts"]["errors"] == 3 and sum(done["counts"].values()) == 100
    assert done["model_version"] == "model-v1"
    assert done["result"]["url"].startswith("https://") or done["result"]["url"].startswith("http")
    result = list(csv.reader(io.StringIO(jobs_world.result(done).decode())))
    assert result[0] == ["row", "id", "sentiment", "score_negative", "score_neutral", "score_positive",
                         "model_version", "error", "error_message"]  # fmt: skip
    assert [int(r[0]) for r in result[1:]] == list(range(1, 101))
    by_row = {int(r[0]): r for r in result[1:]}
    assert by_row[5][7] == "EMPTY_TEXT" and by_row[7][7] == "VALIDATION_ERROR" and by_row[9][7] == "MALFORMED_ROW"
    assert by_row[1][1:3] == ["r0", "positive"] and by_row[2][2] == "negative" and by_row[3][2] == "neutral"
    # the texts are never sent for the rows with errors, and every other text exactly once
    sent = [text for call in jobs_world.endpoint.calls for text in call]
    assert len(sent) == 97 and all(len(call) <= 25 for call in jobs_world.endpoint.calls)


def test_a_jsonl_job_keeps_every_line_and_reports_malformed_ones(jobs_world: JobsWorld) -> None:
    lines = [json.dumps({"text": "good stuff", "id": 1}), "not json", json.dumps([1]), "",
             json.dumps({"body": "no text"}), json.dumps({"text": "bad stuff", "id": "b"})]  # fmt: skip
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "jsonl", "id_field": "id"})
    jobs_world.upload(job, ("\n".join(lines) + "\n").encode())
    jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    jobs_world.run(job["job_id"])
    records = [json.loads(line) for line in jobs_world.result(job).decode().splitlines()]
    assert [r["row"] for r in records] == [1, 2, 3, 4, 5]  # the blank line is not a row
    assert records[0]["sentiment"] == "positive" and records[0]["id"] == "1"
    assert [r["error"]["code"] for r in records[1:4]] == ["MALFORMED_ROW"] * 3
    assert records[4]["sentiment"] == "negative" and records[4]["error"] is None
    assert records[4]["scores"] == {"negative": 0.8, "neutral": 0.1, "positive": 0.1}


def test_another_caller_gets_404_for_every_route_of_a_job(jobs_world: JobsWorld) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv"})
    jobs_world.upload(job, b"text\ngood\n")
    for method, path in (("GET", f"/jobs/{job['job_id']}"), ("POST", f"/jobs/{job['job_id']}/start")):
        for who in ({"sub": "mallory"}, {"sub": "alice", "iss": "https://other-idp.example"}):
            status, body, _ = jobs_world.request(method, path, **who)  # type: ignore[arg-type]
            assert status == 404 and body["error"]["code"] == "NOT_FOUND", (method, who)
    status, body, _ = jobs_world.request("GET", "/jobs/0123456789abcdef0123456789abcdef")
    assert status == 404
    status, body, _ = jobs_world.request("GET", "/jobs/..%2F..")
    assert status == 404
    assert jobs_world.executions == []


def test_start_without_upload_is_409_and_a_repeated_start_runs_one_execution(jobs_world: JobsWorld) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv"})
    status, body, _ = jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    assert status == 409 and body["error"]["code"] == "UPLOAD_MISSING"
    jobs_world.upload(job, b"text\ngood\n")
    assert jobs_world.request("POST", f"/jobs/{job['job_id']}/start")[0] == 202
    assert jobs_world.request("POST", f"/jobs/{job['job_id']}/start")[0] == 202  # still QUEUED: same execution
    assert {e["name"] for e in jobs_world.executions} == {job["job_id"]}
    jobs_world.run(job["job_id"])
    status, body, _ = jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    assert status == 200 and body["status"] == "SUCCEEDED"


def test_bad_create_requests_are_400_with_the_usual_shape(jobs_world: JobsWorld) -> None:
    for body, code in (
        ({"input_format": "xml"}, "VALIDATION_ERROR"),
        ({}, "VALIDATION_ERROR"),
        ({"input_format": "csv", "size_bytes": 10**12}, "VALIDATION_ERROR"),
        ({"input_format": "csv", "extra": 1}, "VALIDATION_ERROR"),
        ("{not json", "INVALID_JSON"),
    ):
        status, answer, _ = jobs_world.request("POST", "/jobs", body)
        assert status == 400 and answer["error"]["code"] == code, (body, answer)
        assert "data." not in answer["error"]["message"]  # our words, not the validator's


def test_file_level_problems_fail_the_job_with_their_code(jobs_world: JobsWorld) -> None:
    for data, fmt, code in (
        (b"body,other\nx,y\n", "csv", "MISSING_TEXT_FIELD"),
        (b"", "csv", "EMPTY_INPUT"),
        (b"text\n", "csv", "EMPTY_INPUT"),
        (b'text\n"unterminated\n', "csv", "INVALID_CSV"),
        (b"\x89PNG\r\n\x1a\n", "jsonl", "INVALID_JSONL"),
        (b'{"body": "x"}\n', "jsonl", "MISSING_TEXT_FIELD"),
    ):
        _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": fmt})
        jobs_world.upload(job, data)
        jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
        assert jobs_world.run(job["job_id"])["status"] == "FAILED"
        _, body, _ = jobs_world.request("GET", f"/jobs/{job['job_id']}")
        assert body["status"] == "FAILED" and body["error"]["code"] == code, (data, body)


def test_a_chunk_scored_twice_is_counted_once_and_not_sent_again(jobs_world: JobsWorld) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv"})
    jobs_world.upload(job, _csv([["text"], *[["good"]] * 40]))
    jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    payload = json.loads(jobs_world.executions[-1]["input"])
    handler = jobs_world.worker_module.lambda_handler
    from tests.helpers import FakeContext

    handler({"step": "prepare", **payload}, FakeContext())
    handler({"step": "prepare", **payload}, FakeContext())  # a lost answer: run again
    handler({"step": "score", **payload, "chunk": 0}, FakeContext())
    calls = len(jobs_world.endpoint.calls)
    handler({"step": "score", **payload, "chunk": 0}, FakeContext())  # retry after success
    assert len(jobs_world.endpoint.calls) == calls
    _, body, _ = jobs_world.request("GET", f"/jobs/{job['job_id']}")
    assert body["status"] == "RUNNING" and body["progress"] == {"rows_done": 30, "rows_total": 40}
    handler({"step": "score", **payload, "chunk": 1}, FakeContext())
    handler({"step": "finish", **payload}, FakeContext())
    handler({"step": "finish", **payload}, FakeContext())
    _, body, _ = jobs_world.request("GET", f"/jobs/{job['job_id']}")
    assert body["status"] == "SUCCEEDED" and body["counts"]["positive"] == 40
    # a failure reported after success does not undo it
    handler({"step": "fail", **payload, "error": {"Error": "X"}}, FakeContext())
    assert jobs_world.request("GET", f"/jobs/{job['job_id']}")[1]["status"] == "SUCCEEDED"


def test_a_text_or_id_with_a_unicode_line_separator_stays_one_row(jobs_world: JobsWorld) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv", "id_field": "id"})
    jobs_world.upload(job, "id,text\nx\u0085y,good\u2028day\nz,bad\u2029day\n".encode())
    jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    assert jobs_world.run(job["job_id"])["status"] == "SUCCEEDED"
    result = list(csv.reader(io.StringIO(jobs_world.result(job).decode(), newline="")))
    assert [(r[0], r[1], r[2]) for r in result[1:]] == [("1", "x\u0085y", "positive"), ("2", "z", "negative")]


def test_bad_field_names_are_400_and_a_whole_float_size_is_an_integer(jobs_world: JobsWorld) -> None:
    status, body, _ = jobs_world.request("POST", "/jobs", '{"input_format": "csv", "text_field": "\\ud800"}')
    assert status == 400 and body["error"]["code"] == "INVALID_ENCODING", body
    status, body, _ = jobs_world.request("POST", "/jobs", '{"input_format": "csv", "size_bytes": 1e2}')
    assert status == 201 and "Content-Length" in body["upload"]["headers"], body
    assert body["upload"]["headers"]["Content-Length"] == "100"


def test_a_file_replaced_after_the_start_is_still_held_to_the_size_limit(
    jobs_world: JobsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv"})
    jobs_world.upload(job, b"text\ngood\n")
    jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    settings = jobs_world.worker_module.worker.settings
    monkeypatch.setattr(jobs_world.worker_module.worker, "settings", replace(settings, max_input_bytes=1024))
    jobs_world.upload(job, b"text\n" + b"good\n" * 1000)  # the upload URL is still valid
    assert jobs_world.run(job["job_id"])["status"] == "FAILED"
    assert jobs_world.request("GET", f"/jobs/{job['job_id']}")[1]["error"]["code"] == "INPUT_TOO_LARGE"


def test_the_start_refuses_a_file_over_the_limit_and_deletes_it(
    jobs_world: JobsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job, _ = jobs_world.request("POST", "/jobs", {"input_format": "csv"})
    jobs_world.upload(job, b"text\n" + b"good\n" * 1000)
    settings = jobs_world.api.jobs._settings
    monkeypatch.setattr(jobs_world.api.jobs, "_settings", replace(settings, max_input_bytes=1024))
    status, body, _ = jobs_world.request("POST", f"/jobs/{job['job_id']}/start")
    assert status == 413 and body["error"]["code"] == "INPUT_TOO_LARGE"
    assert jobs_world.request("GET", f"/jobs/{job['job_id']}")[1]["status"] == "FAILED"
    assert jobs_world.executions == []
