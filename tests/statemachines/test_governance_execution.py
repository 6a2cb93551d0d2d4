"""statemachines/governance.asl.json executed under moto: both engines, and the failure paths.

moto does not run processing jobs; the tests check what the state machine asks SageMaker to run (image,
entry point, arguments parsed by the project's own CLI parsers, inputs, the report location) and how it
follows the job (SageMakerClock scripts the job status)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import boto3
import pytest

from governance import analyze, clarify
from tests.statemachines.conftest import (
    Execution,
    LambdaRuntime,
    Notifications,
    Outcome,
    SageMakerClock,
    notification_topic,
    role,
    run_state_machine,
    substitute,
)

DATA_BUCKET = "sentiment-data-gov"
REPORTS_BUCKET = "sentiment-reports-gov"
LIVE_ENDPOINT = "sentiment-live"
PREDICT_FUNCTION = "sentiment-api-test-PredictFunction"
LIVE_MODEL = "sentiment-test-20260101-000000"
EVAL_URI = f"s3://{DATA_BUCKET}/governance/eval/eval.csv"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
CLARIFY_IMAGE = "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"


@dataclass
class World:
    clock: SageMakerClock
    notifications: Notifications
    substitutions: dict[str, str]

    def run(self, payload: dict[str, Any] | None = None) -> Execution:
        return run_state_machine(substitute("governance", self.substitutions), "governance", payload or {})

    @staticmethod
    def jobs() -> list[dict[str, Any]]:
        sm = boto3.client("sagemaker")
        names = sorted(j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"])
        return [sm.describe_processing_job(ProcessingJobName=name) for name in names]


@pytest.fixture
def world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch) -> World:
    s3 = boto3.client("s3")
    for bucket in (DATA_BUCKET, REPORTS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    sm = boto3.client("sagemaker")
    execution_role = role("sagemaker-execution", "sagemaker.amazonaws.com")
    sm.create_model(
        ModelName=LIVE_MODEL,
        ExecutionRoleArn=execution_role,
        PrimaryContainer={"Image": "autopilot-image", "ModelDataUrl": f"s3://{DATA_BUCKET}/m.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=LIVE_MODEL,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": LIVE_MODEL,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=LIVE_ENDPOINT, EndpointConfigName=LIVE_MODEL)
    # The state machine reads the live endpoint from the predict function's alias `live` at run time.
    deploy_predict_function(LIVE_ENDPOINT)
    topic, notifications = notification_topic("governance-notifications")
    clock = SageMakerClock(processing=Outcome("Completed", after=2))
    clock.install(monkeypatch)
    substitutions = {
        "GovernanceEngine": "script",
        "PredictFunctionName": PREDICT_FUNCTION,
        "DataBucket": DATA_BUCKET,
        "ReportsBucket": REPORTS_BUCKET,
        "SageMakerExecutionRoleArn": execution_role,
        "NotificationTopicArn": topic,
        "JobNamePrefix": "sentiment-test",
        "ClarifyImageUri": CLARIFY_IMAGE,
        "SklearnImageUri": SKLEARN_IMAGE,
        "EvaluationDataUri": EVAL_URI,
        "ProcessingInstanceType": "ml.m5.large",
        "Region": "us-east-1",
        "StackName": "sentiment-api-test",
        "JobPollSeconds": "0",
        "JobMaxPolls": "4",
        "MaxJobRuntimeSeconds": "3600",
    }
    return World(clock, notifications, substitutions)


def deploy_predict_function(endpoint: str) -> None:
    """The predict function as the stack has it: version 1 with SAGEMAKER_ENDPOINT_NAME, behind alias `live`."""
    archive = BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "")
    lam = boto3.client("lambda")
    lam.create_function(
        FunctionName=PREDICT_FUNCTION,
        Runtime="python3.12",
        Role=role("predict-role", "lambda.amazonaws.com"),
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": {"SAGEMAKER_ENDPOINT_NAME": endpoint}},
    )
    version = lam.publish_version(FunctionName=PREDICT_FUNCTION)["Version"]
    lam.create_alias(FunctionName=PREDICT_FUNCTION, Name="live", FunctionVersion=version)


def report_date(execution: Execution) -> str:
    return str(execution.description["startDate"].date())


def test_script_engine_runs_the_project_analysis_against_the_live_endpoint(world: World) -> None:
    execution = world.run()

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "ReportWritten"
    date = report_date(execution)
    assert execution.output == {
        "report_date": date,
        "engine": "script",
        "model_version": LIVE_MODEL,
        "endpoint_name": LIVE_ENDPOINT,
        "report": f"s3://{REPORTS_BUCKET}/governance/{date}/analysis.json",
    }
    (job,) = world.jobs()
    assert execution.count("DescribeJob") == 2  # InProgress, then Completed
    app = job["AppSpecification"]
    assert app["ImageUri"] == SKLEARN_IMAGE
    assert app["ContainerEntrypoint"] == ["python3", "-m", "governance.analyze"]
    args = analyze.parse_args(app["ContainerArguments"])  # the project's own CLI accepts what SageMaker runs
    assert (args.endpoint_name, args.model_version, args.region) == (LIVE_ENDPOINT, LIVE_MODEL, "us-east-1")
    assert (args.report_date, str(args.data), str(args.out)) == (
        date,
        "/opt/ml/processing/input/data",
        "/opt/ml/processing/output",
    )
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["code"]["S3Uri"] == f"s3://{DATA_BUCKET}/code/governance/"
    assert inputs["code"]["LocalPath"] == "/opt/ml/processing/input/code/governance"
    # the shared wire format and constants beside it (scripts/governance-bundle.sh), on the same PYTHONPATH
    assert inputs["core"]["S3Uri"] == f"s3://{DATA_BUCKET}/code/sentiment_core/"
    assert inputs["core"]["LocalPath"] == "/opt/ml/processing/input/code/sentiment_core"
    assert inputs["data"]["S3Uri"] == EVAL_URI
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{REPORTS_BUCKET}/governance/{date}/"
    (request,) = execution.requests("createProcessingJob")  # moto does not keep Environment: read the call
    assert request["Environment"] == {"PYTHONPATH": "/opt/ml/processing/input/code"}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    (message,) = world.notifications.messages()
    assert message["Subject"] == "sentiment-api governance report" and LIVE_MODEL in message["Message"]


def test_clarify_engine_then_converts_to_the_same_layout(world: World) -> None:
    execution = world.run({"engine": "clarify"})

    assert execution.status == "SUCCEEDED", execution.description
    date = report_date(execution)
    clarify_job, convert_job = sorted(world.jobs(), key=lambda j: j["ProcessingJobName"].count("-govc-"))
    assert clarify_job["AppSpecification"] == {"ImageUri": CLARIFY_IMAGE}
    inputs = {i["InputName"]: i["S3Input"] for i in clarify_job["ProcessingInputs"]}
    assert set(inputs) == {"analysis_config", "dataset"}
    config_prefix = inputs["analysis_config"]["S3Uri"].removeprefix(f"s3://{DATA_BUCKET}/")
    (stored,) = boto3.client("s3").list_objects_v2(Bucket=DATA_BUCKET, Prefix=config_prefix)["Contents"]
    written = json.loads(boto3.client("s3").get_object(Bucket=DATA_BUCKET, Key=stored["Key"])["Body"].read())
    assert written == clarify.analysis_config(LIVE_ENDPOINT)
    assert written["methods"]["shap"]["text_config"]["granularity"] == "token"
    (clarify_output,) = clarify_job["ProcessingOutputConfig"]["Outputs"]
    assert clarify_output["OutputName"] == "analysis_result"
    assert clarify_output["S3Output"]["S3Uri"] == f"s3://{REPORTS_BUCKET}/governance/{date}/clarify/"
    assert convert_job["AppSpecification"]["ContainerEntrypoint"] == ["python3", "-m", "governance.clarify"]
    args = clarify.parse_args(convert_job["AppSpecification"]["ContainerArguments"])
    assert (args.model_version, args.endpoint_name, args.report_date) == (LIVE_MODEL, LIVE_ENDPOINT, date)
    convert_inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in convert_job["ProcessingInputs"]}
    assert convert_inputs["clarify"] == clarify_output["S3Output"]["S3Uri"]
    (output,) = convert_job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == f"s3://{REPORTS_BUCKET}/governance/{date}/"
    assert execution.output["engine"] == "clarify"


def test_failed_job_fails_the_run_with_its_reason(world: World) -> None:
    world.clock.processing = Outcome("Failed", after=1, failure_reason="AlgorithmError: endpoint throttled")

    execution = world.run()

    assert execution.status == "FAILED"
    assert execution.last_state == "GovernanceFailed"
    assert execution.description["error"] == "GovernanceJobFailed"
    assert "AlgorithmError: endpoint throttled" in execution.description["cause"]
    (message,) = world.notifications.messages()
    assert message["Subject"] == "sentiment-api governance job FAILED"


def test_job_that_never_ends_is_stopped(world: World) -> None:
    world.clock.processing = Outcome("Completed", after=99)  # InProgress for longer than the ceiling

    execution = world.run()

    assert execution.description["error"] == "GovernanceJobTimedOut"
    assert execution.count("DescribeJob") == 4
    assert "StopJob" in execution.states_entered
    (job,) = world.jobs()
    assert job["ProcessingJobStatus"] == "Stopped"


def test_unknown_engine(world: World) -> None:
    execution = world.run({"engine": "shap-deluxe"})

    assert execution.description["error"] == "UnknownEngine"
    assert world.jobs() == []


def test_the_live_endpoint_is_the_one_alias_live_calls_not_latest(world: World) -> None:
    """A release in progress has changed $LATEST already; the report is about what `live` serves."""
    boto3.client("lambda").update_function_configuration(
        FunctionName=PREDICT_FUNCTION, Environment={"Variables": {"SAGEMAKER_ENDPOINT_NAME": "sentiment-canary"}}
    )
    execution = world.run()

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.output["endpoint_name"] == LIVE_ENDPOINT
    (job,) = world.jobs()
    assert analyze.parse_args(job["AppSpecification"]["ContainerArguments"]).endpoint_name == LIVE_ENDPOINT
