"""The retraining task functions on their own (moto): every rule raises, none returns an error-shaped result."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from retraining import dataset as dataset_task
from retraining import release as release_task
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


def event(key: str = "training/data.csv", **changes: Any) -> dict[str, Any]:
    return {
        "training_data_s3_uri": f"s3://{BUCKET}/{key}",
        "job_name_prefix": "sentiment-prod",
        "min_rows_per_class": 3,
        "execution_start_time": "2026-01-05T03:04:05.678Z",
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
    ],
)
def test_invalid_requests_raise(validate: ModuleType, s3: Any, changes: dict[str, Any]) -> None:
    put(s3, GOOD)
    with pytest.raises(dataset_task.InvalidRequest):
        validate.validate_dataset(event(**changes), FakeContext())


# ---- release_model -------------------------------------------------------------------------------------
TEMPLATE = json.dumps(
    {
        "Parameters": {
            "Stage": {"Type": "String"},
            "SageMakerEndpointName": {"Type": "String"},
            "PreviousSageMakerEndpointName": {"Type": "String", "Default": ""},
        },
        "Resources": {
            "P": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/unit/endpoint", "Type": "String", "Value": {"Ref": "SageMakerEndpointName"}},
            }
        },
    }
)


@pytest.fixture
def stack(s3: Any) -> Any:
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(
        StackName="sentiment-api-unit",
        TemplateBody=TEMPLATE,
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": "prod"},
            {"ParameterKey": "SageMakerEndpointName", "ParameterValue": "old-endpoint"},
        ],
    )
    return cloudformation


def release_module(monkeypatch: pytest.MonkeyPatch, role_arn: str) -> ModuleType:
    return load_function(
        "release_model",
        {**ENV, "STACK_NAME": "sentiment-api-unit", "CLOUDFORMATION_ROLE_ARN": role_arn, "STAGE": "prod"},
    )


def parameters(cloudformation: Any) -> dict[str, str]:
    (described,) = cloudformation.describe_stacks(StackName="sentiment-api-unit")["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


def test_release_updates_only_the_endpoint_parameters(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = release_module(monkeypatch, "arn:aws:iam::123456789012:role/cfn-deploy")
    result = release.release_model({"endpoint_name": "new-endpoint", "run_id": "20260105-030405"}, FakeContext())
    assert result["mode"] == "stack-update" and result["previous_endpoint"] == "old-endpoint"
    assert result["client_request_token"] == "release-20260105-030405"
    assert parameters(stack) == {
        "Stage": "prod",
        "SageMakerEndpointName": "new-endpoint",
        "PreviousSageMakerEndpointName": "old-endpoint",
    }


def test_release_refuses_a_busy_stack_and_a_live_endpoint(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = release_module(monkeypatch, "arn:aws:iam::123456789012:role/cfn-deploy")
    with pytest.raises(release_task.ReleaseRejected, match="already the live endpoint"):
        release.release_model({"endpoint_name": "old-endpoint", "run_id": "r1"}, FakeContext())
    client = boto3.client("cloudformation")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "sentiment-api-unit",
                    "StackId": "id",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "StackStatus": "UPDATE_IN_PROGRESS",
                    "Parameters": [],
                }
            ]
        },
    )
    with stubber, pytest.raises(release_task.StackNotReady, match="UPDATE_IN_PROGRESS"):
        release_task.release({"endpoint_name": "new", "run_id": "r2"}, release.settings.release, client)


def test_without_a_role_the_release_is_manual(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    release = release_module(monkeypatch, "")
    result = release.release_model({"endpoint_name": "new-endpoint", "run_id": "r1"}, FakeContext())
    assert result["mode"] == "manual"
    assert "sam deploy --config-env prod" in result["command"]
    assert "SageMakerEndpointName=new-endpoint PreviousSageMakerEndpointName=old-endpoint" in result["command"]
    assert parameters(stack)["SageMakerEndpointName"] == "old-endpoint"


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
    from botocore.exceptions import ClientError
    from retraining.smoke import ModelUnavailable

    busy = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeEndpoint")
    with pytest.raises(ModelUnavailable):
        smoke.smoke_test("new-endpoint", Runtime(answers(smoke, positive=busy)))
