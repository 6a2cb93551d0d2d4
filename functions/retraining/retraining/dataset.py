"""Retraining task ValidateDataset, step 1 (statemachines/retrain.asl.json): checks the training CSV before
an Autopilot job is paid for, and names the run's resources.

Checks: the object is under s3://$DATA_BUCKET/$TRAINING_PREFIX (the only place the SageMaker execution role
may read), at most $MAX_DATASET_BYTES, UTF-8 CSV whose header is exactly ``text,label``, every row has a
non-empty text and a label in {negative, neutral, positive}, and each of the three labels has at least
``min_rows_per_class`` rows. Any failure raises (DatasetInvalid / InvalidRequest / DatasetChanged /
RunCopyExists): the state machine's Catch sees the error type, never an error-shaped result.

What is trained on is exactly what was validated: one object version (its VersionId and ETag, read with
IfMatch), copied by CopyObject (CopySourceIfMatch, the same version) to the run's own folder
``$TRAINING_PREFIX/runs/<model version>-<execution>/data/train.csv``, whose SHA-256 S3 computes during the
copy and must equal the one computed while validating. Autopilot reads that ``data/`` folder (S3DataType
S3Prefix: the only input type CreateAutoMLJobV2 accepts for text classification), and the folder never holds
anything else:

- ``<execution>`` is 8 hex digits of the SHA-256 of the execution's ARN, so two executions started in the
  same second (the model version has a resolution of one second) never share a folder;
- the copy is a conditional write (IfNoneMatch="*"): an object already at the key is never overwritten; if it
  holds the validated bytes (the same SHA-256: this execution's own copy, from an attempt whose answer was
  lost) it is used as it is, otherwise the task raises RunCopyExists;
- only this function may write under runs/ (the data bucket's policy, template.yaml), and it writes nothing
  but the copy there;
- TaggingDirective=REPLACE with no tags: the copy carries none of the source's tags (copying them would need
  s3:GetObjectVersionTagging and s3:PutObjectTagging, which the role does not have, so a tagged source would
  fail the copy).

Names (one per run, from the execution start time): ``<prefix>-<yyyymmdd>-<hhmmss>`` for the AutoML job
(<= 32 characters), the model, the endpoint configuration and the endpoint (lower case, so it satisfies
the template's SageMakerEndpointName pattern and can be released through it). The prefix must start with
$JOB_NAME_PREFIX_SCOPE, the names the state machine's IAM policy covers. Two executions in the same second
get the same names; the second one's CreateAutoMLJobV2 is refused (the job name is taken), and its cleanup
deletes only what it created itself (nothing).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from sentiment_core.contract import LABELS

from .config import DatasetSettings
from .observability import logger

COLUMNS = ("text", "label")
TRAINING_FILE = "train.csv"
DATA_FOLDER = "data/"  # what Autopilot reads (S3Prefix): the copy, nothing else
PREFIX_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,15}$")
MAX_TEXT_CHARS = 10_000


class DatasetInvalid(Exception):
    """The training data does not satisfy the documented contract."""


class InvalidRequest(Exception):
    """The execution input is malformed (prefix, URI, minimum rows)."""


class DatasetChanged(Exception):
    """The object changed between its validation and its copy for training: start the run again."""


class RunCopyExists(Exception):
    """The run's copy already exists (another execution wrote it): it is not overwritten; start again."""


def run_names(prefix: str, execution_start_time: str, scope: str = "") -> dict[str, str]:
    if not PREFIX_PATTERN.match(prefix):
        raise InvalidRequest(f"job_name_prefix {prefix!r} must match {PREFIX_PATTERN.pattern} (<= 16 characters)")
    if not prefix.startswith(scope):
        raise InvalidRequest(
            f"job_name_prefix {prefix!r} must start with {scope!r}: the state machine may only "
            "create SageMaker resources named so"
        )
    try:
        started = dt.datetime.fromisoformat(execution_start_time.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        raise InvalidRequest(f"execution_start_time {execution_start_time!r} is not an ISO 8601 time") from None
    run_id = started.strftime("%Y%m%d-%H%M%S")
    name = f"{prefix}-{run_id}"
    return {
        "run_id": run_id,
        "model_version": name,
        "automl_job_name": name,
        "model_name": name,
        "endpoint_config_name": name,
        "endpoint_name": name,
    }


def run_folder(model_version: str, execution_id: str) -> str:
    """The run's folder under runs/: the model version and 8 hex digits of the execution's ARN (unique per
    state machine), so that two executions started in the same second never share it."""
    if not execution_id:
        raise InvalidRequest("execution_id must be the execution's ARN, got an empty value")
    return f"{model_version}-{hashlib.sha256(execution_id.encode('utf-8')).hexdigest()[:8]}"


def parse_location(uri: str, config: DatasetSettings) -> tuple[str, str]:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise InvalidRequest(f"training_data_s3_uri {uri!r} must be s3://<bucket>/<key>")
    if parsed.netloc != config.data_bucket or not key.startswith(config.training_prefix):
        raise InvalidRequest(
            f"training_data_s3_uri {uri!r} must be under s3://{config.data_bucket}/"
            f"{config.training_prefix} (the only prefix the SageMaker role reads)"
        )
    return parsed.netloc, key


class HashingReader(io.RawIOBase):
    """A raw stream over an S3 body that hashes and counts the bytes read through it."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk: bytes = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        self.sha256.update(chunk)
        self.bytes += len(chunk)
        return len(chunk)


def check_rows(lines: Iterable[str], min_rows_per_class: int) -> dict[str, Any]:
    """Validates the CSV text (header + rows); returns the counts. Raises DatasetInvalid."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetInvalid("the file is empty") from None
    except csv.Error as exc:
        raise DatasetInvalid(f"line 1: not valid CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DatasetInvalid(f"the file is not UTF-8: {exc.reason} at byte {exc.start}") from None
    names = [h.strip().lower() for h in header]
    if sorted(names) != sorted(COLUMNS):
        raise DatasetInvalid(f"the header must be exactly {','.join(COLUMNS)} (any order), got {header!r}")
    text_at, label_at = names.index("text"), names.index("label")
    counts: Counter[str] = Counter()
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(COLUMNS):
                raise DatasetInvalid(f"line {line}: {len(row)} fields, expected {len(COLUMNS)}")
            text, label = row[text_at].strip(), row[label_at].strip()
            if not text:
                raise DatasetInvalid(f"line {line}: empty text")
            if len(text) > MAX_TEXT_CHARS:
                raise DatasetInvalid(f"line {line}: text longer than {MAX_TEXT_CHARS} characters")
            if label not in LABELS:
                raise DatasetInvalid(f"line {line}: label {label[:40]!r} is not one of {', '.join(LABELS)}")
            counts[label] += 1
    except csv.Error as exc:
        raise DatasetInvalid(f"line {reader.line_num}: not valid CSV: {exc}") from None
    except UnicodeDecodeError as exc:
        raise DatasetInvalid(f"the file is not UTF-8: {exc.reason} at byte {exc.start}") from None
    short = {label: counts[label] for label in LABELS if counts[label] < min_rows_per_class}
    if short:
        raise DatasetInvalid(f"each label needs at least {min_rows_per_class} rows; too few: {short}")
    return {"rows": sum(counts.values()), "rows_per_class": {label: counts[label] for label in LABELS}}


def copy_for_training(
    s3: Any, config: DatasetSettings, source: Mapping[str, str], etag: str, sha256: bytes, folder_name: str
) -> dict[str, Any]:
    """Copies the validated object version into the run's data folder, never over an existing object, and
    checks that S3 copied the validated bytes (SHA-256). Raises DatasetChanged or RunCopyExists."""
    bucket, folder = config.data_bucket, f"{config.runs_prefix}{folder_name}/"
    key = f"{folder}{DATA_FOLDER}{TRAINING_FILE}"
    expected = base64.b64encode(sha256).decode("ascii")
    request: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "CopySource": dict(source),
        "CopySourceIfMatch": etag,
        "TaggingDirective": "REPLACE",
        "ChecksumAlgorithm": "SHA256",
    }
    if supports_conditional_copy(s3):
        request["IfNoneMatch"] = "*"
    else:
        # The Lambda runtime's SDK may predate conditional copies: look first (not atomic, but the folder is
        # this execution's own, so only this execution's retries write there).
        existing = _existing_checksum(s3, bucket, key)
        if existing is not None:
            return _already_there(existing, expected, bucket, folder, key)
    try:
        copied = s3.copy_object(**request)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            raise
        existing = _existing_checksum(s3, bucket, key)
        if existing is not None or code in ("ConditionalRequestConflict", "409"):
            return _already_there(existing, expected, bucket, folder, key)
        raise DatasetChanged(f"s3://{bucket}/{source['Key']} changed while it was validated") from None
    if copied.get("CopyObjectResult", {}).get("ChecksumSHA256") != expected:
        raise DatasetChanged(f"the copy s3://{bucket}/{key} is not the validated object (SHA-256 differs)")
    return _training(bucket, folder, key, copied.get("VersionId"))


def supports_conditional_copy(s3: Any) -> bool:
    """Whether the client's S3 model has CopyObject's IfNoneMatch (added to S3 in 2025; the Lambda runtime
    provides the SDK this function uses)."""
    return "IfNoneMatch" in s3.meta.service_model.operation_model("CopyObject").input_shape.members


def _already_there(
    existing: tuple[str | None, str | None] | None, expected: str, bucket: str, folder: str, key: str
) -> dict[str, Any]:
    if existing is not None and existing[0] == expected:
        # This execution's own copy, from an attempt whose answer was lost (Step Functions retried the
        # task): the validated bytes are there already; nothing is written again.
        logger.info("run copy already made", extra={"copy": f"s3://{bucket}/{key}"})
        return _training(bucket, folder, key, existing[1])
    raise RunCopyExists(
        f"s3://{bucket}/{key} already exists and is not the validated object: nothing was overwritten, "
        "start the run again"
    )


def _training(bucket: str, folder: str, key: str, version_id: str | None) -> dict[str, Any]:
    return {
        "uri": f"s3://{bucket}/{key}",
        "version_id": version_id,
        "folder": f"s3://{bucket}/{folder}",
        "s3_prefix": f"s3://{bucket}/{folder}{DATA_FOLDER}",  # what Autopilot reads: this copy alone
    }


def _existing_checksum(s3: Any, bucket: str, key: str) -> tuple[str | None, str | None] | None:
    """(SHA-256, version id) of the object at ``key``, or None when there is none."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("ChecksumSHA256"), head.get("VersionId")


def validate(event: Mapping[str, Any], config: DatasetSettings, s3: Any) -> dict[str, Any]:
    min_rows = event.get("min_rows_per_class")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidRequest(f"min_rows_per_class must be a positive integer, got {min_rows!r}")
    names = run_names(
        str(event.get("job_name_prefix", "")), str(event.get("execution_start_time", "")), config.job_name_scope
    )
    folder = run_folder(names["model_version"], str(event.get("execution_id") or ""))
    uri = str(event.get("training_data_s3_uri", ""))
    bucket, key = parse_location(uri, config)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise DatasetInvalid(f"no object at {uri}") from None
        raise
    if head["ContentLength"] > config.max_bytes:
        raise DatasetInvalid(f"{uri} is {head['ContentLength']} bytes; the limit is {config.max_bytes}")
    version = head.get("VersionId")
    source = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version and version != "null" else {})}
    try:
        response = s3.get_object(**source, IfMatch=head["ETag"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            raise DatasetChanged(f"{uri} changed while it was being read") from None
        raise
    body = HashingReader(response["Body"])
    text = io.TextIOWrapper(io.BufferedReader(body, buffer_size=1 << 20), encoding="utf-8-sig", newline="")
    counts = check_rows(text, min_rows)
    training = copy_for_training(s3, config, source, head["ETag"], body.sha256.digest(), folder)
    dataset = {
        "uri": uri,
        "bucket": bucket,
        "key": key,
        "version_id": source.get("VersionId"),
        "etag": head["ETag"].strip('"'),
        "bytes": body.bytes,
        "sha256": body.sha256.hexdigest(),
        "columns": list(COLUMNS),
        **counts,
        "training": training,
    }
    logger.info(
        "dataset valid", extra={"uri": uri, "rows": counts["rows"], "run": names["run_id"], "copy": training["uri"]}
    )
    return {"run": names, "dataset": dataset}
