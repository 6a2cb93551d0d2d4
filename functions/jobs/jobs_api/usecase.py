"""The jobs API's use cases, plain functions of the caller's key and the request: create a job (and its
upload URL), read it (with its result URL once it succeeded), start it. Nothing here knows API Gateway.

Starting is explicit (POST /jobs/{job_id}/start), not an S3 event: the client knows when its upload is
complete; the start checks the object (present, within the size limit) before anything runs, answers at
once with a clear error when it is not, and behaves the same on the local stack, which has no S3 events.
It is idempotent: the job moves AWAITING_UPLOAD -> QUEUED by a conditional write, and the execution is
named after the job, so a repeated start (a lost answer, a double click) never runs a job twice.

URLs are S3 presigned URLs (SigV4), valid for JOB_UPLOAD_URL_TTL_S / JOB_RESULT_URL_TTL_S. An upload URL
made with ``size_bytes`` signs the Content-Length: S3 refuses any other size. Without it, the size is
checked at start (over JOB_MAX_INPUT_BYTES: the job fails with INPUT_TOO_LARGE and the object is deleted)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from sentiment_api import aws
from sentiment_api.body import check_encodable, json_document
from sentiment_api.errors import InputTooLarge, JobNotFound, JobsUnavailable, UploadMissing
from sentiment_api.schemas import compile_schema, validate_input, validate_output
from sentiment_jobs.store import (
    AWAITING_UPLOAD,
    COUNT_NAMES,
    FAILED,
    QUEUED,
    SUCCEEDED,
    Job,
    JobStore,
    JobStoreUnavailable,
    is_job_id,
    new_job_id,
)

from .config import JobsSettings

SCHEMAS = Path(__file__).with_name("schemas")
_CREATE_REQUEST = compile_schema(SCHEMAS / "create_job_request.json")
_JOB_RESPONSE = compile_schema(SCHEMAS / "job_response.json")
#: A POST /jobs body is a few fields.
MAX_CREATE_BODY_BYTES = 2048
CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/jsonl"}
DAY_S = 86_400


def iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


class Jobs:
    def __init__(
        self, settings: JobsSettings, store: JobStore, s3: Any, sfn: Any, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings, self._store, self._s3, self._sfn, self._clock = settings, store, s3, sfn, clock

    # ---- POST /jobs ---------------------------------------------------------------------------------------------
    def create(self, owner: str, body: str | None, is_base64_encoded: bool, content_type: str | None) -> dict[str, Any]:
        example = '{"input_format": "csv", "text_field": "text"}'
        document = json_document(body, is_base64_encoded, content_type, MAX_CREATE_BODY_BYTES, example)
        request = validate_input(_CREATE_REQUEST, document)
        for name in ("text_field", "id_field"):
            if isinstance(request.get(name), str):
                check_encodable(request[name], name)
        if "size_bytes" in request:
            request["size_bytes"] = int(request["size_bytes"])  # JSON 1e2 is the integer 100 to the schema
        now = int(self._clock())
        job = Job(
            owner=owner,
            job_id=new_job_id(),
            status=AWAITING_UPLOAD,
            input_format=request["input_format"],
            text_field=request.get("text_field", "text"),
            id_field=request.get("id_field"),
            size_bytes=request.get("size_bytes"),
            created_at=now,
            expires_at=now + self._settings.retention_days * DAY_S,
        )
        _guarded(self._store.create, job)
        view = job_view(job)
        view["upload"] = self._upload(job, now)
        return validate_output(_JOB_RESPONSE, view, "job")

    def _upload(self, job: Job, now: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "Bucket": self._settings.bucket,
            "Key": job.input_key,
            "ContentType": CONTENT_TYPES[job.input_format],
        }
        headers = {"Content-Type": CONTENT_TYPES[job.input_format]}
        if job.size_bytes is not None:
            params["ContentLength"] = job.size_bytes  # signed: S3 refuses a body of any other size
            headers["Content-Length"] = str(job.size_bytes)
        ttl = self._settings.upload_url_ttl_s
        url = _guarded(self._s3.generate_presigned_url, "put_object", Params=params, ExpiresIn=ttl)
        return {"method": "PUT", "url": url, "headers": headers, "expires_at": iso(now + ttl)}

    # ---- GET /jobs/{job_id} -------------------------------------------------------------------------------------
    def get(self, owner: str, job_id: str) -> dict[str, Any]:
        return self._view(self._job(owner, job_id))

    def _view(self, job: Job) -> dict[str, Any]:
        view = job_view(job)
        if job.status == SUCCEEDED:
            view["result"] = self._result(job)
        return validate_output(_JOB_RESPONSE, view, "job")

    def _result(self, job: Job) -> dict[str, Any]:
        now = int(self._clock())
        ttl = max(1, min(self._settings.result_url_ttl_s, job.expires_at - now))
        filename = f"sentiment-{job.job_id}.{job.input_format}"
        params = {
            "Bucket": self._settings.bucket,
            "Key": job.result_key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        url = _guarded(self._s3.generate_presigned_url, "get_object", Params=params, ExpiresIn=ttl)
        return {"method": "GET", "url": url, "expires_at": iso(now + ttl)}

    def _job(self, owner: str, job_id: str) -> Job:
        job = _guarded(self._store.get, owner, job_id) if is_job_id(job_id) else None
        if job is None or job.expires_at <= self._clock():  # TTL deletes lazily: an expired job is gone
            raise JobNotFound()
        return job

    # ---- POST /jobs/{job_id}/start ------------------------------------------------------------------------------
    def start(self, owner: str, job_id: str) -> tuple[int, dict[str, Any]]:
        """202 and the job when it is queued (by this call or an earlier one), 200 and the job when it was
        started before and has moved on (RUNNING, SUCCEEDED, FAILED)."""
        job = self._job(owner, job_id)
        if job.status == AWAITING_UPLOAD:
            job = self._queue(job)
        if job.status == QUEUED:
            self._start_execution(job)
            return 202, self._view(job)
        return 200, self._view(job)

    def _queue(self, job: Job) -> Job:
        size = _guarded(self._object_size, job.input_key)
        if size is None:
            raise UploadMissing()
        limit = self._settings.max_input_bytes
        if size > limit:
            message = f"The file is {size:,} bytes; a job takes at most {limit:,} bytes."
            if _guarded(self._store.refuse_input, job.owner, job.job_id, "INPUT_TOO_LARGE", message):
                _guarded(self._s3.delete_object, Bucket=self._settings.bucket, Key=job.input_key)
                raise InputTooLarge(message)
            return self._job(job.owner, job.job_id)  # a concurrent start queued it first: that one stands
        expires_at = int(self._clock()) + self._settings.retention_days * DAY_S  # retention counts from the start
        _guarded(self._store.queue, job.owner, job.job_id, self._settings.endpoint_name, size, expires_at)
        return self._job(job.owner, job.job_id)  # queued by this call or a concurrent one; or failed meanwhile

    def _object_size(self, key: str) -> int | None:
        try:
            return int(self._s3.head_object(Bucket=self._settings.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            # 403: S3 answers a HEAD of a missing key with 403 to a role without s3:ListBucket (this one has
            # none, so it cannot list other jobs' keys); the role may read every input, so 403 means missing.
            if aws.error_code(exc) in {"404", "NoSuchKey", "NotFound", "403", "AccessDenied"}:
                return None
            raise

    def _start_execution(self, job: Job) -> None:
        execution_input = json.dumps({"owner": job.owner, "job_id": job.job_id}, sort_keys=True)
        try:
            self._sfn.start_execution(
                stateMachineArn=self._settings.state_machine_arn, name=job.job_id, input=execution_input
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ExecutionAlreadyExists":  # started before: nothing to do
                raise JobsUnavailable(detail=f"StartExecution: {aws.error_code(exc)}") from None
        except BotoCoreError as exc:
            raise JobsUnavailable(detail=f"StartExecution: {type(exc).__name__}") from None


def _guarded(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call``, with any AWS failure as JobsUnavailable (503): the code goes to the log, never to the client."""
    try:
        return call(*args, **kwargs)
    except JobStoreUnavailable as exc:
        raise JobsUnavailable(retry_after_s=2, detail=f"jobs table: {exc}") from None
    except ClientError as exc:
        raise JobsUnavailable(retry_after_s=2, detail=f"{call.__name__}: {aws.error_code(exc)}") from None
    except BotoCoreError as exc:
        raise JobsUnavailable(retry_after_s=2, detail=f"{call.__name__}: {type(exc).__name__}") from None


def job_view(job: Job) -> dict[str, Any]:
    """A job as the API shows it (job_response.json); never the owner key, the endpoint or object keys."""
    view: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status,
        "input_format": job.input_format,
        "text_field": job.text_field,
        "created_at": iso(job.created_at),
        "expires_at": iso(job.expires_at),
        "progress": {"rows_done": job.rows_done, "rows_total": job.rows_total},
        "counts": {name: job.counts.get(name, 0) for name in COUNT_NAMES},
    }
    if job.id_field is not None:
        view["id_field"] = job.id_field
    if job.model_version:
        view["model_version"] = job.model_version
    if job.status == FAILED and job.error is not None:
        view["error"] = {"code": job.error.code, "message": job.error.message}
    return view
