"""The CSV client (client/sentiment_client) end to end: the real command, its real urllib transport and its
threads, against a fake POST /predict/batch served on 127.0.0.1 by http.server, on simulated time (a clock
whose sleeps only move it forward: a 429 with Retry-After: 7 costs no real second)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sentiment_client import cli, files
from sentiment_client.api import MAX_BODY_BYTES, Cancelled, Clock
from sentiment_client.transport import HttpResponse, UrllibTransport

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
OUTPUT_COLUMNS = ["sentiment", "score_negative", "score_neutral", "score_positive", "model_version", "error"]
MODEL_VERSION = "minilm-ft-test"


# ---- simulated time ------------------------------------------------------------------------------
class FakeClock(Clock):
    """Time moves only when someone sleeps (or the fake API spends its service time)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def sleep(self, seconds: float) -> None:
        self.check()
        with self._lock:
            self.sleeps.append(seconds)
            self.t += max(0.0, seconds)
        if self.stopped:
            raise Cancelled


# ---- the fake API --------------------------------------------------------------------------------
def label_of(text: str) -> str:
    return "positive" if "good" in text else "negative" if "bad" in text else "neutral"


SCORES = {
    "positive": {"negative": 0.01, "neutral": 0.09, "positive": 0.9},
    "negative": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
    "neutral": {"negative": 0.1, "neutral": 0.7, "positive": 0.2},
}


class FakeApi:
    """Answers /predict/batch from a rule (label_of; "#reject#" → a VALIDATION_ERROR item error; "#refuse#" →
    the whole request refused with 400 VALIDATION_ERROR), or with the next scripted answer: (status, headers,
    body) or "drop" (close the connection without an answer)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.script: deque[Any] = deque()
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []  # the texts of every batch answered 200
        self.requests: list[dict[str, Any]] = []  # time, size and headers of every request
        self.rate_limit = lambda: '"per-user";r=150;t=10'
        #: answers (by their number, from 0) held back for 0.1 s of real time
        self.slow: set[int] = set()
        self.answered = 0
        self.url = ""

    def answer(self, headers: Mapping[str, str], body: bytes) -> Any:
        with self.lock:
            self.requests.append({"t": self.clock.now(), "size": len(body), "headers": dict(headers)})
            self.clock.advance(0.05)  # service time
            if self.script:
                return self.script.popleft()
            if len(body) > MAX_BODY_BYTES:
                return 413, {}, {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "too large"}}
            texts = json.loads(body)["texts"]
            if any("#refuse#" in text for text in texts):
                return 400, {}, error_body("VALIDATION_ERROR")
            self.batches.append(texts)
        results, errors = [], []
        for index, text in enumerate(texts):
            if "#reject#" in text:
                errors.append({"index": index, "code": "VALIDATION_ERROR", "message": "refused"})
            else:
                label = label_of(text)
                results.append({"index": index, "sentiment": label, "scores": SCORES[label]})
        return 200, {}, {"results": results, "errors": errors, "model_version": MODEL_VERSION}

    @property
    def texts(self) -> list[str]:
        return [text for batch in self.batches for text in batch]


def error_body(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.lower(), "correlation_id": "c-1"}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[FakeApi]:
    fake = FakeApi(clock)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/predict/batch":
                self._send(404, {}, {"message": "Not Found"})
                return
            answer = fake.answer({k.lower(): v for k, v in self.headers.items()}, body)
            if answer == "drop":
                self.close_connection = True
                return
            status, headers, document = answer
            with fake.lock:
                number, fake.answered = fake.answered, fake.answered + 1
                rate_limit = fake.rate_limit()
            if number in fake.slow:
                time.sleep(0.1)
            headers = {"RateLimit-Policy": '"per-user";q=200;w=120;qu="request"', "RateLimit": rate_limit} | headers
            self._send(status, headers, document)

        def _send(self, status: int, headers: Mapping[str, str], document: Any) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


# ---- running the command -------------------------------------------------------------------------
class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def score(
    api: FakeApi,
    clock: Clock,
    source: Path,
    out: Path,
    *extra: str,
    transport: Any = None,
    stderr: io.StringIO | None = None,
    mint: Any = None,
    url: str | None = None,
) -> tuple[int, str]:
    stream = stderr or io.StringIO()
    argv = ["score", str(source), str(out), "--url", url or api.url, *extra]
    code = cli.main(argv, transport=transport, clock=clock, stderr=stream, environ={}, mint=mint or (lambda: "dev"))
    return code, stream.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def texts_file(tmp_path: Path, count: int, name: str = "in.csv") -> Path:
    words = ("good", "bad", "so-so")
    return write_csv(tmp_path / name, ["id", "text"], [[str(i), f"{words[i % 3]} {i}"] for i in range(count)])


# ---- rows --------------------------------------------------------------------------------------
def test_every_row_in_input_order_with_its_columns_and_local_errors(api: FakeApi, clock: FakeClock, tmp_path: Path):
    rows = [[str(i), f"{('good', 'bad', 'meh')[i % 3]} {i}", f"x{i}"] for i in range(57)]
    rows[3][1] = ""  # EMPTY_TEXT, never sent
    rows[4][1] = " \t\n"  # EMPTY_TEXT
    rows[5][1] = "g" * 1025  # VALIDATION_ERROR (over 1,024 characters)
    rows[6][1] = 'good, "quoted"\nnew line, ünïcødé 😀'
    rows[7] = ["7"]  # MALFORMED_ROW: fewer fields than the header
    source = tmp_path / "in.csv"
    write_csv(source, ["id", "text", "other"], rows)
    source.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())  # a BOM, as Excel writes

    code, err = score(api, clock, source, tmp_path / "out.csv", "--concurrency", "4")

    assert code == 0, err
    out = read_csv(tmp_path / "out.csv")
    assert list(out[0]) == ["id", "text", "other", *OUTPUT_COLUMNS]
    assert [row["id"] for row in out] == [str(i) for i in range(57)]
    assert {3: "EMPTY_TEXT", 4: "EMPTY_TEXT", 5: "VALIDATION_ERROR", 7: "MALFORMED_ROW"} == {
        i: row["error"] for i, row in enumerate(out) if row["error"]
    }
    assert out[7] | {"error": ""} == {"id": "7", "text": "", "other": ""} | dict.fromkeys(OUTPUT_COLUMNS, "")
    for i, row in enumerate(out):
        if i in (3, 4, 5, 7):
            assert row["sentiment"] == row["model_version"] == ""
            continue
        assert row["text"] == rows[i][1] and row["other"] == rows[i][2]
        label = label_of(rows[i][1])
        assert row["sentiment"] == label and row["model_version"] == MODEL_VERSION
        assert float(row["score_positive"]) == SCORES[label]["positive"]
    sent = api.texts
    assert sorted(sent) == sorted(rows[i][1] for i in range(57) if i not in (3, 4, 5, 7))
    assert all(len(batch) <= 25 for batch in api.batches)
    assert all(r["headers"]["authorization"] == "Bearer dev" for r in api.requests)
    assert all(r["headers"]["content-type"] == "application/json" for r in api.requests)
    assert not (tmp_path / "out.csv.partial").exists()


def test_item_errors_become_error_rows_and_the_others_are_scored(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source = write_csv(tmp_path / "in.csv", ["text"], [["good"], ["#reject# bad"], ["bad"]])
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert code == 0, err
    assert [(r["sentiment"], r["error"]) for r in read_csv(tmp_path / "out.csv")] == [
        ("positive", ""),
        ("", "VALIDATION_ERROR"),
        ("negative", ""),
    ]


def test_an_answer_without_scores(api: FakeApi, clock: FakeClock, tmp_path: Path):
    results = [{"index": 0, "sentiment": "neutral"}, {"index": 1, "sentiment": "positive"}]
    api.script.append((200, {}, {"results": results, "errors": []}))
    source = write_csv(tmp_path / "in.csv", ["text"], [["a"], ["b"]])
    code, _ = score(api, clock, source, tmp_path / "out.csv")
    out = read_csv(tmp_path / "out.csv")
    assert code == 0
    assert (out[0]["sentiment"], out[0]["score_neutral"], out[0]["model_version"]) == ("neutral", "", "")
    assert out[1]["sentiment"] == "positive"


def answer_of(results: list[tuple[int, str]], errors: tuple[int, ...] = ()) -> tuple[int, dict[str, str], Any]:
    return (
        200,
        {},
        {
            "results": [{"index": i, "sentiment": label, "scores": SCORES.get(label)} for i, label in results],
            "errors": [{"index": i, "code": "VALIDATION_ERROR", "message": "refused"} for i in errors],
            "model_version": MODEL_VERSION,
        },
    )


@pytest.mark.parametrize(
    "bad",
    [
        answer_of([(0, "positive"), (0, "negative")]),  # index 0 twice: "bad 1" would get "good 0"'s label
        answer_of([(1, "negative"), (1, "negative")]),
        answer_of([(0, "positive")], errors=(0,)),  # one index in results and in errors
        answer_of([(0, "positive"), (2, "negative")]),  # out of range
        answer_of([(0, "positive")]),  # index 1 missing
        answer_of([(0, "positive"), (1, "very negative")]),  # not a label
    ],
)
def test_a_200_that_misnumbers_its_items_is_retried(api: FakeApi, clock: FakeClock, tmp_path: Path, bad: Any):
    api.script.append(bad)
    source = write_csv(tmp_path / "in.csv", ["text"], [["good 0"], ["bad 1"]])
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert code == 0, err
    assert [row["sentiment"] for row in read_csv(tmp_path / "out.csv")] == ["positive", "negative"]
    assert "retries: 1 (bad answer: 1)" in err and len(api.requests) == 2


def test_bad_answers_that_run_out_of_retries_are_retried_by_a_rerun(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    api.script.extend([answer_of([(0, "positive")] * 25)] * 4)  # the first batch, 4 attempts
    code, err = score(api, clock, source, out, "--concurrency", "1")
    assert code == 1, err
    assert [row["error"] for row in read_csv(out)] == ["BAD_RESPONSE"] * 25 + [""] * 5
    api.batches.clear()
    code, err = score(api, clock, source, out)
    assert code == 0, err
    assert len(api.texts) == 25 and all(row["sentiment"] == label_of(row["text"]) for row in read_csv(out))


def test_a_scored_file_scored_again_keeps_one_set_of_output_columns(api: FakeApi, clock: FakeClock, tmp_path: Path):
    score(api, clock, texts_file(tmp_path, 3), tmp_path / "once.csv")
    code, err = score(api, clock, tmp_path / "once.csv", tmp_path / "twice.csv", "--overwrite-columns")
    assert code == 0, err
    assert read_csv(tmp_path / "twice.csv") == read_csv(tmp_path / "once.csv")
    # and resumed: the input's own output columns are overwritten, not compared
    (tmp_path / "twice.csv").unlink()
    argv = ("--batch-size", "1", "--concurrency", "1", "--overwrite-columns")
    code, _ = score(api, clock, tmp_path / "once.csv", tmp_path / "twice.csv", *argv, transport=InterruptAfter(1))
    assert code == 130
    code, err = score(api, FakeClock(), tmp_path / "once.csv", tmp_path / "twice.csv", *argv)
    assert code == 0, err
    assert "resuming: 1 rows kept" in err and read_csv(tmp_path / "twice.csv") == read_csv(tmp_path / "once.csv")


@pytest.mark.parametrize(
    ("columns", "named"),
    [
        (["id", "text", "sentiment"], "column 'sentiment'"),
        (["error", "text"], "column 'error'"),
        (["text", "score_positive", "model_version"], "columns 'score_positive', 'model_version'"),
    ],
)
def test_an_input_column_named_like_an_output_column_is_refused(
    api: FakeApi, clock: FakeClock, tmp_path: Path, columns: list[str], named: str
):
    source = write_csv(tmp_path / "in.csv", columns, [[f"mine {i}" for i in range(len(columns))]])
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert (code, err) == (
        2,
        f"error: the input already has the output's {named}: rename them, or pass --overwrite-columns to write "
        "the output's values in them (a scored file scored again)\n",
    )
    assert api.requests == [] and not (tmp_path / "out.csv").exists()
    code, err = score(api, clock, source, tmp_path / "out.csv", "--overwrite-columns")
    assert code == 0, err
    [row] = read_csv(tmp_path / "out.csv")
    assert list(row) == [*columns, *(name for name in OUTPUT_COLUMNS if name not in columns)]
    assert row["sentiment"] == "neutral" and row["error"] == "" and row["model_version"] == MODEL_VERSION


def test_a_blank_line_of_a_one_column_file_is_a_row_with_an_empty_text(api: FakeApi, clock: FakeClock, tmp_path: Path):
    (tmp_path / "in.csv").write_text("text\ngood one\n\nbad one\n", encoding="utf-8")
    code, err = score(api, clock, tmp_path / "in.csv", tmp_path / "out.csv")
    assert code == 0, err
    out = read_csv(tmp_path / "out.csv")
    assert [(row["text"], row["sentiment"], row["error"]) for row in out] == [
        ("good one", "positive", ""),
        ("", "", "EMPTY_TEXT"),
        ("bad one", "negative", ""),
    ]
    assert "scored 3 of 3 rows" in err and "errors: EMPTY_TEXT 1 (33.3 %)" in err and "blank lines" not in err
    assert api.texts == ["good one", "bad one"]
    # a rerun keeps all three
    assert score(api, clock, tmp_path / "in.csv", tmp_path / "out.csv")[0] == 0 and len(api.texts) == 2


def test_blank_lines_of_a_multi_column_file_are_counted(api: FakeApi, clock: FakeClock, tmp_path: Path):
    (tmp_path / "in.csv").write_text("id,text\n1,good one\n\n2,bad one\r\n\r\n3,meh\n", encoding="utf-8")
    code, err = score(api, clock, tmp_path / "in.csv", tmp_path / "out.csv")
    assert code == 0, err
    assert [row["id"] for row in read_csv(tmp_path / "out.csv")] == ["1", "2", "3"]
    assert "scored 3 of 3 rows" in err
    assert "blank lines skipped: 2 (not rows of a file with several columns)" in err.splitlines()


# ---- batches -------------------------------------------------------------------------------------
def test_batches_are_split_to_stay_within_32768_bytes(api: FakeApi, clock: FakeClock, tmp_path: Path):
    emoji = "😀" * 1024  # 1,024 characters, 4 bytes each: 25 of them would be a 102 KB body
    source = write_csv(tmp_path / "in.csv", ["text"], [[emoji] for _ in range(25)])
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert code == 0, err
    assert sorted(len(batch) for batch in api.batches) == [4, 7, 7, 7]
    assert max(r["size"] for r in api.requests) <= MAX_BODY_BYTES
    assert all(row["sentiment"] == "neutral" for row in read_csv(tmp_path / "out.csv"))


def test_batch_size_and_concurrency_options(api: FakeApi, clock: FakeClock, tmp_path: Path):
    code, _ = score(api, clock, texts_file(tmp_path, 23), tmp_path / "out.csv", "--batch-size", "5")
    assert code == 0
    assert sorted(len(batch) for batch in api.batches) == [3, 5, 5, 5, 5]
    code, err = score(api, clock, texts_file(tmp_path, 3), tmp_path / "o.csv", "--batch-size", "26")
    assert (code, err.strip()) == (2, "error: --batch-size must be 1..25")


# ---- retries and rate limits ---------------------------------------------------------------------
def test_429_waits_retry_after_with_every_sender(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.append((429, {"Retry-After": "7", "RateLimit": '"per-user";r=0;t=7'}, error_body("RATE_LIMITED")))
    code, err = score(api, clock, texts_file(tmp_path, 100), tmp_path / "out.csv", "--concurrency", "1")
    assert code == 0, err
    assert clock.sleeps == [pytest.approx(7.0)]
    first, second = api.requests[0]["t"], api.requests[1]["t"]
    assert second - first >= 7.0  # the retry went after Retry-After
    assert len(read_csv(tmp_path / "out.csv")) == 100 and len(api.texts) == 100
    assert "retries: 1 (429: 1); rate-limit pauses: 1 (7 s)" in err


def test_ratelimit_r0_pauses_all_senders_until_t(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.rate_limit = lambda: '"per-user";r=0;t=30' if api.answered == 1 else '"per-user";r=100;t=5'
    api.slow = {1, 2}  # the other two first answers come after the r=0 one has been read
    code, err = score(api, clock, texts_file(tmp_path, 250), tmp_path / "out.csv", "--concurrency", "3")
    assert code == 0, err
    start = api.requests[0]["t"]
    during_pause = [r for r in api.requests if r["t"] < start + 30]
    assert len(during_pause) <= 3  # only the batches already in flight when the first answer said r=0
    assert len(api.requests) == 10 and sum(clock.sleeps) >= 29.0


def test_429_without_headers_backs_off(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.append((429, {"RateLimit": '"per-user";r=3;t=1'}, {"message": "Too Many Requests"}))
    code, _ = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv")
    assert code == 0
    assert len(clock.sleeps) == 1 and 0.25 <= clock.sleeps[0] <= 0.5  # the first backoff step, jittered


def test_503_retry_after_then_capped_backoff(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.extend(
        [(503, {"Retry-After": "2"}, error_body("MODEL_UNAVAILABLE")), (503, {}, error_body("MODEL_UNAVAILABLE"))]
    )
    code, err = score(api, clock, texts_file(tmp_path, 10), tmp_path / "out.csv")
    assert code == 0, err
    assert clock.sleeps[0] == 2.0 and 0.5 <= clock.sleeps[1] <= 1.0
    assert len(api.requests) == 3
    assert all(row["sentiment"] for row in read_csv(tmp_path / "out.csv"))


def test_502_504_and_a_dropped_connection_are_retried(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.extend([(502, {}, {"message": "Internal Server Error"}), (504, {}, error_body("UPSTREAM_TIMEOUT"))])
    api.script.append("drop")
    code, err = score(api, clock, texts_file(tmp_path, 10), tmp_path / "out.csv")
    assert code == 0, err
    assert "retries: 3 (502: 1, 504: 1, connection: 1)" in err
    assert len(api.batches) == 1


def test_retries_that_run_out_mark_the_rows_and_a_rerun_retries_them(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source = texts_file(tmp_path, 30)
    api.script.extend([(503, {}, error_body("MODEL_UNAVAILABLE"))] * 6)  # batch 1 (rows 0..24): 6 attempts
    code, err = score(api, clock, source, tmp_path / "out.csv", "--concurrency", "1")
    out = read_csv(tmp_path / "out.csv")
    assert code == 1
    assert [row["error"] for row in out] == ["MODEL_UNAVAILABLE"] * 25 + [""] * 5
    assert "errors: MODEL_UNAVAILABLE 25 (83.3 %)" in err
    assert "25 rows failed for a passing reason: rerun the same command to retry them" in err

    api.batches.clear()
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert code == 0, err
    assert api.texts == [f"{('good', 'bad', 'so-so')[i % 3]} {i}" for i in range(25)]
    out = read_csv(tmp_path / "out.csv")
    assert [row["id"] for row in out] == [str(i) for i in range(30)] and all(row["sentiment"] for row in out)
    assert "30 of 30 rows" in err and "25 this run, 5 kept from a previous run" in err


def test_three_batches_in_a_row_out_of_retries_stop_the_run(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.extend([(503, {}, error_body("MODEL_UNAVAILABLE"))] * 18)
    code, err = score(api, clock, texts_file(tmp_path, 100), tmp_path / "out.csv", "--concurrency", "1")
    assert code == 2
    assert err.splitlines()[-1].startswith(
        "error: 3 batches in a row failed after their retries (last: MODEL_UNAVAILABLE)"
    )
    assert "rerun the same command to resume" in err
    assert not (tmp_path / "out.csv").exists() and (tmp_path / "out.csv.partial").exists()


def test_an_api_that_stops_answering_stops_the_run(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 60), tmp_path / "out.csv"
    api.script.extend([(200, {}, {"results": [{"index": i, "sentiment": "neutral"} for i in range(25)]})])
    api.script.extend(["drop"] * 4)
    code, err = score(api, clock, source, out, "--concurrency", "1")
    assert code == 2
    assert err.splitlines()[-1] == (
        f"error: cannot reach the API at {api.url} (no answer in 4 attempts; last: connection lost "
        "(RemoteDisconnected: Remote end closed connection without response)): check --url and the network; "
        "the rows done so far are in "
        f"{out}.partial: rerun the same command to resume"
    )
    assert len(read_csv(tmp_path / "out.csv.partial")) == 25


def test_a_batch_refused_with_400_is_split_and_sent_again(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.append((400, {}, error_body("INVALID_JSON")))
    code, err = score(api, clock, texts_file(tmp_path, 30), tmp_path / "out.csv", "--concurrency", "1")
    out = read_csv(tmp_path / "out.csv")
    assert code == 0, err
    assert all(row["sentiment"] == label_of(row["text"]) and not row["error"] for row in out)
    assert [len(batch) for batch in api.batches] == [12, 13, 5] and clock.sleeps == []
    assert "refused batches split: 1" in err


def test_only_the_text_a_400_refuses_on_its_own_keeps_the_error(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    rows = list(csv.reader(source.open(encoding="utf-8", newline="")))
    rows[1 + 7][1] = "#refuse# good"  # the whole request is refused with 400 VALIDATION_ERROR
    write_csv(source, rows[0], rows[1:])
    code, err = score(api, clock, source, out, "--concurrency", "1")
    assert code == 0, err
    assert {i: row["error"] for i, row in enumerate(read_csv(out)) if row["error"]} == {7: "VALIDATION_ERROR"}
    assert sorted(api.texts) == sorted(row[1] for row in rows[1:] if "#refuse#" not in row[1])
    # 25 → 12 → 6 → 3 → 2 → 1 refused, each sibling answered: the row's own error, kept by a rerun
    assert len(api.requests) == 2 + 2 * 5
    requests = len(api.requests)
    assert score(api, clock, source, out)[0] == 0 and len(api.requests) == requests


def test_batches_refused_even_one_by_one_stop_the_run_and_a_rerun_retries_them(
    api: FakeApi, clock: FakeClock, tmp_path: Path
):
    source, out = texts_file(tmp_path, 10), tmp_path / "out.csv"
    api.script.extend([(400, {}, error_body("INVALID_JSON"))] * 9)  # 3 batches of 2: 3 requests each
    code, err = score(api, clock, source, out, "--concurrency", "1", "--batch-size", "2")
    assert code == 2
    assert "error: 3 batches in a row failed after their retries (last: INVALID_JSON)" in err
    assert [row["error"] for row in read_csv(tmp_path / "out.csv.partial")] == ["INVALID_JSON"] * 4
    code, err = score(api, FakeClock(), source, out)  # not a permanent error: sent again
    assert code == 0, err
    assert all(row["sentiment"] for row in read_csv(out))


def test_a_batch_refused_with_415_is_not_split_and_a_rerun_retries_it(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    api.script.append((415, {}, error_body("UNSUPPORTED_MEDIA_TYPE")))
    code, _ = score(api, clock, source, out, "--concurrency", "1")
    assert code == 1
    assert [row["error"] for row in read_csv(out)] == ["UNSUPPORTED_MEDIA_TYPE"] * 25 + [""] * 5
    assert len(api.requests) == 2 and clock.sleeps == []
    assert score(api, clock, source, out)[0] == 0 and all(row["sentiment"] for row in read_csv(out))


# ---- clear errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "body"), [(401, {"message": "Unauthorized"}), (403, {"message": "Forbidden"})])
def test_a_refused_token_is_a_clear_error(api: FakeApi, clock: FakeClock, tmp_path: Path, status: int, body: Any):
    api.script.append((status, {}, body))
    code, err = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv", "--token", "expired")
    assert code == 2
    assert err == (
        f"error: the API refused the token ({status} {body['message']}): pass a valid token with --token or "
        "$SENTIMENT_API_TOKEN\n"
    )


def test_a_refused_development_token_is_minted_again(api: FakeApi, clock: FakeClock, tmp_path: Path):
    api.script.append((401, {}, {"message": "Unauthorized"}))
    tokens = iter(["old", "new"])
    code, _ = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv", mint=lambda: next(tokens))
    assert code == 0
    assert [r["headers"]["authorization"] for r in api.requests] == ["Bearer old", "Bearer new"]


def test_an_unreachable_api_is_a_clear_error(api: FakeApi, clock: FakeClock, tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    url = f"http://127.0.0.1:{port}"
    code, err = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv", url=url)
    assert code == 2
    assert err == (
        f"error: cannot reach the API at {url} (connection refused): is the local stack running? "
        "Start it with `make run` (or pass --url)\n"
    )


def test_a_url_that_is_not_the_api(api: FakeApi, clock: FakeClock, tmp_path: Path):
    code, err = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv", url=api.url + "/prod")
    assert code == 2
    assert err == f"error: {api.url}/prod/predict/batch answered 404: this URL is not the sentiment API (check --url)\n"


def test_a_remote_url_needs_a_token(api: FakeApi, clock: FakeClock, tmp_path: Path):
    code, err = score(api, clock, texts_file(tmp_path, 5), tmp_path / "out.csv", url="https://api.example.com/v1")
    assert code == 2
    assert err == "error: no token for https://api.example.com/v1: pass --token or set SENTIMENT_API_TOKEN\n"
    assert api.requests == []


def test_missing_file_and_missing_column_are_clear_errors(api: FakeApi, clock: FakeClock, tmp_path: Path):
    code, err = score(api, clock, tmp_path / "nope.csv", tmp_path / "out.csv")
    assert (code, err) == (2, f"error: input file not found: {tmp_path / 'nope.csv'}\n")
    source = write_csv(tmp_path / "in.csv", ["id", "review"], [["1", "good"]])
    code, err = score(api, clock, source, tmp_path / "out.csv")
    assert (code, err) == (
        2,
        "error: the input has no column 'text'; its columns: 'id', 'review' (choose one with --column)\n",
    )
    code, err = score(api, clock, source, tmp_path / "out.csv", "--column", "review")
    assert code == 0, err
    assert read_csv(tmp_path / "out.csv")[0]["sentiment"] == "positive"


def test_an_input_that_is_not_utf8_is_a_clear_error(api: FakeApi, clock: FakeClock, tmp_path: Path):
    (tmp_path / "in.csv").write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    code, err = score(api, clock, tmp_path / "in.csv", tmp_path / "out.csv")
    assert code == 2 and err.startswith(f"error: {tmp_path / 'in.csv'} is not UTF-8 text") and api.requests == []


def test_the_development_token_comes_from_the_local_stack():
    token = cli.resolve_token("http://127.0.0.1:3000", None).get()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "score-client" and claims["scope"] == "sentiment-api/predict"


# ---- resume --------------------------------------------------------------------------------------
class InterruptAfter:
    """The real transport, until Ctrl-C arrives during request number `calls` + 1."""

    def __init__(self, calls: int) -> None:
        self.left = calls
        self.inner = UrllibTransport()
        self.lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        with self.lock:
            if self.left == 0:
                raise KeyboardInterrupt
            self.left -= 1
        return self.inner.post(url, body, headers, timeout_s)


def test_an_interrupted_run_resumes_with_the_remaining_rows(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 100), tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    argv = ("--batch-size", "10", "--concurrency", "1")
    code, err = score(api, clock, source, out, *argv, transport=InterruptAfter(3))
    assert code == 130
    assert err.splitlines()[-2:] == [f"saved in {partial}: rerun the same command to resume", "interrupted"]
    assert not out.exists()
    assert [row["id"] for row in read_csv(partial)] == [str(i) for i in range(30)]

    api.batches.clear()
    code, err = score(api, FakeClock(), source, out, *argv)
    assert code == 0, err
    assert api.texts == [f"{('good', 'bad', 'so-so')[i % 3]} {i}" for i in range(30, 100)]
    rows = read_csv(out)
    assert [row["id"] for row in rows] == [str(i) for i in range(100)]
    assert all(row["sentiment"] == label_of(row["text"]) for row in rows)
    assert not partial.exists()
    assert "resuming: 30 rows kept from the previous run, 70 to score" in err

    api.batches.clear()  # a third run has nothing left to do
    assert score(api, FakeClock(), source, out)[0] == 0 and api.batches == []
    assert read_csv(out) == rows


def test_an_interrupted_concurrent_run_never_loses_or_mixes_rows(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 200), tmp_path / "out.csv"
    code, _ = score(api, clock, source, out, "--batch-size", "10", transport=InterruptAfter(9))
    assert code == 130
    saved = read_csv(tmp_path / "out.csv.partial")
    assert [row["id"] for row in saved] == [str(i) for i in range(len(saved))] and len(saved) <= 90
    code, _ = score(api, FakeClock(), source, out, "--batch-size", "10")
    assert code == 0
    assert [row["id"] for row in read_csv(out)] == [str(i) for i in range(200)]


def test_a_row_cut_short_by_a_crash_is_sent_again(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 40), tmp_path / "out.csv"
    score(api, clock, source, out, "--batch-size", "10", "--concurrency", "1", transport=InterruptAfter(2))
    partial = tmp_path / "out.csv.partial"
    with partial.open("a", encoding="utf-8", newline="") as handle:
        handle.write("20,so-so 20,neutral,0.1,0.7,0.2,minilm-ft-test,")  # every field, but cut before its line end
    api.batches.clear()
    code, err = score(api, FakeClock(), source, out, "--batch-size", "10")
    assert code == 0, err
    assert sorted(api.texts) == sorted(f"{('good', 'bad', 'so-so')[i % 3]} {i}" for i in range(20, 40))
    assert [row["id"] for row in read_csv(out)] == [str(i) for i in range(40)]


def test_a_saved_file_of_another_input_is_refused(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    score(api, clock, source, out, "--batch-size", "10", "--concurrency", "1", transport=InterruptAfter(2))
    rows = list(csv.reader(source.open(encoding="utf-8", newline="")))
    rows[6][1] = "changed"
    write_csv(source, rows[0], rows[1:])
    requests = len(api.requests)
    code, err = score(api, FakeClock(), source, out)
    assert code == 2
    assert err == (
        f"error: {tmp_path / 'out.csv.partial'} was not written for this input (its row 6 differs from row 6 of "
        f"{source} in column 'text'): remove it, choose another OUT, or pass --restart\n"
    )
    assert len(api.requests) == requests
    code, _ = score(api, FakeClock(), source, out, "--restart")
    assert code == 0 and read_csv(out)[5]["text"] == "changed"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda rows: [[str(100 * (int(row[0]) + 1)), *row[1:]] for row in rows],
            "row 1 differs from row 1 of {source} in column 'id'",
        ),
        (
            lambda rows: [*rows[:5], [*rows[5], "x"], *rows[6:]],
            "row 6 differs from row 6 of {source} in the number of fields",
        ),
        (lambda rows: [*rows[:2], rows[2][:1], *rows[3:]], "row 3 differs from row 3 of {source} in column 'text'"),
    ],
)
def test_a_saved_file_of_an_input_changed_in_another_column_is_refused(
    api: FakeApi, clock: FakeClock, tmp_path: Path, change: Any, why: str
):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    score(api, clock, source, out, "--batch-size", "10", "--concurrency", "1", transport=InterruptAfter(2))
    rows = list(csv.reader(source.open(encoding="utf-8", newline="")))
    write_csv(source, rows[0], change(rows[1:]))
    requests = len(api.requests)
    code, err = score(api, FakeClock(), source, out)
    assert (code, err) == (
        2,
        f"error: {out}.partial was not written for this input (its {why.format(source=source)}): remove it, "
        "choose another OUT, or pass --restart\n",
    )
    assert len(api.requests) == requests


def test_a_malformed_row_fixed_between_runs_is_not_kept(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", "good"], ["2"], ["3", "bad"]]), tmp_path / "o"
    assert score(api, clock, source, out)[0] == 0 and read_csv(out)[1]["error"] == "MALFORMED_ROW"
    write_csv(source, ["id", "text"], [["1", "good"], ["2", ""], ["3", "bad"]])  # same fields once padded
    code, err = score(api, clock, source, out)
    assert code == 2 and "its row 2 differs from row 2 of" in err and "in the number of fields" in err


# ---- one run per OUT -----------------------------------------------------------------------------
class DuringFirstRequest:
    """The real transport; during the first request, `action` runs (another run on the same OUT ...)."""

    def __init__(self, action: Any) -> None:
        self.action, self.results = action, []
        self.inner = UrllibTransport()
        self.lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        with self.lock:
            action, self.action = self.action, None
        if action is not None:
            self.results.append(action())
        return self.inner.post(url, body, headers, timeout_s)


def test_a_second_run_on_the_same_out_is_refused(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 600), tmp_path / "out.csv"
    second = DuringFirstRequest(lambda: (score(api, FakeClock(), source, out), len(api.requests)))
    code, err = score(api, clock, source, out, "--concurrency", "1", transport=second)
    assert code == 0, err
    [((second_code, second_err), requests_then)] = second.results
    assert (second_code, second_err) == (
        2,
        f"error: another run is writing {out} (process {os.getpid()}): {out}.lock is locked: wait for that run to "
        "end, or choose another OUT\n",
    )
    assert requests_then == 0  # the second run sent nothing (the first one sends its first request next)
    assert [row["id"] for row in read_csv(out)] == [str(i) for i in range(600)]
    assert len(api.texts) == 600 and not (tmp_path / "out.csv.lock").exists()
    assert score(api, FakeClock(), source, out)[0] == 0  # free again


def test_a_lock_file_left_by_a_killed_run_does_not_block(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 30), tmp_path / "out.csv"
    (tmp_path / "out.csv.lock").write_text("99999999\n")  # flock: the kernel freed the lock with its process
    assert score(api, clock, source, out)[0] == 0
    assert not (tmp_path / "out.csv.lock").exists()
    code, _ = score(api, clock, source, tmp_path / "o2.csv", transport=InterruptAfter(0))
    assert code == 130 and not (tmp_path / "o2.csv.lock").exists()  # removed however the run ends


def test_without_flock_the_lock_file_is_created_exclusively(
    api: FakeApi, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(files, "USE_FLOCK", False)
    source, out, lock = texts_file(tmp_path, 30), tmp_path / "out.csv", tmp_path / "out.csv.lock"
    lock.write_text("4242\n")
    code, err = score(api, clock, source, out)
    assert (code, err) == (
        2,
        f"error: another run is writing {out} (process 4242): {lock} exists; if no other run is active (one was "
        f"killed), remove {lock} and rerun\n",
    )
    assert api.requests == [] and lock.exists()
    lock.unlink()
    assert score(api, clock, source, out)[0] == 0 and not lock.exists() and len(read_csv(out)) == 30


def test_out_is_not_replaced_when_its_row_count_is_not_the_inputs(api: FakeApi, clock: FakeClock, tmp_path: Path):
    source, out = texts_file(tmp_path, 600), tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"

    def append_elsewhere() -> None:  # a writer that does not lock (an older client, another program)
        with partial.open("a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([[str(i), "x", "neutral", "", "", "", "", ""] for i in range(25)])

    code, err = score(api, clock, source, out, "--concurrency", "1", transport=DuringFirstRequest(append_elsewhere))
    assert (code, err.splitlines()[-1]) == (
        2,
        f"error: {partial} holds 625 rows for the 600 rows of {source} (did another program write to it?): {out} "
        "was not replaced; rerun with --restart",
    )
    assert not out.exists()


# ---- progress and summary ------------------------------------------------------------------------
def test_progress_lines_when_not_a_terminal_and_the_summary(api: FakeApi, clock: FakeClock, tmp_path: Path):
    rows = [[f"{('good', 'bad', 'so-so')[i % 3]} {i}"] for i in range(100)]
    rows[99] = [""]
    source = write_csv(tmp_path / "in.csv", ["text"], rows)
    code, err = score(api, clock, source, tmp_path / "out.csv", "--batch-size", "10", "--concurrency", "1")
    assert code == 0
    lines = err.splitlines()
    progress = [line for line in lines if line.startswith("progress: ")]
    assert [line.split(" rows")[0] for line in progress] == [f"progress: {n}/100" for n in range(10, 101, 10)]
    assert "(50 %)" in progress[4] and "texts/s, ETA " in progress[4]
    assert "\r" not in err
    assert lines[len(progress)].startswith("scored 100 of 100 rows in ")
    assert "texts/s; 100 this run, 0 kept from a previous run)" in lines[len(progress)]
    assert lines[len(progress) + 1 :] == [
        "labels: positive 33 (33.3 %), neutral 33 (33.3 %), negative 33 (33.3 %)",
        "errors: EMPTY_TEXT 1 (1.0 %)",
        f"wrote {tmp_path / 'out.csv'}",
    ]


def test_a_progress_bar_on_a_terminal(api: FakeApi, clock: FakeClock, tmp_path: Path):
    stream = TtyStream()
    code, _ = score(api, clock, texts_file(tmp_path, 60), tmp_path / "out.csv", "--batch-size", "10", stderr=stream)
    assert code == 0
    bar, _, last = stream.getvalue().rpartition("\r100% |")
    assert bar.startswith("\r") and " texts/s  ETA " in bar
    assert last.startswith("#" * 24 + "| 60/60 rows") and "\nscored 60 of 60 rows" in last


# ---- the entry point -----------------------------------------------------------------------------
def test_python_m_sentiment_client_runs_without_the_local_stack(tmp_path: Path):
    """Only client/ on the path (as against a deployed API): errors are one line and exit 2, no traceback."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(CLIENT_DIR)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sentiment_client", *argv]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)

    help_text = run("score", "--help")
    assert help_text.returncode == 0 and "exit status: 0 every row done" in help_text.stdout
    missing = run(
        "score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--url", "https://x.test", "--token", "t"
    )
    assert (missing.returncode, missing.stderr) == (2, f"error: input file not found: {tmp_path / 'in.csv'}\n")
    local = run("score", str(texts_file(tmp_path, 1)), str(tmp_path / "out.csv"))
    assert local.returncode == 2
    assert local.stderr.startswith("error: no token: pass --token or set SENTIMENT_API_TOKEN (a development token")
