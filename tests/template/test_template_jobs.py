"""The bulk jobs in the transformed template: routes and their function, the worker, the state machine and
its definition's wiring, the table and the bucket (encryption, TLS, lifecycle, retention), each role's
permissions (and what a holder of it could do), the failed-jobs alarm and the dashboard."""

from __future__ import annotations

import json
from typing import Any

from tests.template.cfn_helpers import as_list, of_type, policy_statements

JOB_OBJECT = "${JobsBucket.Arn}/jobs/"


def allowed(resources: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """action -> the resources it is allowed on, for one role's inline policies."""
    found: dict[str, list[Any]] = {}
    for statement in policy_statements(resources[role]):
        assert statement["Effect"] == "Allow", statement
        for action in as_list(statement["Action"]):
            found.setdefault(action, []).extend(as_list(statement["Resource"]))
    return found


def sub(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        return text if isinstance(text, str) else text[0]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if isinstance(value, dict) and "Ref" in value:
        return "<" + value["Ref"] + ">"
    return str(value)


def test_the_jobs_routes_run_the_jobs_function_behind_the_jwt_and_scope(resources: dict[str, Any]) -> None:
    paths = resources["Api"]["Properties"]["Body"]["paths"]
    routes = {(path, method): route for path, methods in paths.items() for method, route in methods.items()}
    jobs = {key: route for key, route in routes.items() if key[0].startswith("/jobs")}
    assert set(jobs) == {("/jobs", "post"), ("/jobs/{job_id}", "get"), ("/jobs/{job_id}/start", "post")}
    for route in jobs.values():
        assert route["security"] == [{"JwtAuthorizer": [{"Ref": "RequiredScope"}]}]
        uri = json.dumps(route["x-amazon-apigateway-integration"]["uri"])
        assert "JobsFunction" in uri and "JobWorkerFunction" not in uri


def test_the_table_is_keyed_by_owner_then_job_with_a_ttl(resources: dict[str, Any]) -> None:
    props = resources["JobsTable"]["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "job_id", "KeyType": "RANGE"},
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_the_bucket_is_encrypted_private_tls_only_and_expires_what_it_holds(resources: dict[str, Any]) -> None:
    props = resources["JobsBucket"]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-jobs"]["Prefix"] == "jobs/"
    assert rules["expire-jobs"]["ExpirationInDays"] == {"Ref": "JobRetentionDays"}
    assert rules["expire-old-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (deny,) = resources["JobsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # the record's TTL and the objects' lifecycle are the same period, read by the function from the same parameter
    env = resources["JobsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["JOB_RETENTION_DAYS"] == {"Ref": "JobRetentionDays"}


def test_the_api_role_writes_only_inputs_reads_only_inputs_and_results_and_starts_only_jobs(
    resources: dict[str, Any],
) -> None:
    """A holder of the role (or of a URL it signed) can upload a job's input and read a job's result; it
    cannot read another prefix, list the bucket, delete a record, scan the table or start another machine."""
    actions = allowed(resources, "JobsFunctionRole")
    assert {sub(r) for r in actions["s3:PutObject"]} == {JOB_OBJECT + "*/input"}
    assert {sub(r) for r in actions["s3:GetObject"]} == {JOB_OBJECT + "*/input", JOB_OBJECT + "*/result.*"}
    assert {sub(r) for r in actions["s3:DeleteObject"]} == {JOB_OBJECT + "*/input"}
    assert actions["states:StartExecution"] == [{"Ref": "JobsStateMachine"}]
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert not any(a.startswith(("s3:List", "dynamodb:Scan", "dynamodb:Query", "dynamodb:Delete")) for a in actions)


def test_the_worker_role_touches_job_objects_records_and_this_stacks_endpoints_only(resources: dict[str, Any]) -> None:
    actions = allowed(resources, "JobWorkerFunctionRole")
    assert set(actions) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "sagemaker:InvokeEndpoint",
    }
    for action in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"):
        assert {sub(r) for r in actions[action]} == {JOB_OBJECT + "*"}
    (invoke,) = [
        s for s in policy_statements(resources["JobWorkerFunctionRole"]) if s["Action"] == "sagemaker:InvokeEndpoint"
    ]
    assert invoke["Condition"] == {"StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}}


def test_the_state_machine_invokes_the_worker_reads_manifests_and_runs_only_its_own_children(
    resources: dict[str, Any],
) -> None:
    role = next(lid for lid in resources if lid.startswith("JobsStateMachineRole"))
    actions = allowed(resources, role)
    assert {sub(r) for r in actions["lambda:InvokeFunction"]} == {
        "<JobWorkerFunction.Arn>",
        "${JobWorkerFunction.Arn}:*",
    }
    assert {sub(r) for r in actions["s3:GetObject"]} == {JOB_OBJECT + "*/chunks.json"}
    (machine,) = {sub(r) for r in actions["states:StartExecution"]}
    assert machine.endswith(":stateMachine:${AWS::StackName}-jobs")  # itself: the Distributed Map's children
    assert not any(a.startswith(("sagemaker:", "dynamodb:", "iam:")) for a in actions)


def test_the_definition_gets_the_worker_the_bucket_and_the_concurrency(resources: dict[str, Any]) -> None:
    props = resources["JobsStateMachine"]["Properties"]
    assert props["DefinitionSubstitutions"] == {
        "WorkerFunctionArn": {"Fn::GetAtt": ["JobWorkerFunction", "Arn"]},
        "JobsBucket": {"Ref": "JobsBucket"},
        "MaxConcurrency": {"Ref": "JobMaxConcurrency"},
    }


def test_the_worker_can_be_capped_by_reserved_concurrency_and_is_not_by_default(
    resources: dict[str, Any], cfn: dict[str, Any]
) -> None:
    reserved = resources["JobWorkerFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": ["ReserveJobWorkerConcurrency", {"Ref": "JobWorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert cfn["Parameters"]["JobWorkerReservedConcurrency"]["Default"] == 0
    assert cfn["Parameters"]["JobMaxConcurrency"]["Default"] == 2


def test_failed_jobs_alarm_the_topic_and_show_on_the_dashboard(resources: dict[str, Any]) -> None:
    alarm = resources["JobsFailedAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] and alarm["TreatMissingData"] == "notBreaching"
    measured = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert measured == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    for metric in alarm["Metrics"]:
        if "MetricStat" in metric:
            assert metric["MetricStat"]["Metric"]["Dimensions"] == [
                {"Name": "StateMachineArn", "Value": {"Ref": "JobsStateMachine"}}
            ]
    body = json.dumps(resources["Dashboard"]["Properties"]["DashboardBody"])
    assert "${JobsFailedAlarm.Arn}" in body and "Bulk jobs: executions" in body


def test_the_worker_is_not_behind_any_route(resources: dict[str, Any]) -> None:
    worker = ({"Ref": "JobWorkerFunction"}, {"Fn::GetAtt": ["JobWorkerFunction", "Arn"]})
    permissions = [
        p for p in of_type(resources, "AWS::Lambda::Permission").values() if p["Properties"]["FunctionName"] in worker
    ]
    assert permissions == []
