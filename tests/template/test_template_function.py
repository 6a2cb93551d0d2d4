"""The predict function: configuration, layer, alias, logs and least-privilege IAM."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.template.cfn_helpers import as_list, contains_wildcard, of_type, policy_statements, resolve_sub
from tests.template.conftest import PSEUDO_PARAMETERS, REPO_ROOT

ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # what SAM attaches for Tracing: Active
}
CLOUDWATCH_RETENTION_DAYS = {
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
}


@pytest.fixture(scope="module")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    assert resources["PredictFunction"]["Type"] == "AWS::Lambda::Function"
    return resources["PredictFunction"]


@pytest.fixture(scope="module")
def role(resources: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert resources[role_id]["Type"] == "AWS::IAM::Role"
    return resources[role_id]


def test_runtime_handler_and_shared_settings(function: dict[str, Any]) -> None:
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == "app.lambda_handler"
    assert props["Architectures"] in (["arm64"], ["x86_64"])
    assert props["Timeout"] == 4  # above the Globals' 3 s: the batch route's worst case (bench/latency_budget.py)
    assert props["MemorySize"] >= 128
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_globals_hold_the_shared_function_settings(sam_template: dict[str, Any]) -> None:
    shared = sam_template["Globals"]["Function"]
    assert {"Runtime", "Architectures", "MemorySize", "Timeout", "Tracing", "Environment"} <= set(shared)
    assert set(shared["Environment"]["Variables"]) == {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "STAGE",
    }


SERVING_ENDPOINT = {
    "Fn::If": [
        "UseBootstrapEndpoint",
        {"Fn::GetAtt": ["BootstrapEndpoint", "EndpointName"]},
        {"Ref": "SageMakerEndpointName"},
    ]
}


def test_environment_matches_the_configuration_contract(function: dict[str, Any]) -> None:
    # docs/architecture.md: the required variables; optional ones keep their code defaults.
    assert function["Properties"]["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "sentiment-api",
        "POWERTOOLS_METRICS_NAMESPACE": "SentimentApi",
        "STAGE": {"Ref": "Stage"},
        "SAGEMAKER_ENDPOINT_NAME": SERVING_ENDPOINT,
        "RATE_LIMIT_TABLE_NAME": {"Ref": "RateLimitTable"},
        "RATE_LIMIT_PER_MINUTE": {"Ref": "RateLimitPerMinute"},
        "RATE_LIMIT_BURST": {"Ref": "RateLimitBurst"},
        "RATE_LIMIT_FAIL_MODE": {"Ref": "RateLimitFailMode"},
        "PREDICTION_CACHE": {"Ref": "PredictionCache"},
    }


def test_function_uses_the_core_and_api_layers(function: dict[str, Any], resources: dict[str, Any]) -> None:
    layers = function["Properties"]["Layers"]
    assert len(layers) == 2
    names = []
    for ref in layers:
        layer = resources[ref["Ref"]]
        assert layer["Type"] == "AWS::Lambda::LayerVersion"
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
        assert layer["Properties"]["CompatibleArchitectures"] == function["Properties"]["Architectures"]
        assert layer["DeletionPolicy"] == "Retain"
        names.append(layer["Properties"]["LayerName"]["Fn::Sub"])
    assert names == ["${AWS::StackName}-core", "${AWS::StackName}-api"]


@pytest.mark.parametrize(("layer_id", "folder"), [("CoreLayer", "core"), ("ApiLayer", "api")])
def test_layers_are_built_by_sam_from_their_folders(sam_template: dict[str, Any], layer_id: str, folder: str) -> None:
    layer = sam_template["Resources"][layer_id]
    assert layer["Properties"]["ContentUri"] == f"layers/{folder}/"
    # makefile build: pinned requirements installed with --no-deps (layers/<folder>/Makefile)
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert (REPO_ROOT / "layers" / folder / "Makefile").read_text().count(f"build-{layer_id}:") == 1


def test_alias_live_points_to_a_published_version(resources: dict[str, Any]) -> None:
    alias = resources["PredictFunctionAliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}
    version_id, attribute = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"]
    assert attribute == "Version"
    version = resources[version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}


def test_function_logs_to_its_own_group_with_retention(function: dict[str, Any], resources: dict[str, Any]) -> None:
    logging_config = function["Properties"]["LoggingConfig"]
    assert logging_config["LogGroup"] == {"Ref": "PredictFunctionLogGroup"}
    group = resources["PredictFunctionLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_log_group_has_retention(resources: dict[str, Any]) -> None:
    groups = of_type(resources, "AWS::Logs::LogGroup")
    assert groups
    for logical_id, group in groups.items():
        assert "RetentionInDays" in group["Properties"], logical_id


def test_log_retention_parameter(cfn: dict[str, Any]) -> None:
    param = cfn["Parameters"]["LogRetentionDays"]
    assert param["Default"] == 30
    assert set(param["AllowedValues"]) == CLOUDWATCH_RETENTION_DAYS


def test_role_has_exactly_two_statements(role: dict[str, Any]) -> None:
    statements = {s["Sid"]: s for s in policy_statements(role)}
    assert set(statements) == {"InvokeSentimentEndpoint", "UpdateRateLimitState"}, statements


def test_role_can_update_items_of_the_rate_limit_table_only(role: dict[str, Any]) -> None:
    (statement,) = [s for s in policy_statements(role) if s["Sid"] == "UpdateRateLimitState"]
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["dynamodb:UpdateItem"]
    assert as_list(statement["Resource"]) == [{"Fn::GetAtt": ["RateLimitTable", "Arn"]}]
    assert not {"NotAction", "NotResource", "Condition"} & set(statement)


def test_role_invokes_only_this_stacks_endpoints(role: dict[str, Any], function: dict[str, Any]) -> None:
    """The endpoints tagged with this stack's name (the live one, and during a model release the previous one,
    which the stable version still calls), not endpoints by name: a release then changes no IAM policy
    (tests/template/test_template_release_role.py). Which endpoint the function calls is its environment."""
    (statement,) = [s for s in policy_statements(role) if s["Sid"] == "InvokeSentimentEndpoint"]
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["sagemaker:InvokeEndpoint"]
    assert (
        resolve_sub(statement["Resource"], PSEUDO_PARAMETERS) == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/*"
    )
    assert statement["Condition"] == {
        "StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}
    }
    assert not {"NotAction", "NotResource"} & set(statement)
    env = function["Properties"]["Environment"]["Variables"]
    assert env["SAGEMAKER_ENDPOINT_NAME"] == SERVING_ENDPOINT


def test_no_wildcards_in_inline_policies(role: dict[str, Any]) -> None:
    """No wildcard action; a wildcard resource only for the endpoints, and only under the stack's tag."""
    for statement in policy_statements(role):
        assert not contains_wildcard(statement.get("Action")), statement
        if statement["Sid"] == "InvokeSentimentEndpoint":
            assert "aws:ResourceTag/sentiment-api:stack" in statement["Condition"]["StringEquals"], statement
            continue
        assert not contains_wildcard(statement.get("Resource")), statement


def test_managed_policies_are_only_logs_and_xray(role: dict[str, Any]) -> None:
    assert set(role["Properties"]["ManagedPolicyArns"]) == ALLOWED_MANAGED_POLICIES


def test_role_is_assumed_by_lambda_only(role: dict[str, Any]) -> None:
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": ["lambda.amazonaws.com"]}
    assert as_list(statement["Action"]) == ["sts:AssumeRole"]


def test_no_other_iam_policy_resources(resources: dict[str, Any], function: dict[str, Any]) -> None:
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        assert not of_type(resources, rtype), rtype
    # The predict function has a role of its own, shared with nothing else (other roles are checked by the
    # deployment, observability, pipeline and security tests).
    assert function["Properties"]["Role"] == {"Fn::GetAtt": ["PredictFunctionRole", "Arn"]}
    users = [
        lid
        for lid, res in resources.items()
        if res.get("Properties", {}).get("Role") == {"Fn::GetAtt": ["PredictFunctionRole", "Arn"]}
    ]
    assert users == ["PredictFunction"]


def test_endpoint_name_must_be_lower_case(cfn: dict[str, Any]) -> None:
    # SageMaker lower-cases endpoint names in ARNs; retraining names its endpoints in lower case.
    pattern = cfn["Parameters"]["SageMakerEndpointName"]["AllowedPattern"]
    for good in ("sentiment-endpoint", "a", "e1-2", "x" * 63):
        assert re.fullmatch(pattern, good), good
    for bad in ("Sentiment-Endpoint", "-lead", "trail-", "under_score", "x" * 64):
        assert not re.fullmatch(pattern, bad), bad
    assert re.fullmatch(pattern, ""), "empty: the stack serves the shipped model (the bootstrap endpoint)"


def test_predict_is_built_from_nothing_the_other_functions_own(sam_template: dict[str, Any]) -> None:
    """A change to hook, explain or retraining code changes no input of the predict function's build (its
    CodeUri and its layers' ContentUri), so it publishes no new predict version and starts no canary."""
    resources = sam_template["Resources"]
    predict = resources["PredictFunction"]["Properties"]
    inputs = [
        REPO_ROOT / predict["CodeUri"],
        *(REPO_ROOT / resources[layer["Ref"]]["Properties"]["ContentUri"] for layer in predict["Layers"]),
    ]
    others = {
        REPO_ROOT / res["Properties"]["CodeUri"]
        for lid, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function" and lid != "PredictFunction"
    }
    assert {REPO_ROOT / "functions" / name for name in ("explain", "canary_hooks", "retraining")} <= others
    for source in inputs:
        for other in others:
            assert not (source == other or source in other.parents or other in source.parents), (source, other)
