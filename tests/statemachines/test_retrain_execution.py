"""statemachines/retrain.asl.json executed under moto, end to end, with the real task functions.

Paths: released (happy), awaiting manual release (no release role), and the failures: invalid dataset,
AutoML job failed, AutoML job timed out, endpoint failed, smoke test failed. Each failure ends in the Fail
state with its error and cause, after deleting what the run created, and never what is live. The release
and cleanup sequences in time (retries, canaries, other operations on the stack, a second execution) are
tests/statemachines/test_retrain_sequences.py."""

from __future__ import annotations

import boto3
import pytest
from sentiment_core.contract import SMOKE_TEXTS

from tests.helpers import function_env
from tests.statemachines.conftest import LambdaRuntime, Outcome
from tests.statemachines.retrain_world import (
    AUTOML_CONTAINER,
    BEST_CANDIDATE,
    DATA_BUCKET,
    LIVE_ENDPOINT,
    PREFIX,
    PREVIOUS_ENDPOINT,
    REPORTS_BUCKET,
    TRAINING_KEY,
    World,
    assert_failed,
    assert_kept,
    assert_live_and_previous_exist,
    assert_nothing_left,
    failure_notice,
    queue_endpoint_answers,
    read_lineage,
    run_names,
    run_resources,
    setup_world,
    training_csv,
)

NOTHING: dict[str, list[str]] = {"models": [], "endpoint_configs": [], "endpoints": []}


def list_keys(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch) -> World:
    return setup_world(aws, monkeypatch)


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
    # Autopilot reads the run's own data folder (S3Prefix, the one input type text classification accepts),
    # which holds exactly one object: the run's copy of the validated version
    source = job["AutoMLJobInputDataConfig"][0]["DataSource"]["S3DataSource"]
    (folder,) = {
        key.rsplit("/", 2)[0] + "/"
        for key in list_keys("training/runs/")
        if key.startswith(f"training/runs/{name}-")  # <model version>-<8 hex digits of the execution ARN>
    }
    assert source == {"S3DataType": "S3Prefix", "S3Uri": f"s3://{DATA_BUCKET}/{folder}data/"}
    assert list_keys(f"{folder}data/") == [f"{folder}data/train.csv"]
    assert list_keys("training/runs/") == [f"{folder}data/train.csv"]  # nothing else written for the run
    s3 = boto3.client("s3")
    assert s3.get_object(Bucket=DATA_BUCKET, Key=f"{folder}data/train.csv")["Body"].read() == training_csv(6)
    # the model: the best candidate's container, answering in the API's wire format
    (container,) = boto3.client("sagemaker").describe_model(ModelName=name)["Containers"]
    assert container["Image"] == AUTOML_CONTAINER["Image"]
    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probability,probabilities,labels"
    assert world.sagemaker_names()["endpoints"] == sorted([name, LIVE_ENDPOINT, PREVIOUS_ENDPOINT])
    # released: the stack now pins the new endpoint (a new predict version, shifted by the canary)
    assert world.stack_parameters() == {
        "Stage": "test",
        "SageMakerEndpointName": name,
        "PreviousSageMakerEndpointName": LIVE_ENDPOINT,
    }
    (update,) = world.stack_clock.requests  # one UpdateStack: the previous template, this run's token
    assert update["UsePreviousTemplate"] is True or update["UsePreviousTemplate"] == "true"
    assert update["ClientRequestToken"] == f"release-{name.removeprefix(PREFIX + '-')}"
    # the stack policy template.yaml gives the release function, for this update only
    assert update["StackPolicyDuringUpdateBody"] == function_env("release_model")["RELEASE_STACK_POLICY"]
    assert update["RoleARN"].endswith(":role/cfn-release")
    assert update["Capabilities"] == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    assert execution.output_of("ReleaseModel")["release"]["result"]["status"] == "started"
    assert_live_and_previous_exist(world)
    lineage = read_lineage(name)
    assert lineage["model_version"] == name
    assert lineage["release"] == {"status": "released", "stack_status": "UPDATE_COMPLETE"}
    assert lineage["previous_endpoint"] == LIVE_ENDPOINT
    assert lineage["dataset"]["rows_per_class"] == {"negative": 6, "neutral": 6, "positive": 6}
    assert len(lineage["dataset"]["sha256"]) == 64
    version = s3.head_object(Bucket=DATA_BUCKET, Key=TRAINING_KEY)["VersionId"]
    assert lineage["dataset"]["version_id"] == version  # the validated version, by id
    assert lineage["dataset"]["training"]["uri"] == f"s3://{DATA_BUCKET}/{folder}data/train.csv"
    assert lineage["dataset"]["training"]["s3_prefix"] == source["S3Uri"]
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
    assert not world.stack_clock.requests
    assert run_resources(world)["endpoints"] == [name]  # kept for the manual release
    assert_live_and_previous_exist(world)
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
    assert run_resources(world) == NOTHING
    assert not boto3.client("s3").list_objects_v2(Bucket=DATA_BUCKET, Prefix="training/runs/").get("Contents")
    assert "CheckLiveEndpoints" not in execution.states_entered  # nothing to delete, nothing to check
    assert_live_and_previous_exist(world)
    assert "DatasetInvalid" in failure_notice(world)["Message"]


def test_automl_job_failed(world: World) -> None:
    world.clock.automl = Outcome("Failed", after=2, failure_reason="ClientError: not enough data")

    execution = world.run()

    assert_failed(execution, "AutoMLJobFailed", "ClientError: not enough data")
    assert "CreateModel" not in execution.states_entered
    assert "StopAutoMLJob" not in execution.states_entered  # it already ended
    assert run_resources(world) == NOTHING
    assert_live_and_previous_exist(world)
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
    assert {"CheckLiveEndpoints", "DeleteEndpoint", "DeleteEndpointConfig", "DeleteModel"} <= set(
        execution.states_entered
    )
    assert_nothing_left(world, name)
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert_live_and_previous_exist(world)
    assert "Cleanup errors: {}" in failure_notice(world)["Message"]


@pytest.mark.filterwarnings("ignore:Exception\\(CloudFormationError\\) with code Throttling")
def test_the_cleanup_deletes_nothing_when_the_stack_cannot_be_read(world: World) -> None:
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    world.clock.endpoint = Outcome("Failed", after=1, failure_reason="Insufficient capacity")
    world.stack_clock.unreadable = True  # DescribeStacks throttled through every retry

    execution = world.run()

    assert_failed(
        execution,
        "EndpointFailed",
        "Insufficient capacity",
        "Nothing of this run was deleted: the stack could not be read",
    )
    name = run_names(execution)
    assert "DeleteEndpoint" not in execution.states_entered
    assert_kept(world, name)  # endpoint, configuration and model
    guard_calls = [event for event, _ in world.runtime.calls_of("release-model") if event["action"] == "guard"]
    assert len(guard_calls) == 5  # the first try and 4 StackUnreadable retries
    world.stack_clock.unreadable = False
    assert_live_and_previous_exist(world)


def test_smoke_test_failed(world: World) -> None:
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    # the negative probe is answered "positive"
    queue_endpoint_answers(*("positive" if label == "negative" else label for label in SMOKE_TEXTS))

    execution = world.run()

    assert_failed(execution, "SmokeTestFailed", "negative probe answered positive")
    name = run_names(execution)
    assert_nothing_left(world, name)
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert_live_and_previous_exist(world)
    assert "ReleaseModel" not in execution.states_entered
    assert "SmokeTestFailed" in failure_notice(world)["Message"]
