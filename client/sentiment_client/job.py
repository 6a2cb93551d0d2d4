"""``score --mode job``: a file scored as one bulk job of the API (POST /jobs, the presigned upload, POST
/jobs/{job_id}/start, GET /jobs/{job_id} until it is done, the result downloaded), written to OUT with the
same columns and rows as the batch mode (every input column, then sentiment, the three scores,
model_version and error), in input order. For large files: the API scores them server-side, in chunks, and
the client only waits. A rerun starts a new job (nothing to resume); OUT is written whole, atomically, at
the end."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

from .api import Clock, Outcome, TokenSource
from .errors import ClientError
from .files import Layout, atomic_write, open_input
from .progress import duration, mix
from .transport import HttpResponse

#: The API's limit on a job's file (POST /jobs, size_bytes).
MAX_JOB_BYTES = 100 * 1024 * 1024
TERMINAL = ("SUCCEEDED", "FAILED")


@runtime_checkable
class JobTransport(Protocol):
    def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout_s: float
    ) -> HttpResponse: ...


@dataclass(slots=True)
class JobReport:
    job_id: str = ""
    rows: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def summary(self) -> list[str]:
        return [
            f"job {self.job_id}: scored {self.rows:,} rows in {duration(self.elapsed_s)}",
            f"labels: {mix(self.labels, order=('positive', 'neutral', 'negative'))}",
            f"errors: {mix(self.errors, total=self.rows)}",
        ]


class JobClient:
    def __init__(
        self,
        url: str,
        token: TokenSource,
        transport: JobTransport,
        clock: Clock,
        stderr: TextIO,
        *,
        timeout_s: float = 35.0,
        poll_s: float = 5.0,
        max_wait_s: float = 6 * 3600.0,
    ) -> None:
        self._url, self._token, self._transport, self._clock = url.rstrip("/"), token, transport, clock
        self._stderr, self._timeout_s, self._poll_s, self._max_wait_s = stderr, timeout_s, poll_s, max_wait_s

    def run(self, source: Path, out: Path, column: str, overwrite_columns: bool = False) -> JobReport:
        table = open_input(source)
        layout = Layout(table.header, column, overwrite=overwrite_columns)
        data = source.read_bytes()
        if len(data) > MAX_JOB_BYTES:
            raise ClientError(f"{source} is {len(data):,} bytes; a job takes at most {MAX_JOB_BYTES:,}: split it")
        began = self._clock.now()
        body = {"input_format": "csv", "text_field": column, "size_bytes": len(data)}
        job = self._api("POST", "/jobs", json.dumps(body).encode(), expect=(201,))
        upload = job["upload"]
        put = self._transport.send("PUT", upload["url"], data, upload["headers"], max(self._timeout_s, 300.0))
        if put.status != 200:
            raise ClientError(f"the upload of {source} was refused (HTTP {put.status})")
        self._api("POST", f"/jobs/{job['job_id']}/start", None, expect=(200, 202))
        state = self._wait(job["job_id"])
        if state["status"] == "FAILED":
            error = state.get("error") or {}
            raise ClientError(f"job {job['job_id']} failed: {error.get('code')}: {error.get('message')}")
        result = self._transport.send("GET", state["result"]["url"], None, {}, max(self._timeout_s, 300.0))
        if result.status != 200:
            raise ClientError(f"the result of job {job['job_id']} could not be downloaded (HTTP {result.status})")
        outcomes = read_result(result.body)
        report = JobReport(job["job_id"], elapsed_s=self._clock.now() - began)
        with atomic_write(out) as handle:
            writer = csv.writer(handle)
            writer.writerow(layout.header)
            for number, fields in enumerate(table.iter_rows(), start=1):
                outcome = outcomes.get(number)
                if outcome is None:
                    raise ClientError(f"the result of job {job['job_id']} has no row {number}: {out} not written")
                writer.writerow(layout.row(fields, outcome))
                report.rows += 1
                if outcome.error:
                    report.errors[outcome.error] += 1
                else:
                    report.labels[outcome.sentiment] += 1
        if report.rows != len(outcomes):
            raise ClientError(f"the result of job {job['job_id']} has {len(outcomes)} rows, the input {report.rows}")
        return report

    def _wait(self, job_id: str) -> dict[str, Any]:
        """Polls every poll_s (12 requests a minute of the per-user limit) until the job ends, or gives up
        after max_wait_s with the job's id (the job goes on: GET /jobs/<id> later)."""
        shown, deadline = None, self._clock.now() + self._max_wait_s
        while True:
            if self._clock.now() > deadline:
                raise ClientError(
                    f"job {job_id} not done after {self._max_wait_s:,.0f} s: check it later with GET /jobs/{job_id}"
                )
            state = self._api("GET", f"/jobs/{job_id}", None, expect=(200,))
            progress = state["progress"]
            line = f"job {job_id}: {state['status']} {progress['rows_done']:,} of {progress['rows_total'] or '?'} rows"
            if line != shown:
                self._stderr.write(line + "\n")
                self._stderr.flush()
                shown = line
            if state["status"] in TERMINAL:
                return state
            self._clock.sleep(self._poll_s)

    def _api(self, method: str, path: str, body: bytes | None, expect: tuple[int, ...]) -> dict[str, Any]:
        for _ in range(5):
            headers = {"authorization": f"Bearer {self._token.get()}", "accept": "application/json"}
            if body is not None:
                headers["content-type"] = "application/json"
            answer = self._transport.send(method, f"{self._url}{path}", body, headers, self._timeout_s)
            if answer.status in expect:
                document: dict[str, Any] = json.loads(answer.body)
                return document
            if answer.status in (429, 503):  # the per-user limit or a passing failure: wait as told, retry
                self._clock.sleep(float(answer.header("retry-after") or 2))
                continue
            if answer.status == 401 and self._token.refresh():
                continue
            raise ClientError(f"{method} {path}: HTTP {answer.status}: {_message(answer)}")
        raise ClientError(f"{method} {path}: still refused after 5 attempts ({answer.status})")


def _message(answer: HttpResponse) -> str:
    try:
        error = json.loads(answer.body).get("error") or {}
    except (ValueError, AttributeError):
        return answer.body[:200].decode("utf-8", "replace")
    return f"{error.get('code')}: {error.get('message')}"


def read_result(body: bytes) -> dict[int, Outcome]:
    """Row number -> outcome, from a job's CSV result."""
    outcomes = {}
    for record in csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")):
        values = [record[f"score_{label}"] for label in ("negative", "neutral", "positive")]
        scores = (float(values[0]), float(values[1]), float(values[2])) if all(values) else None
        outcomes[int(record["row"])] = Outcome(
            sentiment=record["sentiment"],
            scores=scores,
            model_version=record["model_version"],
            error=record["error"],
        )
    return outcomes
