"""Bulk scoring jobs: the job record and its store (one DynamoDB item per job), shared by the jobs API
(POST /jobs, GET /jobs/{job_id}, POST /jobs/{job_id}/start) and the jobs worker (the state machine's tasks).

The item's key is (``owner``, ``job_id``): ``owner`` is the caller's key (``ratelimit.caller_key``: a hash of
the token's issuer and subject), so a job is only ever read under its owner's key. Anyone else asking for
the same id reads a key that does not exist: the same 404 as an unknown id, and no way to tell them apart.

Life of a job (every transition one conditional UpdateItem, so a retried task or request changes nothing
twice)::

    AWAITING_UPLOAD --start--> QUEUED --prepare--> RUNNING --finish--> SUCCEEDED
                        \\            \\                \\--fail-->  FAILED
                         \\            \\--fail--> FAILED
                          \\--start (input refused)--> FAILED

Progress: each chunk of rows adds its rows and labels once (``chunk_done``: the chunk's number goes into the
``chunks_done`` set in the same write, under the condition that it is not there yet), so a chunk that Step
Functions runs twice (its answer lost after it succeeded) is counted once. The final counts are the result
file's own (``succeed``), not the sum of the progress writes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from sentiment_api import aws

AWAITING_UPLOAD, QUEUED, RUNNING, SUCCEEDED, FAILED = "AWAITING_UPLOAD", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED"
STATUSES = (AWAITING_UPLOAD, QUEUED, RUNNING, SUCCEEDED, FAILED)
TERMINAL = frozenset({SUCCEEDED, FAILED})
INPUT_FORMATS = ("csv", "jsonl")
COUNT_NAMES = ("positive", "neutral", "negative", "errors")
#: 32 lower-case hex digits (128 random bits); anything else is not a job id (404 without a read).
JOB_ID_LENGTH = 32


def new_job_id() -> str:
    return secrets.token_hex(JOB_ID_LENGTH // 2)


def is_job_id(value: str) -> bool:
    return len(value) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Job:
    owner: str
    job_id: str
    status: str
    input_format: str
    text_field: str
    created_at: int  # epoch seconds
    expires_at: int  # epoch seconds: the record's TTL and the end of the objects' lifecycle
    id_field: str | None = None
    size_bytes: int | None = None
    updated_at: int | None = None
    rows_total: int | None = None
    rows_done: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    model_version: str | None = None
    endpoint_name: str | None = None
    error: JobError | None = None
    chunks_done: frozenset[int] = frozenset()  # the chunks whose rows the progress counts (chunk_done)

    @property
    def input_key(self) -> str:
        return input_key(self.job_id)

    @property
    def result_key(self) -> str:
        return result_key(self.job_id, self.input_format)


# ---- the objects of a job, under one prefix per job ---------------------------------------------------------
def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def input_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}input"


def result_key(job_id: str, input_format: str) -> str:
    return f"{job_prefix(job_id)}result.{input_format}"


def chunk_key(job_id: str, chunk: int) -> str:
    return f"{job_prefix(job_id)}chunks/{chunk:05d}.jsonl"


def scored_key(job_id: str, chunk: int) -> str:
    return f"{job_prefix(job_id)}scored/{chunk:05d}.jsonl"


def manifest_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}chunks.json"


# ---- DynamoDB attribute values (botocore speaks the typed form) --------------------------------------------
def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"M": {"code": _s(code), "message": _s(message)}}


def _value(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value)
    if kind == "M":
        return {name: _value(item) for name, item in value.items()}
    if kind == "NS":
        return {int(v) for v in value}
    if kind == "NULL":
        return None
    raise ValueError(f"unexpected DynamoDB attribute type {kind}")


def job_from_item(item: Mapping[str, Any]) -> Job:
    values = {name: _value(attribute) for name, attribute in item.items()}
    error = values.get("error")
    return Job(
        owner=values["owner"],
        job_id=values["job_id"],
        status=values["status"],
        input_format=values["input_format"],
        text_field=values["text_field"],
        created_at=values["created_at"],
        expires_at=values["expires_at"],
        id_field=values.get("id_field"),
        size_bytes=values.get("size_bytes"),
        updated_at=values.get("updated_at"),
        rows_total=values.get("rows_total"),
        rows_done=values.get("rows_done", 0),
        counts={name: int(values.get("counts", {}).get(name, 0)) for name in COUNT_NAMES},
        model_version=values.get("model_version"),
        endpoint_name=values.get("endpoint_name"),
        error=JobError(error["code"], error["message"]) if isinstance(error, dict) else None,
        chunks_done=frozenset(values.get("chunks_done", set())),
    )


class JobStoreUnavailable(Exception):
    """The job table failed or timed out (the caller maps it: a 503, or a task that Step Functions retries)."""


class JobStore:
    """The jobs table. Every write is conditional on the status it expects; ``False`` means the condition
    failed (the job is not in that state any more: a retry, or another writer first)."""

    def __init__(self, client: Any, table: str, clock: Any = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    @classmethod
    def from_table(cls, table: str, connect_timeout_s: float = 0.5, read_timeout_s: float = 1.0) -> JobStore:
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"total_max_attempts": 2, "mode": "standard"},
        )
        return cls(aws.client("dynamodb", config), table)

    def _key(self, owner: str, job_id: str) -> dict[str, Any]:
        return {"owner": _s(owner), "job_id": _s(job_id)}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """One call; None when its condition failed."""
        try:
            response: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **kwargs)
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise JobStoreUnavailable(aws.error_code(exc) or "ClientError") from exc
        except BotoCoreError as exc:  # timeouts, connection failures
            raise JobStoreUnavailable(type(exc).__name__) from exc
        return response

    def now(self) -> int:
        return int(self._clock())

    def create(self, job: Job) -> None:
        item: dict[str, Any] = {
            **self._key(job.owner, job.job_id),
            "status": _s(job.status),
            "input_format": _s(job.input_format),
            "text_field": _s(job.text_field),
            "created_at": _n(job.created_at),
            "updated_at": _n(job.created_at),
            "expires_at": _n(job.expires_at),
            "rows_done": _n(0),
            "counts": {"M": {name: _n(0) for name in COUNT_NAMES}},
        }
        if job.id_field is not None:
            item["id_field"] = _s(job.id_field)
        if job.size_bytes is not None:
            item["size_bytes"] = _n(job.size_bytes)
        if self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(job_id)") is None:
            raise JobStoreUnavailable("job id collision")  # 128 random bits: never in practice

    def get(self, owner: str, job_id: str) -> Job | None:
        response = self._call("get_item", Key=self._key(owner, job_id), ConsistentRead=True) or {}
        item = response.get("Item")
        return job_from_item(item) if item else None

    def _transition(
        self, owner: str, job_id: str, from_statuses: tuple[str, ...], to_status: str, sets: Mapping[str, Any]
    ) -> bool:
        names = {"#status": "status", **{f"#{name}": name for name in sets}}
        values = {
            ":to": _s(to_status),
            ":now": _n(self.now()),
            **{f":{name}": value for name, value in sets.items()},
            **{f":from{i}": _s(status) for i, status in enumerate(from_statuses)},
        }
        assignments = ", ".join(["#status = :to", "updated_at = :now", *(f"#{name} = :{name}" for name in sets)])
        allowed = ", ".join(f":from{i}" for i in range(len(from_statuses)))
        response = self._call(
            "update_item",
            Key=self._key(owner, job_id),
            UpdateExpression=f"SET {assignments}",
            ConditionExpression=f"attribute_exists(job_id) AND #status IN ({allowed})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return response is not None

    def queue(self, owner: str, job_id: str, endpoint_name: str, size_bytes: int, expires_at: int) -> bool:
        """AWAITING_UPLOAD -> QUEUED, naming the endpoint the job will use (the one serving now); the record
        now expires ``expires_at`` (its retention counts from the start)."""
        sets = {"endpoint_name": _s(endpoint_name), "size_bytes": _n(size_bytes), "expires_at": _n(expires_at)}
        return self._transition(owner, job_id, (AWAITING_UPLOAD,), QUEUED, sets)

    def refuse_input(self, owner: str, job_id: str, code: str, message: str) -> bool:
        """AWAITING_UPLOAD -> FAILED: the start refused the uploaded file (never a job that is already queued
        or running: a concurrent start may have queued it meanwhile)."""
        return self._transition(owner, job_id, (AWAITING_UPLOAD,), FAILED, {"error": _error(code, message)})

    def run(self, owner: str, job_id: str, rows_total: int) -> bool:
        """QUEUED -> RUNNING with the number of rows (a repeated prepare finds it RUNNING: no change)."""
        return self._transition(owner, job_id, (QUEUED,), RUNNING, {"rows_total": _n(rows_total)})

    def chunk_done(self, owner: str, job_id: str, chunk: int, rows: int, counts: Mapping[str, int]) -> bool:
        """Adds one chunk's rows and labels to the progress, once per chunk (False: counted before, or the job
        is not running)."""
        adds = ", ".join(f"counts.#{name} :{name}" for name in COUNT_NAMES)
        response = self._call(
            "update_item",
            Key=self._key(owner, job_id),
            UpdateExpression=f"ADD rows_done :rows, chunks_done :chunk, {adds} SET updated_at = :now",
            ConditionExpression="#status = :running AND NOT contains(chunks_done, :number)",
            ExpressionAttributeNames={"#status": "status", **{f"#{name}": name for name in COUNT_NAMES}},
            ExpressionAttributeValues={
                ":rows": _n(rows),
                ":chunk": {"NS": [str(chunk)]},
                ":number": _n(chunk),
                ":running": _s(RUNNING),
                ":now": _n(self.now()),
                **{f":{name}": _n(counts.get(name, 0)) for name in COUNT_NAMES},
            },
        )
        return response is not None

    def succeed(self, owner: str, job_id: str, counts: Mapping[str, int], model_version: str | None) -> bool:
        """RUNNING -> SUCCEEDED with the result's own counts (rows_done = rows_total = every row)."""
        total = sum(counts.get(name, 0) for name in COUNT_NAMES)
        sets: dict[str, Any] = {
            "counts": {"M": {name: _n(counts.get(name, 0)) for name in COUNT_NAMES}},
            "rows_done": _n(total),
            "rows_total": _n(total),
        }
        if model_version:
            sets["model_version"] = _s(model_version)
        return self._transition(owner, job_id, (RUNNING,), SUCCEEDED, sets)

    def fail(self, owner: str, job_id: str, code: str, message: str) -> bool:
        """Any status but SUCCEEDED -> FAILED (a failure never overwrites a success; FAILED stays FAILED with
        its first error)."""
        return self._transition(
            owner, job_id, (AWAITING_UPLOAD, QUEUED, RUNNING), FAILED, {"error": _error(code, message)}
        )
