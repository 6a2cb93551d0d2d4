"""The retraining task functions on their own (moto): every rule raises, none returns an error-shaped result.
The release function (its own CodeUri) is tests/unit/retraining/test_release.py."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from retraining import dataset as dataset_task
from retraining import smoke as smoke_task
from sentiment_core.contract import SMOKE_TEXTS

from tests.helpers import FakeContext, load_function

BUCKET = "sentiment-data-unit"
ENV = {
    "POWERTOOLS_SERVICE_NAME": "sentiment-api",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "STAGE": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
GOOD = "text,label\n" + "".join(
    f'"t {i}, ok",{label}\n' for label in ("negative", "neutral", "positive") for i in range(3)
)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def validate(s3: Any, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_function(
        "validate_dataset",
        {**ENV, "DATA_BUCKET": BUCKET, "MAX_DATASET_BYTES": "4096", "JOB_NAME_PREFIX_SCOPE": "sentiment-"},
    )


EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:sentiment-api-prod-retrain:nightly-1"


def event(key: str = "training/data.csv", **changes: Any) -> dict[str, Any]:
    return {
        "training_data_s3_uri": f"s3://{BUCKET}/{key}",
        "job_name_prefix": "sentiment-prod",
        "min_rows_per_class": 3,
        "execution_start_time": "2026-01-05T03:04:05.678Z",
        "execution_id": EXECUTION,
        **changes,
    }


def put(s3: Any, body: bytes | str, key: str = "training/data.csv") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


# ---- validate_dataset ------------------------------------------------------------------------------------
def test_valid_dataset_counts_hashes_and_names_the_run(validate: ModuleType, s3: Any) -> None:
    put(s3, "\ufeff" + GOOD)  # a BOM is tolerated
    result = validate.validate_dataset(event(), FakeContext())
    assert result["run"] == {
        "run_id": "20260105-030405",
        "model_version": "sentiment-prod-20260105-030405",
        "automl_job_name": "sentiment-prod-20260105-030405",
        "model_name": "sentiment-prod-20260105-030405",
        "endpoint_config_name": "sentiment-prod-20260105-030405",
        "endpoint_name": "sentiment-prod-20260105-030405",
    }
    assert len(result["run"]["automl_job_name"]) <= 32
    dataset = result["dataset"]
    assert dataset["rows_per_class"] == {"negative": 3, "neutral": 3, "positive": 3} and dataset["rows"] == 9
    assert dataset["bytes"] == len(("\ufeff" + GOOD).encode())
    assert dataset["sha256"] == hashlib.sha256(("\ufeff" + GOOD).encode()).hexdigest()
    assert dataset["version_id"] is None  # an unversioned bucket


# ---- the run's copy: what Autopilot trains on -------------------------------------------------------------
RUN_FOLDER = f"training/runs/sentiment-prod-20260105-030405-{hashlib.sha256(EXECUTION.encode()).hexdigest()[:8]}/"
DATA_FOLDER = f"{RUN_FOLDER}data/"


def keys(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_the_validated_object_is_copied_alone_into_the_runs_data_folder(validate: ModuleType, s3: Any) -> None:
    """Autopilot reads the data folder by S3Prefix (text classification accepts nothing else): it holds the
    copy and nothing else. Before: a manifest (ManifestFile), which CreateAutoMLJobV2 refuses for text."""
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put(s3, GOOD)
    version = s3.head_object(Bucket=BUCKET, Key="training/data.csv")["VersionId"]
    result = validate.validate_dataset(event(), FakeContext())
    dataset = result["dataset"]
    assert dataset["version_id"] == version
    copy = s3.get_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")
    assert copy["Body"].read() == GOOD.encode()
    assert dataset["training"] == {
        "uri": f"s3://{BUCKET}/{DATA_FOLDER}train.csv",
        "version_id": copy["VersionId"],
        "folder": f"s3://{BUCKET}/{RUN_FOLDER}",
        "s3_prefix": f"s3://{BUCKET}/{DATA_FOLDER}",
    }
    assert dataset["training"]["s3_prefix"].endswith("/")  # a folder: train.csv.bak beside it is not in it
    assert keys(s3, "training/runs/") == [f"{DATA_FOLDER}train.csv"]  # the one object written for the run
    # a sibling of the key the run was started with is not under the folder Autopilot reads
    put(s3, "text,label\nnot validated,positive\n", key="training/data.csv.bak")
    assert keys(s3, DATA_FOLDER) == [f"{DATA_FOLDER}train.csv"]


def test_two_executions_in_the_same_second_get_their_own_folders(validate: ModuleType, s3: Any) -> None:
    """Same prefix, same start second, so the same model version: the folder also names the execution.
    Before: both wrote training/runs/<model version>/, the second copy over the first."""
    put(s3, GOOD)
    first = validate.validate_dataset(event(), FakeContext())["dataset"]["training"]
    put(s3, GOOD.replace("t 0", "t 0 (second upload)"))
    second = validate.validate_dataset(event(execution_id=EXECUTION + "-2"), FakeContext())["dataset"]["training"]
    assert first["s3_prefix"] != second["s3_prefix"]
    assert s3.get_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")["Body"].read() == GOOD.encode()
    assert len(keys(s3, "training/runs/")) == 2


class Recording:
    """An S3 client that records the CopyObject requests it passes on."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.copies: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def copy_object(self, **kwargs: Any) -> Any:
        self.copies.append(kwargs)
        return self._s3.copy_object(**kwargs)


def test_the_copy_is_conditional_and_copies_no_tags(validate: ModuleType, s3: Any) -> None:
    """IfNoneMatch="*": never over an existing object; TaggingDirective=REPLACE with no tags: copying the
    source's tags (the default, COPY) needs s3:GetObjectVersionTagging and s3:PutObjectTagging, which the
    role lacks, so a tagged source failed the copy on AWS. Before: neither parameter."""
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="training/data.csv", Body=GOOD.encode(), Tagging="owner=data-team")
    head = s3.head_object(Bucket=BUCKET, Key="training/data.csv")
    client = Recording(s3)
    dataset_task.validate(event(), validate.settings.dataset, client)
    (request,) = client.copies
    assert request == {
        "Bucket": BUCKET,
        "Key": f"{DATA_FOLDER}train.csv",
        "CopySource": {"Bucket": BUCKET, "Key": "training/data.csv", "VersionId": head["VersionId"]},
        "CopySourceIfMatch": head["ETag"],
        "IfNoneMatch": "*",
        "TaggingDirective": "REPLACE",
        "ChecksumAlgorithm": "SHA256",
    }
    assert "Tagging" not in request
    assert s3.get_object_tagging(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")["TagSet"] == []


def test_an_existing_copy_is_never_overwritten(validate: ModuleType, s3: Any) -> None:
    """S3 refuses the conditional copy (412) because the key exists: RunCopyExists when it holds other bytes,
    and the object that was there is unchanged; the validated bytes already there are this execution's own
    copy (a retried task) and are used. moto ignores IfNoneMatch on CopyObject: the refusal is scripted."""
    put(s3, GOOD)
    s3.put_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv", Body=b"another execution's copy")
    refused = ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one ..."}}, "CopyObject")

    class Refusing(Recording):
        def copy_object(self, **kwargs: Any) -> Any:
            assert kwargs["IfNoneMatch"] == "*"
            raise refused

    with pytest.raises(dataset_task.RunCopyExists, match="nothing was overwritten"):
        dataset_task.validate(event(), validate.settings.dataset, Refusing(s3))
    assert s3.get_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")["Body"].read() == b"another execution's copy"

    # the validated bytes already there (this execution's own copy, from an attempt whose answer was lost):
    # the retry uses it; it neither fails nor writes again
    s3.delete_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")
    first = dataset_task.validate(event(), validate.settings.dataset, s3)["dataset"]["training"]
    again = dataset_task.validate(event(), validate.settings.dataset, Refusing(s3))["dataset"]["training"]
    assert again == first


class WithoutConditionalCopy(Recording):
    """The S3 client of a Lambda runtime whose SDK predates CopyObject's IfNoneMatch: botocore rejects the
    parameter before sending anything."""

    def copy_object(self, **kwargs: Any) -> Any:
        assert "IfNoneMatch" not in kwargs  # botocore would raise ParamValidationError
        return super().copy_object(**kwargs)


def test_an_sdk_without_conditional_copy_looks_first(
    validate: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_task, "supports_conditional_copy", lambda _: False)
    put(s3, GOOD)
    client = WithoutConditionalCopy(s3)
    first = dataset_task.validate(event(), validate.settings.dataset, client)["dataset"]["training"]
    assert len(client.copies) == 1
    again = dataset_task.validate(event(), validate.settings.dataset, client)["dataset"]["training"]
    assert again == first and len(client.copies) == 1  # a retry uses its own copy, writes nothing
    s3.put_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv", Body=b"other bytes")
    with pytest.raises(dataset_task.RunCopyExists):
        dataset_task.validate(event(), validate.settings.dataset, client)
    assert len(client.copies) == 1


def test_the_sdk_of_this_repository_has_conditional_copy(s3: Any) -> None:
    assert dataset_task.supports_conditional_copy(s3)


class ReplacesTheSourceBeforeCopying:
    """An S3 client through which someone uploads another object to the key between validation and copy."""

    def __init__(self, s3: Any, body: str) -> None:
        self._s3, self._body = s3, body
        self.copies: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def copy_object(self, **kwargs: Any) -> Any:
        put(self._s3, self._body)
        self.copies.append(kwargs)
        return self._s3.copy_object(**kwargs)


def test_a_replacement_after_validation_is_not_what_is_trained_on(validate: ModuleType, s3: Any) -> None:
    """Versioned bucket: the copy is of the validated version, by VersionId, whatever the key holds now."""
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put(s3, GOOD)
    client = ReplacesTheSourceBeforeCopying(s3, "text,label\nswapped,positive\n")
    dataset_task.validate(event(), validate.settings.dataset, client)
    (request,) = client.copies
    assert request["CopySource"]["VersionId"] and request["CopySourceIfMatch"]
    assert s3.get_object(Bucket=BUCKET, Key=f"{DATA_FOLDER}train.csv")["Body"].read() == GOOD.encode()


def test_a_copy_that_is_not_the_validated_bytes_fails(validate: ModuleType, s3: Any) -> None:
    """Unversioned bucket and a replacement between validation and copy: S3's checksum of the copy differs
    from the validated SHA-256 (on AWS CopySourceIfMatch refuses the copy first; both are DatasetChanged)."""
    put(s3, GOOD)
    client = ReplacesTheSourceBeforeCopying(s3, GOOD.replace("t 0", "t X"))
    with pytest.raises(dataset_task.DatasetChanged, match="not the validated object"):
        dataset_task.validate(event(), validate.settings.dataset, client)
    assert keys(s3, "training/runs/") == [f"{DATA_FOLDER}train.csv"]  # the copy stays, nothing trains on it


def test_a_refused_copy_precondition_is_dataset_changed(validate: ModuleType, s3: Any) -> None:
    put(s3, GOOD)
    refused = ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one ..."}}, "CopyObject")

    class Refusing(ReplacesTheSourceBeforeCopying):
        def copy_object(self, **kwargs: Any) -> Any:
            raise refused

    with pytest.raises(dataset_task.DatasetChanged, match="changed while it was validated"):
        dataset_task.validate(event(), validate.settings.dataset, Refusing(s3, GOOD))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("text,label,domain\na,positive,x\n", "header must be exactly"),
        ("label\npositive\n", "header must be exactly"),
        ("text,label\n,positive\n", "line 2: empty text"),
        ("text,label\nfine,happy\n", "'happy' is not one of"),
        ("text,label\nfine,positive,extra\n", "3 fields"),
        ('text,label\n"unterminated,positive\n', "not valid CSV"),
        ("text,label\n" + "a,positive\n" * 3 + "b,negative\n" * 3 + "c,neutral\n", "too few: {'neutral': 1}"),
    ],
)
def test_invalid_datasets_raise(validate: ModuleType, s3: Any, body: str, message: str) -> None:
    put(s3, body)
    with pytest.raises(dataset_task.DatasetInvalid, match=message.replace("{", r"\{").replace("(", r"\(")):
        validate.validate_dataset(event(), FakeContext())


def test_not_utf8_raises(validate: ModuleType, s3: Any) -> None:
    put(s3, b"text,label\n\xff\xfe,positive\n")
    with pytest.raises(dataset_task.DatasetInvalid, match="not UTF-8"):
        validate.validate_dataset(event(), FakeContext())


def test_size_limit_and_missing_object(validate: ModuleType, s3: Any) -> None:
    put(s3, "text,label\n" + "x" * 5000 + ",positive\n")
    with pytest.raises(dataset_task.DatasetInvalid, match="the limit is 4096"):
        validate.validate_dataset(event(), FakeContext())
    with pytest.raises(dataset_task.DatasetInvalid, match="no object"):
        validate.validate_dataset(event("training/absent.csv"), FakeContext())


@pytest.mark.parametrize(
    "changes",
    [
        {"training_data_s3_uri": "s3://another-bucket/training/data.csv"},
        {"training_data_s3_uri": f"s3://{BUCKET}/automl/data.csv"},
        {"training_data_s3_uri": "https://example.com/data.csv"},
        {"job_name_prefix": "Sentiment"},
        {"job_name_prefix": "other-team"},
        {"job_name_prefix": "a-very-long-prefix-name"},
        {"min_rows_per_class": 0},
        {"min_rows_per_class": "10"},
        {"execution_start_time": "yesterday"},
        {"execution_id": ""},
        {"execution_id": None},
    ],
)
def test_invalid_requests_raise(validate: ModuleType, s3: Any, changes: dict[str, Any]) -> None:
    put(s3, GOOD)
    with pytest.raises(dataset_task.InvalidRequest):
        validate.validate_dataset(event(**changes), FakeContext())


# ---- smoke_test_endpoint ---------------------------------------------------------------------------------
class Runtime:
    """A sagemaker-runtime double: answers each probe from a script (label, or an exception to raise)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        text = kwargs["Body"].decode()
        (answer,) = [a for probe, a in self.answers.items() if probe in text]
        if isinstance(answer, Exception):
            raise answer
        return {"Body": io.BytesIO(answer), "ContentType": "application/json"}


@pytest.fixture
def smoke(monkeypatch: pytest.MonkeyPatch, s3: Any) -> ModuleType:
    load_function("smoke_test_endpoint", ENV)  # the function initialises with the family's configuration
    return smoke_task


def answers(smoke: ModuleType, **overrides: Any) -> dict[str, Any]:
    script = {text[:20]: json.dumps({"predicted_label": label}).encode() for label, text in SMOKE_TEXTS.items()}
    for label, answer in overrides.items():
        script[SMOKE_TEXTS[label][:20]] = answer
    return script


def test_smoke_test_passes_and_reports_each_probe(smoke: ModuleType) -> None:
    result = smoke.smoke_test("new-endpoint", Runtime(answers(smoke)))
    assert [(p["expected"], p["got"]) for p in result["probes"]] == [
        ("positive", "positive"),
        ("neutral", "neutral"),
        ("negative", "negative"),
    ]


def test_unreadable_answer_fails_the_smoke_test(smoke: ModuleType) -> None:
    with pytest.raises(smoke.SmokeTestFailed, match="not in the format"):
        smoke.smoke_test("new-endpoint", Runtime(answers(smoke, neutral=b"<html>oops</html>")))


def test_unavailable_endpoint_is_left_to_the_state_machine_retry(smoke: ModuleType) -> None:
    from retraining.smoke import ModelUnavailable

    busy = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint")
    with pytest.raises(ModelUnavailable):
        smoke.smoke_test("new-endpoint", Runtime(answers(smoke, positive=busy)))
