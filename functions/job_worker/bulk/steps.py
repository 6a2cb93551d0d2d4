"""The tasks of the jobs state machine, as plain functions. Each is safe to run twice (Step Functions
retries a task whose answer was lost after it succeeded): its writes are deterministic (the same objects
under the same keys) or conditional (JobStore).

prepare  the uploaded file -> chunks of rows (``chunks/NNNNN.jsonl``) and their manifest (``chunks.json``, the
         Distributed Map's ItemReader), the job RUNNING with its row count. A file-level problem
         (rows.InputRefused) fails the job with its code and ends the execution normally: it is the
         uploader's, not the service's.
score    one chunk -> its scored chunk (``scored/NNNNN.jsonl``), the job's progress. A chunk already scored
         (a retry after success) is not sent to the model again.
finish   the scored chunks, in order -> the result file; the job SUCCEEDED with the result's counts.
fail     the job FAILED (JOB_FAILED) after an error the state machine caught; what failed is logged.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SentimentEndpoint
from sentiment_api.errors import ModelTimeout, ModelUnavailable
from sentiment_core.contract import LABELS
from sentiment_core.wire import Prediction
from sentiment_jobs.store import (
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobStore,
    chunk_key,
    manifest_key,
    result_key,
    scored_key,
)

from . import results
from .config import WorkerSettings
from .objects import Bucket
from .results import Scored
from .rows import InputRefused, Row, read_rows

#: What the owner reads when the service failed the job (the details are in the worker's log).
JOB_FAILED_MESSAGE = (
    "The job could not be completed; start a new job with the same file. The operators have the details."
)


class JobNotFound(Exception):
    """The job record is gone (expired) or the event names no job: nothing to do."""


class JobNotRunnable(Exception):
    """The job is not in a state this task can work on (failed meanwhile, or never started)."""


class AwsCallFailed(Exception):
    """An S3 or DynamoDB call of a task failed (throttling, a timeout, a 5xx): the state machine retries it
    by this name (a botocore error's own class name, ClientError, says nothing to a Retry rule)."""


class ScoredChunkMissing(Exception):
    """finish found a chunk of the manifest without its scored object: a chunk failed for good (not retried)."""


@dataclass
class Worker:
    settings: WorkerSettings
    store: JobStore
    bucket: Bucket
    endpoint_for: Callable[[str], SentimentEndpoint]  # endpoint name -> client
    sleep: Callable[[float], None] = time.sleep
    log: Callable[..., None] = lambda message, **fields: None

    def _job(self, event: dict[str, Any]) -> Job:
        job = self.store.get(str(event["owner"]), str(event["job_id"]))
        if job is None:
            raise JobNotFound(str(event["job_id"]))
        return job

    # ---- prepare ------------------------------------------------------------------------------------------------
    def prepare(self, event: dict[str, Any]) -> dict[str, Any]:
        job = self._job(event)
        if job.status not in (QUEUED, RUNNING):
            raise JobNotRunnable(f"{job.job_id} is {job.status}")
        try:
            chunks, rows_total = self._write_chunks(job)
        except InputRefused as refused:
            self.store.fail(job.owner, job.job_id, refused.code, refused.message)
            self.log("job input refused", job_id=job.job_id, error_code=refused.code)
            return {"status": FAILED, "error_code": refused.code}
        manifest = [{"chunk": number, "rows": rows} for number, rows in enumerate(chunks)]
        self.bucket.write(manifest_key(job.job_id), json.dumps(manifest).encode(), "application/json")
        if not self.store.run(job.owner, job.job_id, rows_total) and self._job(event).status != RUNNING:
            raise JobNotRunnable(f"{job.job_id} left QUEUED meanwhile")
        self.log("job prepared", job_id=job.job_id, rows=rows_total, chunks=len(chunks))
        return {"status": RUNNING, "rows": rows_total, "chunks": len(chunks), "manifest_key": manifest_key(job.job_id)}

    def _write_chunks(self, job: Job) -> tuple[list[int], int]:
        stream, size = self.bucket.stream(job.input_key)
        if size > self.settings.max_input_bytes:  # replaced after the start's check, by its own upload URL
            limit = self.settings.max_input_bytes
            raise InputRefused("INPUT_TOO_LARGE", f"The file is {size:,} bytes; a job takes at most {limit:,} bytes.")
        rows = read_rows(stream, job.input_format, job.text_field, job.id_field, self.settings.max_rows)
        sizes: list[int] = []
        while batch := list(islice(rows, self.settings.chunk_rows)):
            self.bucket.write(chunk_key(job.job_id, len(sizes)), results.encode_chunk(batch), "application/jsonl")
            sizes.append(len(batch))
        return sizes, sum(sizes)

    # ---- score --------------------------------------------------------------------------------------------------
    def score(self, event: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        job = self._job(event)
        if job.status != RUNNING:
            raise JobNotRunnable(f"{job.job_id} is {job.status}")
        number = int(event["chunk"])
        key = scored_key(job.job_id, number)
        # Counted before: a retry after success, read back rather than sent to the model again. (The record
        # says so, not a HEAD of the object: without s3:ListBucket S3 answers a missing key with 403.) A chunk
        # written but not yet counted is scored again and overwritten: the same rows, counted once.
        if number in job.chunks_done:
            scored = results.decode_scored(self.bucket.read(key))
        else:
            rows = results.decode_chunk(self.bucket.read(chunk_key(job.job_id, number)))
            scored = self._score_rows(rows, self.endpoint_for(str(job.endpoint_name)), job.job_id, deadline)
            self.bucket.write(key, results.encode_scored(scored), "application/jsonl")
        counts = results.count(scored)
        self.store.chunk_done(job.owner, job.job_id, number, len(scored), counts)
        return {"chunk": number, "rows": len(scored)}

    def _score_rows(
        self, rows: Sequence[Row], endpoint: SentimentEndpoint, job_id: str, deadline: Deadline
    ) -> list[Scored]:
        texts = [row for row in rows if row.text is not None]
        answers: dict[int, Prediction] = {}
        size = self.settings.batch_texts
        for start in range(0, len(texts), size):
            batch = texts[start : start + size]
            predictions = self._classify(endpoint, [str(row.text) for row in batch], job_id, deadline)
            answers.update(zip((row.number for row in batch), predictions, strict=True))
        scored = []
        for row in rows:
            answer = answers.get(row.number)
            if answer is None:
                scored.append(Scored(row.number, row.id, error=row.error, message=row.message))
            else:
                scores = [answer.scores[label] for label in LABELS] if answer.scores else None
                scored.append(Scored(row.number, row.id, answer.label, scores, answer.model_version))
        return scored

    def _classify(
        self, endpoint: SentimentEndpoint, texts: list[str], job_id: str, deadline: Deadline
    ) -> list[Prediction]:
        """One call for a batch; a busy, unreachable or slow endpoint is asked again after a backoff (doubling),
        up to batch_attempts, while the invocation has time; then the error goes to Step Functions, which
        retries the chunk (its Retry) and at last fails the job. Answers that cannot be used (ModelError) are
        not retried here: the chunk's retry asks again."""
        wait = self.settings.backoff_s
        for attempt in range(1, self.settings.batch_attempts + 1):
            try:
                return endpoint.classify_batch(texts, f"job-{job_id}", deadline)
            except (ModelUnavailable, ModelTimeout) as exc:
                if attempt == self.settings.batch_attempts or not deadline.allows(wait + 1.0):
                    raise
                self.log("endpoint busy, retrying", job_id=job_id, error_code=exc.code, attempt=attempt)
                self.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")

    # ---- finish -------------------------------------------------------------------------------------------------
    def finish(self, event: dict[str, Any]) -> dict[str, Any]:
        job = self._job(event)
        if job.status == SUCCEEDED:
            return {"status": SUCCEEDED, "counts": dict(job.counts)}  # a retry after success
        if job.status != RUNNING:
            raise JobNotRunnable(f"{job.job_id} is {job.status}")
        manifest = json.loads(self.bucket.read(manifest_key(job.job_id)))
        missing = [int(e["chunk"]) for e in manifest if int(e["chunk"]) not in job.chunks_done]
        if missing:
            raise ScoredChunkMissing(f"{len(missing)} of {len(manifest)} chunks were not scored (first: {missing[0]})")
        counts: Counter[str] = Counter()
        versions: Counter[str] = Counter()

        def chunks() -> Iterator[list[Scored]]:
            for entry in manifest:
                scored = results.decode_scored(self.bucket.read(scored_key(job.job_id, int(entry["chunk"]))))
                if len(scored) != int(entry["rows"]):
                    raise ValueError(f"chunk {entry['chunk']} has {len(scored)} scored rows, expected {entry['rows']}")
                counts.update(results.count(scored))
                versions.update(row.model_version for row in scored if row.model_version)
                yield scored

        target = result_key(job.job_id, job.input_format)
        with self.bucket.writer(target, results.CONTENT_TYPES[job.input_format]) as out:
            for piece in results.result_lines(job.input_format, job.id_field is not None, chunks()):
                out.write(piece)
        # one version normally (the job is pinned to one endpoint); the schema holds 1,024 characters of a mix
        model_version = ",".join(sorted(versions))[:1024] or None
        if not self.store.succeed(job.owner, job.job_id, counts, model_version):
            if self._job(event).status == SUCCEEDED:  # a second finish (a retried invocation) was first: done
                return {"status": SUCCEEDED, "counts": dict(counts)}
            raise JobNotRunnable(f"{job.job_id} left RUNNING meanwhile")
        self.log(
            "job succeeded",
            job_id=job.job_id,
            rows=sum(counts.values()),
            **{f"count_{k}": v for k, v in counts.items()},
        )
        return {"status": SUCCEEDED, "counts": dict(counts)}

    # ---- fail ---------------------------------------------------------------------------------------------------
    def fail(self, event: dict[str, Any]) -> dict[str, Any]:
        cause = event.get("error") or {}
        error_type = str(cause.get("Error", "unknown"))[:128] if isinstance(cause, dict) else "unknown"
        changed = self.store.fail(str(event["owner"]), str(event["job_id"]), "JOB_FAILED", JOB_FAILED_MESSAGE)
        self.log("job failed", job_id=str(event["job_id"]), error_type=error_type, changed=changed)
        return {"status": FAILED, "error_type": error_type}
