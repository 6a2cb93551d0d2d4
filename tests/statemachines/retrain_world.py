"""The account statemachines/retrain.asl.json runs in, under moto (tests/statemachines/conftest.py): the data
and reports buckets, the stack it releases into (with its live and previous endpoints really in SageMaker),
the notification topic, and the real task functions, configured as template.yaml configures them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests

from tests.helpers import load_function
from tests.statemachines.conftest import (
    ACCOUNT,
    REGION,
    Execution,
    LambdaRuntime,
    Notifications,
    SageMakerClock,
    StackClock,
    create_state_machine,
    deploy_function,
    notification_topic,
    role,
    run_state_machine,
    substitute,
)

DATA_BUCKET = "sentiment-data-test"
REPORTS_BUCKET = "sentiment-reports-test"
STACK = "sentiment-api-test"
LIVE_ENDPOINT = "sentiment-live-old"  # SageMakerEndpointName when a run starts
PREVIOUS_ENDPOINT = "sentiment-live-older"  # PreviousSageMakerEndpointName when a run starts
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
    stack_clock: StackClock
    notifications: Notifications
    substitutions: dict[str, str]

    @property
    def definition(self) -> str:
        return substitute("retrain", self.substitutions)

    def run(self, payload: dict[str, Any] | None = None) -> Execution:
        return run_state_machine(self.definition, "retrain", payload or {})

    def state_machine(self) -> str:
        return create_state_machine(self.definition, "retrain")

    @staticmethod
    def sagemaker_names() -> dict[str, list[str]]:
        sm = boto3.client("sagemaker")
        return {
            "models": sorted(m["ModelName"] for m in sm.list_models()["Models"]),
            "endpoint_configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),
            "endpoints": sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
        }

    @staticmethod
    def stack_parameters() -> dict[str, str]:
        """What DescribeStacks would say, read from moto's stack (a DescribeStacks call would move the clock)."""
        return {k: str(v) for k, v in StackClock.stack(STACK).stack_parameters.items()}

    @staticmethod
    def stack_status() -> str:
        return str(StackClock.stack(STACK).status)

    @staticmethod
    def automl_status(name: str) -> str:
        return boto3.client("sagemaker").describe_auto_ml_job_v2(AutoMLJobName=name)["AutoMLJobStatus"]


def create_endpoint(name: str) -> None:
    """An endpoint with its own configuration and model, all named ``name`` (as a run names them)."""
    sm = boto3.client("sagemaker")
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution",
        Containers=[{"Image": AUTOML_CONTAINER["Image"]}],
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


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


def setup_world(
    aws: LambdaRuntime,
    monkeypatch: pytest.MonkeyPatch,
    cloudformation_role: bool = True,
) -> World:
    s3 = boto3.client("s3")
    for bucket in (DATA_BUCKET, REPORTS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})  # as in template.yaml
    s3.put_object(Bucket=DATA_BUCKET, Key=TRAINING_KEY, Body=training_csv(6))
    for endpoint in (LIVE_ENDPOINT, PREVIOUS_ENDPOINT):
        create_endpoint(endpoint)
    boto3.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": "Stage", "ParameterValue": "test"},
            {"ParameterKey": "SageMakerEndpointName", "ParameterValue": LIVE_ENDPOINT},
            {"ParameterKey": "PreviousSageMakerEndpointName", "ParameterValue": PREVIOUS_ENDPOINT},
        ],
    )
    topic, notifications = notification_topic()
    # template.yaml's variables, resolved here (the release function's stack policy is the template's own);
    # the release role is a role of this account, or none (ModelRelease=manual).
    refs = {"Stage": "test", "DataBucket": DATA_BUCKET, "AWS::StackName": STACK}
    env = {
        "CLOUDFORMATION_ROLE_ARN": role("cfn-release", "cloudformation.amazonaws.com") if cloudformation_role else ""
    }
    validate = load_function("validate_dataset", refs=refs)
    smoke = load_function("smoke_test_endpoint", refs=refs)
    release = load_function("release_model", env, refs)
    clock = SageMakerClock()
    clock.install(monkeypatch)
    stack_clock = StackClock()
    stack_clock.install(monkeypatch)
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
    return World(aws, clock, stack_clock, notifications, substitutions)


def run_names(execution: Execution) -> str:
    """The run's resource name (prefix-yyyymmdd-hhmmss), from the ValidateDataset result."""
    name: str = execution.output_of("ValidateDataset")["prepared"]["result"]["run"]["endpoint_name"]
    return name


def run_resources(world: World) -> dict[str, list[str]]:
    """The SageMaker resources a run created (named <prefix>-<run id>): not the live or previous ones."""
    return {kind: [n for n in names if n.startswith(f"{PREFIX}-")] for kind, names in world.sagemaker_names().items()}


def assert_nothing_left(world: World, name: str) -> None:
    assert all(name not in names for names in world.sagemaker_names().values())


def assert_kept(world: World, name: str) -> None:
    """The endpoint, its configuration and its model all exist."""
    assert all(name in names for names in world.sagemaker_names().values()), (name, world.sagemaker_names())


def assert_live_and_previous_exist(world: World) -> None:
    """What serves now and what served before the run (and what a rollback would go back to) all exist."""
    parameters = world.stack_parameters()
    for endpoint in {
        parameters["SageMakerEndpointName"],
        parameters["PreviousSageMakerEndpointName"],
        LIVE_ENDPOINT,
        PREVIOUS_ENDPOINT,
    }:
        assert_kept(world, endpoint)


def assert_failed(execution: Execution, error: str, *cause_parts: str) -> None:
    assert execution.status == "FAILED", execution.description
    assert execution.last_state == "RetrainingFailed"
    assert execution.description["error"] == error, execution.description
    for part in cause_parts:
        assert part in execution.description["cause"], execution.description["cause"]


def failure_notice(world: World) -> dict[str, Any]:
    (message,) = world.notifications.messages()
    assert message["Subject"] == "sentiment-api retraining FAILED"
    return message
