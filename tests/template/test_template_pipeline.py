"""Section 7 (ML pipeline & governance) and GET /explain: state machines wired to their definitions, the
weekly schedule shipped disabled, least-privilege roles (no *FullAccess, PassRole scoped), hardened buckets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sentiment_core.settings import ConfigurationError

from tests.template.cfn_helpers import as_list, of_type, policy_statements, resolve_sub
from tests.template.conftest import PSEUDO_PARAMETERS, REPO_ROOT

PIPELINE_ROLES = (
    "RetrainStateMachineRole",
    "GovernanceStateMachineRole",
    "SageMakerExecutionRole",
    "ValidateDatasetFunctionRole",
    "SmokeTestEndpointFunctionRole",
    "ReleaseModelFunctionRole",
    "ModelReleaseRole",
    "ExplainFunctionRole",
)
STATE_MACHINES = {
    "RetrainStateMachine": "statemachines/retrain.asl.json",
    "GovernanceStateMachine": "statemachines/governance.asl.json",
}
BUCKETS = ("DataBucket", "ReportsBucket", "PipelineAccessLogsBucket")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


def expand(statement: dict[str, Any]) -> dict[str, Any] | None:
    """A conditional statement (Fn::If [condition, statement, AWS::NoValue]) as it is when the condition holds."""
    if "Fn::If" in statement:
        _, when_true, _ = statement["Fn::If"]
        return None if when_true == {"Ref": "AWS::NoValue"} else when_true
    return statement


def statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for s in map(expand, policy_statements(resources[role])) if s is not None]


def by_sid(resources: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements(resources, role) if "Sid" in s}


def arns(value: Any, variables: dict[str, Any]) -> Iterator[str]:
    for item in as_list(value):
        if isinstance(item, dict) and "Fn::Sub" in item:
            yield resolve_sub(item, variables)
        else:
            yield str(item)


# ---- state machines ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("logical_id", "path"), STATE_MACHINES.items())
def test_state_machine_definition_and_substitutions(
    sam_template: dict[str, Any], resources: dict[str, Any], logical_id: str, path: str
) -> None:
    props = sam_template["Resources"][logical_id]["Properties"]
    assert props["DefinitionUri"] == path
    assert props["Type"] == "STANDARD"
    placeholders = set(_PLACEHOLDER.findall((REPO_ROOT / path).read_text("utf-8")))
    assert set(props["DefinitionSubstitutions"]) == placeholders  # none missing, none unused
    machine = resources[logical_id]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    assert machine["Properties"]["DefinitionSubstitutions"] == props["DefinitionSubstitutions"]


def test_template_waits_are_minutes_not_test_seconds(sam_template: dict[str, Any]) -> None:
    retrain = sam_template["Resources"]["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]
    governance = sam_template["Resources"]["GovernanceStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert int(retrain["AutoMLPollSeconds"]) >= 60 and int(retrain["EndpointPollSeconds"]) >= 30
    assert int(governance["JobPollSeconds"]) >= 30
    # the AutoML poll ceiling outlasts the job's own runtime limit (default 4 h)
    assert int(retrain["AutoMLPollSeconds"]) * int(retrain["AutoMLMaxPolls"]) > 4 * 3600


def test_retraining_notifies_the_alarm_topic_and_names_resources_per_stage(sam_template: dict[str, Any]) -> None:
    substitutions = sam_template["Resources"]["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["NotificationTopicArn"] == {"Ref": "AlarmTopic"}
    assert substitutions["DefaultJobNamePrefix"] == {"Fn::Sub": "sentiment-${Stage}"}
    assert substitutions["DefaultTrainingDataUri"] == {"Fn::Sub": "s3://${DataBucket}/${TrainingDataKey}"}


def test_weekly_schedule_is_utc_and_shipped_disabled(resources: dict[str, Any], cfn: dict[str, Any]) -> None:
    (schedule,) = of_type(resources, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["Target"]["Arn"] == {"Ref": "GovernanceStateMachine"}
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert props["State"] == {"Ref": "GovernanceScheduleState"}
    state = cfn["Parameters"]["GovernanceScheduleState"]
    assert (state["Default"], sorted(state["AllowedValues"])) == ("DISABLED", ["DISABLED", "ENABLED"])
    assert props["ScheduleExpression"] == {"Ref": "GovernanceScheduleExpression"}
    assert re.fullmatch(
        r"cron\(\d+ \d+ \? \* (MON|SUN|[A-Z]{3}) \*\)", cfn["Parameters"]["GovernanceScheduleExpression"]["Default"]
    )
    (statement,) = statements(resources, props["Target"]["RoleArn"]["Fn::GetAtt"][0])
    assert as_list(statement["Action"]) == ["states:StartExecution"]


def test_governance_engine_is_a_parameter(cfn: dict[str, Any], sam_template: dict[str, Any]) -> None:
    engine = cfn["Parameters"]["GovernanceEngine"]
    assert (engine["Default"], sorted(engine["AllowedValues"])) == ("script", ["clarify", "script"])
    substitutions = sam_template["Resources"]["GovernanceStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["GovernanceEngine"] == {"Ref": "GovernanceEngine"}
    # the live endpoint is read at run time (alias `live` of the predict function), not substituted
    assert substitutions["PredictFunctionName"] == {"Ref": "PredictFunction"}


# ---- IAM -------------------------------------------------------------------------------------------------
def test_no_full_access_managed_policies_anywhere(resources: dict[str, Any]) -> None:
    for logical_id, role in of_type(resources, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert "FullAccess" not in str(arn), f"{logical_id}: {arn}"


@pytest.mark.parametrize("role", PIPELINE_ROLES)
def test_pipeline_roles_name_actions_and_scope_resources(
    resources: dict[str, Any], parameter_values: dict[str, Any], role: str
) -> None:
    variables = {
        **PSEUDO_PARAMETERS,
        **{k: str(v) for k, v in parameter_values.items() if isinstance(v, str)},
        "DataBucket.Arn": "arn:aws:s3:::data",
        "ReportsBucket.Arn": "arn:aws:s3:::reports",
        "PredictFunction": "sentiment-api-prod-PredictFunction-ABC",
        "ExplainFunction": "sentiment-api-prod-ExplainFunction-ABC",
        "JobsFunction": "sentiment-api-prod-JobsFunction-ABC",
        "ServerlessDeploymentApplication": "sentiment-api-prod-ServerlessDeploymentApplication-ABC",
        "PredictFunctionDeploymentGroup": "sentiment-api-prod-PredictFunctionDeploymentGroup-ABC",
        "Dashboard": "sentiment-api-prod-operations",
    }
    assert statements(resources, role)
    for statement in statements(resources, role):
        assert statement["Effect"] == "Allow", statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{role}: {action}"
        for resource in as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                arn = resolve_sub(resource, variables)
                # a wildcard only after a fixed name prefix or path (sentiment-<stage>*, governance/*, stack ids)
                assert arn != "*" and not arn.endswith(":*:*"), f"{role}: {arn}"
                assert re.search(r"[:/][A-Za-z0-9/_.-]+\*?$|:\*$", arn), f"{role}: {arn}"
            else:
                assert resource != "*", f"{role}: {statement}"


def pass_role_statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id in of_type(resources, "AWS::IAM::Role"):
        for statement in statements(resources, logical_id):
            if "iam:PassRole" in as_list(statement.get("Action", [])):
                yield logical_id, statement


def test_pass_role_only_for_the_sagemaker_role_and_the_release_role(resources: dict[str, Any]) -> None:
    """The state machines pass the SageMaker role to SageMaker; the release function passes ModelReleaseRole
    to CloudFormation, which passes the two functions' own roles back to Lambda (their configuration update);
    tests/template/test_template_release_role.py checks the release path in full."""
    found = dict(pass_role_statements(resources))
    assert set(found) == {
        "RetrainStateMachineRole",
        "GovernanceStateMachineRole",
        "ReleaseModelFunctionRole",
        "ModelReleaseRole",
    }
    for role in ("RetrainStateMachineRole", "GovernanceStateMachineRole"):
        statement = found[role]
        assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    release = found["ReleaseModelFunctionRole"]
    assert release["Resource"] == {"Fn::GetAtt": ["ModelReleaseRole", "Arn"]}
    assert release["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    functions = found["ModelReleaseRole"]
    assert functions["Resource"] == [
        {"Fn::GetAtt": ["PredictFunctionRole", "Arn"]},
        {"Fn::GetAtt": ["ExplainFunctionRole", "Arn"]},
        {"Fn::GetAtt": ["JobsFunctionRole", "Arn"]},
    ]
    assert functions["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


def test_release_pass_role_exists_only_for_automatic_releases(sam_template: dict[str, Any]) -> None:
    policy = sam_template["Resources"]["ReleaseModelFunction"]["Properties"]["Policies"][0]
    conditional = [s["Fn::If"] for s in policy["Statement"] if "Fn::If" in s]
    assert {condition for condition, _, _ in conditional} == {"AutomaticRelease"}
    assert all(when_false == {"Ref": "AWS::NoValue"} for _, _, when_false in conditional)
    assert {when_true["Sid"] for _, when_true, _ in conditional} == {
        "UpdateThisStackAsTheReleaseRoleOnly",
        "ApplyTheReleaseStackPolicy",
        "ExpandTheSamTransform",
        "PassTheReleaseRoleToCloudFormationOnly",
    }
    assert sam_template["Resources"]["ModelReleaseRole"]["Condition"] == "AutomaticRelease"
    assert sam_template["Conditions"]["AutomaticRelease"] == {"Fn::Equals": [{"Ref": "ModelRelease"}, "automatic"]}


def test_sagemaker_execution_role_is_scoped_to_the_pipeline_data(resources: dict[str, Any]) -> None:
    role = resources["SageMakerExecutionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    sids = by_sid(resources, "SageMakerExecutionRole")
    assert sids["ListDataPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        "training/*",
        "automl/*",
        "governance/*",
        "code/*",
    ]
    assert [r["Fn::Sub"] for r in sids["ReadInputs"]["Resource"]] == [
        "${DataBucket.Arn}/training/*",
        "${DataBucket.Arn}/governance/*",
        "${DataBucket.Arn}/code/*",
        "${DataBucket.Arn}/automl/*",
    ]
    assert sids["WriteAutopilotOutput"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/automl/*"}
    assert sids["ReadWriteGovernanceReports"]["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/governance/*"}
    # by tag, not by name: a model release changes no IAM policy (test_template_release_role.py)
    assert sids["InvokeLiveEndpoint"]["Resource"]["Fn::Sub"].endswith(":endpoint/*")
    assert sids["InvokeLiveEndpoint"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}
    }


def test_state_machine_roles(resources: dict[str, Any]) -> None:
    retrain = by_sid(resources, "RetrainStateMachineRole")
    assert set(retrain) == {
        "InvokeTaskFunctions",
        "CreateTaggedSageMakerResources",
        "CreateTaggedEndpointConfigsOfTheRunsModels",
        "CreateTaggedEndpoints",
        "TagOnlyWhileCreating",
        "UseTaggedEndpointConfigs",
        "ManageTaggedSageMakerResources",
        "PassTheSageMakerRoleToSageMakerOnly",
        "OneExecutionAtATime",
        "RecordLineage",
        "Notify",
        "EncryptNotifications",
    }
    # SageMaker by tag, not by name (tests/template/test_template_combinations.py: the tag conditions)
    # (except the model an endpoint configuration names: no tag key for it, the run's model names)
    assert [sid for sid, s in retrain.items() if "sentiment-${Stage}" in json.dumps(s)] == [
        "CreateTaggedEndpointConfigsOfTheRunsModels"
    ]
    assert retrain["RecordLineage"]["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/lineage/*"}
    # one execution at a time: it lists its own executions (and no longer reads the stack itself)
    assert retrain["OneExecutionAtATime"]["Action"] == "states:ListExecutions"
    assert retrain["OneExecutionAtATime"]["Resource"]["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}-retrain")
    assert resources["RetrainStateMachine"]["Properties"]["StateMachineName"] == {
        "Fn::Sub": "${AWS::StackName}-retrain"
    }
    assert not any("cloudformation:" in str(s["Action"]) for s in retrain.values())
    governance = by_sid(resources, "GovernanceStateMachineRole")
    assert {"CreateTaggedProcessingJobs", "TagProcessingJobsOnlyWhileCreating", "ManageTaggedProcessingJobs"} <= set(
        governance
    )
    assert all("processing-job/sentiment-" not in json.dumps(s) for s in governance.values())
    assert governance["WriteClarifyConfiguration"]["Resource"] == {
        "Fn::Sub": "${DataBucket.Arn}/governance/clarify-config/*"
    }


def test_release_function_may_update_this_stack_only(resources: dict[str, Any]) -> None:
    sids = by_sid(resources, "ReleaseModelFunctionRole")
    assert sids["ReadThisStack"]["Resource"]["Fn::Sub"].endswith(":stack/${AWS::StackName}/*")
    assert sids["UpdateThisStackAsTheReleaseRoleOnly"]["Resource"]["Fn::Sub"].endswith(":stack/${AWS::StackName}/*")
    assert sids["ApplyTheReleaseStackPolicy"]["Resource"]["Fn::Sub"].endswith(":stack/${AWS::StackName}/*")
    assert sids["ExpandTheSamTransform"]["Resource"]["Fn::Sub"].endswith(":aws:transform/Serverless-2016-10-31")


# ---- buckets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bucket", BUCKETS)
def test_buckets_are_encrypted_private_and_owner_enforced(resources: dict[str, Any], bucket: str) -> None:
    props = resources[bucket]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    expected = "AES256" if bucket == "PipelineAccessLogsBucket" else "aws:kms"  # log delivery: SSE-S3 only
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == expected
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    assert all(r["Status"] == "Enabled" for r in rules)
    assert resources[bucket]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("bucket", ["DataBucket", "ReportsBucket"])
def test_data_and_reports_are_versioned_and_logged(resources: dict[str, Any], bucket: str) -> None:
    props = resources[bucket]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "PipelineAccessLogsBucket"}
    assert any("NoncurrentVersionExpiration" in r for r in props["LifecycleConfiguration"]["Rules"])


def bucket_policy(resources: dict[str, Any], bucket: str) -> list[dict[str, Any]]:
    (policy,) = [
        p for p in of_type(resources, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    return as_list(policy["Properties"]["PolicyDocument"]["Statement"])


@pytest.mark.parametrize("bucket", BUCKETS)
def test_buckets_deny_plain_http(resources: dict[str, Any], bucket: str) -> None:
    (deny,) = [s for s in bucket_policy(resources, bucket) if s.get("Sid") == "TlsOnly"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]


def test_only_the_validate_function_writes_the_runs_training_copies(resources: dict[str, Any]) -> None:
    """What Autopilot trains on (training/runs/<run>/, written by ValidateDataset) can be written by no one
    else; the validate function may read object versions and write there, nothing more."""
    denies = [s for s in bucket_policy(resources, "DataBucket") if s["Effect"] == "Deny"]
    assert {s["Sid"] for s in denies} == {"TlsOnly", "OnlyValidationWritesRunCopies"}
    (runs,) = [s for s in denies if s["Sid"] == "OnlyValidationWritesRunCopies"]
    assert (runs["Principal"], runs["Action"]) == ("*", "s3:PutObject")
    assert runs["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/training/runs/*"}
    assert runs["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["ValidateDatasetFunctionRole", "Arn"]}}
    }
    sids = by_sid(resources, "ValidateDatasetFunctionRole")
    assert set(sids) == {"ListTrainingData", "ReadTrainingData", "ReadTheValidatedVersion", "WriteTheRunsCopy"}
    assert sids["ReadTheValidatedVersion"]["Action"] == "s3:GetObjectVersion"
    assert sids["WriteTheRunsCopy"]["Action"] == "s3:PutObject"
    assert sids["WriteTheRunsCopy"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/training/runs/*"}
    rules = {r["Id"]: r for r in resources["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-run-copies"]["Prefix"] == "training/runs/"


def test_access_log_delivery_is_granted_to_the_logging_service_for_the_two_buckets(resources: dict[str, Any]) -> None:
    (allow,) = [s for s in bucket_policy(resources, "PipelineAccessLogsBucket") if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["DataBucket", "Arn"]},
        {"Fn::GetAtt": ["ReportsBucket", "Arn"]},
    ]


# ---- GET /explain ----------------------------------------------------------------------------------------
def test_explain_route_uses_the_jwt_authorizer_and_scope(resources: dict[str, Any]) -> None:
    (api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    route = api["Properties"]["Body"]["paths"]["/explain"]["get"]
    assert route["security"] == [{"JwtAuthorizer": [{"Ref": "RequiredScope"}]}]
    integration = route["x-amazon-apigateway-integration"]
    assert integration["payloadFormatVersion"] == "2.0"
    assert "${ExplainFunction.Arn}" in integration["uri"]["Fn::Sub"]
    permission = resources["ExplainFunctionExplainPermission"]["Properties"]
    assert permission["SourceArn"]["Fn::Sub"][0].endswith("${__ApiId__}/${__Stage__}/GET/explain")


def test_explain_function_configuration_and_least_privilege(resources: dict[str, Any]) -> None:
    props = resources["ExplainFunction"]["Properties"]
    env = props["Environment"]["Variables"]
    assert env["REPORTS_URI"] == {"Fn::Sub": "s3://${ReportsBucket}/governance/"}
    assert {
        "SAGEMAKER_ENDPOINT_NAME",
        "RATE_LIMIT_TABLE_NAME",
        "RATE_LIMIT_PER_MINUTE",
        "RATE_LIMIT_BURST",
        "RATE_LIMIT_FAIL_MODE",
        "STAGE",
    } <= set(env)
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "ExplainFunctionLogGroup"}
    assert resources["ExplainFunctionLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    sids = by_sid(resources, "ExplainFunctionRole")
    assert set(sids) == {"ListGovernanceReports", "ReadGovernanceReports", "UpdateRateLimitState"}
    assert sids["ListGovernanceReports"]["Action"] == "s3:ListBucket"
    assert sids["ListGovernanceReports"]["Condition"] == {"StringLike": {"s3:prefix": ["governance/", "governance/*"]}}
    assert sids["ReadGovernanceReports"]["Action"] == "s3:GetObject"
    assert sids["ReadGovernanceReports"]["Resource"] == {"Fn::Sub": "${ReportsBucket.Arn}/governance/*"}
    assert sids["UpdateRateLimitState"]["Action"] == "dynamodb:UpdateItem"
    assert not any("sagemaker" in str(s["Action"]) for s in sids.values())  # it reads reports, not the model


@pytest.mark.parametrize(
    "function", ["ExplainFunction", "ValidateDatasetFunction", "SmokeTestEndpointFunction", "ReleaseModelFunction"]
)
def test_new_functions_use_the_layers_and_their_own_log_group(resources: dict[str, Any], function: str) -> None:
    props = resources[function]["Properties"]
    expected = {"ExplainFunction": ["CoreLayer", "ApiLayer"], "ReleaseModelFunction": []}.get(function, ["CoreLayer"])
    # SAM suffixes the layer version's logical id; the release function (it may update the stack) has none
    layers = props.get("Layers", [])
    assert [next(p for p in expected if layer["Ref"].startswith(p)) for layer in layers] == expected
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]
    group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


#: What each retraining task reads (functions/retraining/retraining/config.py), besides the Globals.
RETRAINING_VARIABLES = {
    "ValidateDatasetFunction": ({"DATA_BUCKET", "TRAINING_PREFIX", "JOB_NAME_PREFIX_SCOPE"}, "dataset"),
    "SmokeTestEndpointFunction": (set(), None),
}
#: What the release function reads (functions/release_model/model_release/config.py), besides STAGE.
RELEASE_VARIABLES = {"STACK_NAME", "CLOUDFORMATION_ROLE_ARN", "RELEASE_STACK_POLICY"}


@pytest.mark.parametrize("function", sorted(RETRAINING_VARIABLES))
def test_each_retraining_function_gets_only_its_tasks_variables(sam_template: dict[str, Any], function: str) -> None:
    """One CodeUri and one configuration type, but not one environment: the function that parses untrusted
    CSV holds nothing of the release, and each task's section of the configuration is complete."""
    from retraining.config import RetrainingSettings

    from tests.helpers import function_env

    names, section = RETRAINING_VARIABLES[function]
    own = (sam_template["Resources"][function]["Properties"].get("Environment") or {}).get("Variables", {})
    assert set(own) == names
    settings = RetrainingSettings.from_env(function_env(function))
    if section == "dataset":
        assert settings.dataset is not None
    else:
        with pytest.raises(ConfigurationError):
            _ = settings.dataset


def test_the_release_function_has_its_own_code_and_settings(sam_template: dict[str, Any]) -> None:
    """Its own CodeUri (not the retraining functions'), no layer, and the variables its settings read."""
    props = sam_template["Resources"]["ReleaseModelFunction"]["Properties"]
    assert (props["CodeUri"], props["Handler"]) == ("functions/release_model/", "app.release_model")
    assert "Layers" not in props
    assert "STAGE" in sam_template["Globals"]["Function"]["Environment"]["Variables"]
    own = set((props.get("Environment") or {}).get("Variables", {}))
    assert "STACK_NAME" in own and own <= RELEASE_VARIABLES
    retraining_code = {
        res["Properties"]["CodeUri"] for lid, res in sam_template["Resources"].items() if lid in RETRAINING_VARIABLES
    }
    assert retraining_code == {"functions/retraining/"}
