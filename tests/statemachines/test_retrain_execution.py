"""statemachines/retrain.asl.json executed under moto, end to end, with the real task functions.

Paths: released (happy), awaiting manual release (no CloudFormation role), and the failures: invalid
dataset, AutoML job failed, AutoML job timed out, endpoint failed, smoke test failed, canary rolled back.
Each failure ends in the Fail state with its error and cause, after deleting what the run created."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto.cloudformation.models import CloudFormationBackend
from sentiment_core.contract import SMOKE_TEXTS

from tests.helpers import load_function
from tests.statemachines.conftest import (
    ACCOUNT,
    REGION,
    Execution,
    LambdaRuntime,
    Notifications,
    Outcome,
    SageMakerClock,
    deploy_function,
    notification_topic,
    role,
    run_state_machine,
    substitute,
)

DATA_BUCKET = "sentiment-data-test"
REPORTS_BUCKET = "sentiment-reports-test"
STACK = "sentiment-api-test"
LIVE_ENDPOINT = "sentiment-live-old"
TRAINING_KEY = "training/train.csv"
PREFIX = "sentiment-test"
LABELS = ["negative", "neutral", "positive"]
STACK_TEMPLATE = {  # the parameters the release touches, as in template.yaml, plus one resource using them
    "Parameters": {
        "Stage": {"Type": "String"},
        "SageMakerEndpointName": {"Type": "String"},
        "PreviousSageMakerEndpointName": {"Type": "String", "Default": ""},
    },
    "Resources": {
        "LiveEndpointName": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/sentiment-api-test/live-endpoint",
                "Type": "String",
                "Value": {"Ref": "SageMakerEndpointName"},
            },
        }
    },
}
AUTOML_CONTAINER = {
    "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/autopilot-text-classification:1.0-gpu",
    "ModelDataUrl": f"s3://{DATA_BUCKET}/automl/job/model.tar.gz",
    "Environment": {
        "SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,probabilities,labels",
        "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
    },
}
BEST_CANDIDATE = {
    "CandidateName": "best-text-candidate",
    "FinalAutoMLJobObjectiveMetric": {"MetricName": "Accuracy", "Value": 0.74, "Type": "Maximize"},
    "ObjectiveStatus": "Succeeded",
    "CandidateStatus": "Completed",
    "InferenceContainers": [AUTOML_CONTAINER],
    "CandidateProperties": {"CandidateMetrics": [{"MetricName": "Accuracy", "Value": 0.74, "Set": "Validation"}]},
}


@dataclass
class World:
    runtime: LambdaRuntime
    clock: SageMakerClock
    notifications: Notifications
    substitutions: dict[str, str]

    def run(self, payload: dict[str, Any] | None = None) -> Execution:
        return run_state_machine(substitute("retrain", self.substitutions), "retrain", payload or {})

    @staticmethod
    def sagemaker_names() -> dict[str, list[str]]:
        sm = boto3.client("sagemaker")
        return {
            "models": [m["ModelName"] for m in sm.list_models()["Models"]],
            "endpoint_configs": [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]],
            "endpoints": [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
        }

    @staticmethod
    def stack_parameters() -> dict[str, str]:
        (stack,) = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}

    @staticmethod
    def automl_status(name: str) -> str:
        return boto3.client("sagemaker").describe_auto_ml_job_v2(AutoMLJobName=name)["AutoMLJobStatus"]


def read_lineage(name: str) -> dict[str, Any]:
    body = boto3.client("s3").get_object(Bucket=REPORTS_BUCKET, Key=f"lineage/{name}.json")["Body"].read()
    lineage: dict[str, Any] = json.loads(body)
    return lineage


def training_csv(rows_per_class: int) -> bytes:
    lines = ["text,label"] + [
        f'"example {i} for {label}, with a comma",{label}' for label in LABELS for i in range(rows_per_class)
    ]
    return ("\n".join(lines) + "\n").encode()


def queue_endpoint_answers(*labels: str) -> None:
    """What the new endpoint answers to the smoke test's probes (in probe order), via moto's API."""
    results = [
        {
            "Body": json.dumps({"predicted_label": label, "probabilities": [0.1, 0.1, 0.8], "labels": LABELS}),
            "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for label in labels
    ]
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": results, "region": REGION, "account_id": ACCOUNT},
        timeout=5,
    )


def setup_world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch, cloudformation_role: bool = True) -> World:
    s3 = boto3.client("s3")
    for bucket in (DATA_BUCKET, REPORTS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=DATA_BUCKET, Key=TRAINING_KEY, Body=training_csv(6))
    boto3.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": "test"},
            {"ParameterKey": "SageMakerEndpointName", "ParameterValue": LIVE_ENDPOINT},
        ],
    )
    topic, notifications = notification_topic()
    # The three tasks share one CodeUri and one configuration: template.yaml's variables, resolved here.
    refs = {"Stage": "test", "DataBucket": DATA_BUCKET, "AWS::StackName": STACK}
    env = {"CLOUDFORMATION_ROLE_ARN": role("cfn-deploy", "cloudformation.amazonaws.com") if cloudformation_role else ""}
    validate = load_function("validate_dataset", refs=refs)
    smoke = load_function("smoke_test_endpoint", refs=refs)
    release = load_function("release_model", env, refs)
    clock = SageMakerClock()
    clock.install(monkeypatch)
    substitutions = {
        "ValidateDatasetFunctionArn": deploy_function(aws, "validate-dataset", validate.validate_dataset),
        "SmokeTestFunctionArn": deploy_function(aws, "smoke-test-endpoint", smoke.smoke_test_endpoint),
        "ReleaseModelFunctionArn": deploy_function(aws, "release-model", release.release_model),
        "SageMakerExecutionRoleArn": role("sagemaker-execution", "sagemaker.amazonaws.com"),
        "NotificationTopicArn": topic,
        "DataBucket": DATA_BUCKET,
        "ReportsBucket": REPORTS_BUCKET,
        "StackName": STACK,
        "DefaultTrainingDataUri": f"s3://{DATA_BUCKET}/{TRAINING_KEY}",
        "DefaultJobNamePrefix": PREFIX,
        "MaxAutoMLJobRuntimeSeconds": "14400",
        "MaxRuntimePerTrainingJobSeconds": "14400",
        "MinRowsPerClass": "5",
        "EndpointInstanceType": "ml.m5.large",
        "EndpointInstanceCount": "1",
        "InferenceOutputKeys": "predicted_label,probability,probabilities,labels",
        # Wait seconds: 0 in tests (minutes in the template); ceilings small enough to test the timeouts.
        "AutoMLPollSeconds": "0",
        "AutoMLMaxPolls": "5",
        "EndpointPollSeconds": "0",
        "EndpointMaxPolls": "5",
        "ReleasePollSeconds": "0",
        "ReleaseMaxPolls": "5",
    }
    return World(aws, clock, notifications, substitutions)


@pytest.fixture
def world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch) -> World:
    return setup_world(aws, monkeypatch)


def run_names(execution: Execution) -> str:
    """The run's resource name (prefix-yyyymmdd-hhmmss), from the ValidateDataset result."""
    (event,) = [e for e in execution.history if e.get("stateExitedEventDetails", {}).get("name") == "ValidateDataset"]
    return json.loads(event["stateExitedEventDetails"]["output"])["prepared"]["result"]["run"]["endpoint_name"]


def assert_nothing_left(world: World, name: str) -> None:
    assert all(name not in names for names in world.sagemaker_names().values())


def assert_failed(execution: Execution, error: str, *cause_parts: str) -> None:
    assert execution.status == "FAILED", execution.description
    assert execution.last_state == "RetrainingFailed"
    assert execution.description["error"] == error
    for part in cause_parts:
        assert part in execution.description["cause"], execution.description["cause"]


def failure_notice(world: World) -> dict[str, Any]:
    (message,) = world.notifications.messages()
    assert message["Subject"] == "sentiment-api retraining FAILED"
    return message


# ---- success ------------------------------------------------------------------------------------------
def test_released_through_the_stack_update(world: World) -> None:
    world.clock.automl = Outcome("Completed", after=3, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)  # one right answer per probe, in SMOKE_TEXTS order

    execution = world.run({"job_name_prefix": PREFIX})

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "ModelReleased"
    name = run_names(execution)
    assert execution.output == {
        "model_version": name,
        "endpoint_name": name,
        "previous_endpoint": LIVE_ENDPOINT,
        "release": {"status": "released", "stack_status": "UPDATE_COMPLETE"},
        "lineage": f"s3://{REPORTS_BUCKET}/lineage/{name}.json",
    }
    assert execution.count("DescribeAutoMLJob") == 3  # polled until Completed
    job = boto3.client("sagemaker").describe_auto_ml_job_v2(AutoMLJobName=name)
    config = job["AutoMLProblemTypeConfig"]["TextClassificationJobConfig"]
    assert (config["ContentColumn"], config["TargetLabelColumn"]) == ("text", "label")
    assert config["CompletionCriteria"]["MaxAutoMLJobRuntimeInSeconds"] == 14400
    assert (
        job["AutoMLJobInputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
        == f"s3://{DATA_BUCKET}/{TRAINING_KEY}"
    )
    # the model: the best candidate's container, answering in the API's wire format
    (container,) = boto3.client("sagemaker").describe_model(ModelName=name)["Containers"]
    assert container["Image"] == AUTOML_CONTAINER["Image"]
    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability,probabilities,labels"
    assert world.sagemaker_names()["endpoints"] == [name]
    # released: the stack now pins the new endpoint (a new predict version, shifted by the canary)
    assert world.stack_parameters() == {
        "Stage": "test",
        "SageMakerEndpointName": name,
        "PreviousSageMakerEndpointName": LIVE_ENDPOINT,
    }
    lineage = read_lineage(name)
    assert lineage["model_version"] == name
    assert lineage["release"] == {"status": "released", "stack_status": "UPDATE_COMPLETE"}
    assert lineage["previous_endpoint"] == LIVE_ENDPOINT
    assert lineage["dataset"]["rows_per_class"] == {"negative": 6, "neutral": 6, "positive": 6}
    assert len(lineage["dataset"]["sha256"]) == 64
    assert lineage["automl_job"]["best_candidate"]["FinalAutoMLJobObjectiveMetric"]["Value"] == 0.74
    assert [p["got"] for p in lineage["smoke_test"]["probes"]] == ["positive", "neutral", "negative"]
    (message,) = world.notifications.messages()
    assert message["Subject"] == "sentiment-api retraining finished"
    assert f"model {name} is released" in message["Message"]


def test_without_a_cloudformation_role_the_release_waits_for_a_person(
    aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = setup_world(aws, monkeypatch, cloudformation_role=False)
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)  # one right answer per probe, in SMOKE_TEXTS order

    execution = world.run()

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "AwaitingManualRelease"
    name = run_names(execution)
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT  # nothing changed
    assert world.sagemaker_names()["endpoints"] == [name]  # kept for the manual release
    lineage = read_lineage(name)
    assert lineage["release"]["status"] == "awaiting-manual-release"
    assert f"SageMakerEndpointName={name}" in lineage["release"]["command"]
    assert "awaiting-manual-release" in world.notifications.messages()[0]["Message"]


# ---- failures -----------------------------------------------------------------------------------------
def test_invalid_dataset_fails_before_anything_is_created(world: World) -> None:
    boto3.client("s3").put_object(Bucket=DATA_BUCKET, Key="training/small.csv", Body=training_csv(2))

    execution = world.run({"training_data_s3_uri": f"s3://{DATA_BUCKET}/training/small.csv"})

    assert_failed(execution, "DatasetInvalid", "at least 5 rows")
    assert "StartAutoMLJob" not in execution.states_entered
    assert world.sagemaker_names() == {"models": [], "endpoint_configs": [], "endpoints": []}
    assert "DatasetInvalid" in failure_notice(world)["Message"]


def test_automl_job_failed(world: World) -> None:
    world.clock.automl = Outcome("Failed", after=2, failure_reason="ClientError: not enough data")

    execution = world.run()

    assert_failed(execution, "AutoMLJobFailed", "ClientError: not enough data")
    assert "CreateModel" not in execution.states_entered
    assert "StopAutoMLJob" not in execution.states_entered  # it already ended
    assert world.sagemaker_names() == {"models": [], "endpoint_configs": [], "endpoints": []}
    assert "AutoMLJobFailed" in failure_notice(world)["Message"]


def test_automl_job_that_never_ends_is_stopped_at_the_ceiling(world: World) -> None:
    execution = world.run()  # no outcome scripted: moto keeps the job InProgress

    assert_failed(execution, "AutoMLJobTimedOut", "after 5 polls")
    assert execution.count("DescribeAutoMLJob") == 5
    assert "StopAutoMLJob" in execution.states_entered
    name = run_names(execution)
    assert world.automl_status(name) == "Stopped"


def test_endpoint_failed(world: World) -> None:
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    world.clock.endpoint = Outcome("Failed", after=2, failure_reason="Insufficient capacity")

    execution = world.run()

    assert_failed(execution, "EndpointFailed", "Insufficient capacity")
    name = run_names(execution)
    assert execution.count("DescribeEndpoint") == 2
    assert {"DeleteEndpoint", "DeleteEndpointConfig", "DeleteModel"} <= set(execution.states_entered)
    assert_nothing_left(world, name)
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert "Cleanup errors: {}" in failure_notice(world)["Message"]


def test_smoke_test_failed(world: World) -> None:
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    # the negative probe is answered "positive"
    queue_endpoint_answers(*("positive" if label == "negative" else label for label in SMOKE_TEXTS))

    execution = world.run()

    assert_failed(execution, "SmokeTestFailed", "negative probe answered positive")
    name = run_names(execution)
    assert_nothing_left(world, name)
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert "ReleaseModel" not in execution.states_entered
    assert "SmokeTestFailed" in failure_notice(world)["Message"]


def test_canary_rolled_back(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)  # one right answer per probe, in SMOKE_TEXTS order
    original_update = CloudFormationBackend.update_stack

    def update_then_roll_back(
        backend: CloudFormationBackend,
        name: str,
        template: str,
        role_arn: str | None,
        parameters: list[dict[str, Any]],
        tags: dict[str, str] | None,
    ) -> Any:
        """CloudFormation when the canary fails: the update is applied, then the previous template and
        parameters are applied again (the rollback), and the stack ends UPDATE_ROLLBACK_COMPLETE."""
        stack = backend.get_stack(name)
        before = [{"ParameterKey": k, "ParameterValue": v} for k, v in stack.stack_parameters.items()]
        previous_template = str(stack.template)
        original_update(backend, name, template, role_arn, parameters, tags)
        original_update(backend, name, previous_template, role_arn, before, tags)
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        return stack

    monkeypatch.setattr(CloudFormationBackend, "update_stack", update_then_roll_back)

    execution = world.run()

    assert_failed(execution, "ReleaseRolledBack", f"{LIVE_ENDPOINT} stays live")
    name = run_names(execution)
    assert_nothing_left(world, name)  # the rolled-back endpoint serves nothing: deleted
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert not boto3.client("s3").list_objects_v2(Bucket=REPORTS_BUCKET).get("Contents")  # no lineage
