"""The HTTP API: JWT authorizer, the POST /predict route, stage throttling and access logs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.template.cfn_helpers import only, stage_throttles

# $context variables that HTTP API access logs support (API Gateway developer guide, "Customize HTTP API
# access logs"). Request headers are not among them, so x-correlation-id cannot be logged by the stage.
HTTP_API_ACCESS_LOG_VARIABLES = {
    "$context.requestId",
    "$context.extendedRequestId",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.requestTime",
    "$context.requestTimeEpoch",
    "$context.httpMethod",
    "$context.path",
    "$context.routeKey",
    "$context.status",
    "$context.protocol",
    "$context.responseLength",
    "$context.integrationLatency",
    "$context.responseLatency",
    "$context.integrationStatus",
    "$context.integrationErrorMessage",
    "$context.integration.error",
    "$context.integration.status",
    "$context.authorizer.error",
    "$context.error.message",
    "$context.error.responseType",
    "$context.domainName",
    "$context.apiId",
    "$context.stage",
}
REQUIRED_ACCESS_LOG_FIELDS = {
    "requestId",
    "ip",
    "requestTime",
    "httpMethod",
    "routeKey",
    "status",
    "protocol",
    "responseLength",
    "integrationLatency",
    "responseLatency",
    "integrationErrorMessage",
    "authorizerError",
}


@pytest.fixture(scope="module")
def api(resources: dict[str, Any]) -> dict[str, Any]:
    _, api = only(resources, "AWS::ApiGatewayV2::Api")
    return api


@pytest.fixture(scope="module")
def body(api: dict[str, Any]) -> dict[str, Any]:
    return api["Properties"]["Body"]


@pytest.fixture(scope="module")
def stage(resources: dict[str, Any]) -> dict[str, Any]:
    _, stage = only(resources, "AWS::ApiGatewayV2::Stage")
    return stage


def test_api_fails_on_warnings_and_keeps_default_endpoint(api: dict[str, Any], body: dict[str, Any]) -> None:
    assert api["Properties"]["FailOnWarnings"] is True
    endpoint_config = body["servers"][0]["x-amazon-apigateway-endpoint-configuration"]
    assert endpoint_config["disableExecuteApiEndpoint"] is False


def test_jwt_authorizer_wired_to_parameters(body: dict[str, Any]) -> None:
    schemes = body["components"]["securitySchemes"]
    assert list(schemes) == ["JwtAuthorizer"]
    authorizer = schemes["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    # the given issuer and audiences, or the stack's own user pool and its two clients
    # (tests/template/test_template_combinations.py checks each combination)
    assert authorizer["jwtConfiguration"] == {
        "issuer": {
            "Fn::If": [
                "CreateUserPool",
                {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"},
                {"Ref": "JwtIssuerUrl"},
            ]
        },
        "audience": {
            "Fn::If": ["CreateUserPool", [{"Ref": "MachineClient"}, {"Ref": "PeopleClient"}], {"Ref": "JwtAudiences"}]
        },
    }


def test_jwt_parameters_types(cfn: dict[str, Any]) -> None:
    params = cfn["Parameters"]
    assert params["JwtAudiences"]["Type"] == "CommaDelimitedList"
    assert params["RequiredScope"]["Default"] == "sentiment-api/predict"
    assert re.fullmatch(params["JwtIssuerUrl"]["AllowedPattern"], "https://cognito-idp.x.amazonaws.com/p")
    assert not re.fullmatch(params["JwtIssuerUrl"]["AllowedPattern"], "http://insecure.example.com")


def test_default_authorizer_is_the_jwt_authorizer(sam_template: dict[str, Any]) -> None:
    auth = sam_template["Resources"]["Api"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"


def test_predict_route_requires_jwt_and_scope(body: dict[str, Any]) -> None:
    route = body["paths"]["/predict"]["post"]
    assert route["security"] == [{"JwtAuthorizer": [{"Ref": "RequiredScope"}]}]
    integration = route["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert integration["payloadFormatVersion"] == "2.0"
    # API Gateway invokes the alias, never $LATEST.
    assert "${PredictFunctionAliaslive}" in integration["uri"]["Fn::Sub"]


def test_every_route_is_authorized(body: dict[str, Any]) -> None:
    for path, methods in body["paths"].items():
        for method, route in methods.items():
            assert route.get("security"), f"{method.upper()} {path} has no authorizer"


def test_only_the_documented_routes_exist(body: dict[str, Any]) -> None:
    routes = {(p, m) for p, ms in body["paths"].items() for m in ms}
    assert routes == {
        ("/predict", "post"),
        ("/predict/batch", "post"),
        ("/explain", "get"),
        ("/jobs", "post"),
        ("/jobs/{job_id}", "get"),
        ("/jobs/{job_id}/start", "post"),
    }


def test_lambda_permission_limited_to_route_and_alias(resources: dict[str, Any]) -> None:
    permissions = {
        lid
        for lid, r in resources.items()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    assert permissions == {
        "PredictFunctionPredictPermission",
        "PredictFunctionPredictBatchPermission",
        "ExplainFunctionExplainPermission",
        "JobsFunctionCreateJobPermission",
        "JobsFunctionGetJobPermission",
        "JobsFunctionStartJobPermission",
    }
    for permission, route in (("JobsFunctionCreateJobPermission", "POST/jobs"),
                              ("JobsFunctionGetJobPermission", "GET/jobs/*"),
                              ("JobsFunctionStartJobPermission", "POST/jobs/*/start")):  # fmt: skip
        source_arn, _ = resources[permission]["Properties"]["SourceArn"]["Fn::Sub"]
        assert source_arn.endswith("${__ApiId__}/${__Stage__}/" + route), source_arn
    for permission, route in (("PredictFunctionPredictPermission", "POST/predict"),
                              ("PredictFunctionPredictBatchPermission", "POST/predict/batch")):  # fmt: skip
        props = resources[permission]["Properties"]
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert props["FunctionName"] == {"Ref": "PredictFunctionAliaslive"}  # the alias: the canary covers both
        source_arn, variables = props["SourceArn"]["Fn::Sub"]
        assert source_arn.endswith("${__ApiId__}/${__Stage__}/" + route)
        assert variables["__ApiId__"] == {"Ref": "Api"}


def test_default_route_throttling_from_parameters(stage: dict[str, Any], cfn: dict[str, Any]) -> None:
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert cfn["Parameters"]["ApiThrottlingRateLimit"]["Default"] == 500
    assert cfn["Parameters"]["ApiThrottlingBurstLimit"]["Default"] == 1000


def test_the_per_user_limit_binds_long_before_the_shared_stage_throttle(cfn: dict[str, Any]) -> None:
    """The stage throttle is counted before the function's per-user limit and shared by every caller: one
    caller at its own limit must use a negligible share of it, and the stage's burst must hold several
    callers' whole bursts at once (docs/security.md, the arithmetic)."""
    params = cfn["Parameters"]
    per_user_rps = params["RateLimitPerMinute"]["Default"] / 60
    per_user_burst = params["RateLimitBurst"]["Default"]
    for rate, burst in stage_throttles(params):
        assert per_user_rps / rate <= 0.01, (rate, "one caller at its limit takes over 1 % of the stage")
        assert burst >= 2 * per_user_burst, (burst, "two callers' bursts at once must fit")
        assert rate <= 10_000  # the account's API Gateway quota per Region


def test_default_stage_auto_deploys(stage: dict[str, Any]) -> None:
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["AutoDeploy"] is True
    assert stage["Properties"]["ApiId"] == {"Ref": "Api"}


def test_access_logs_go_to_a_log_group_with_retention(stage: dict[str, Any], resources: dict[str, Any]) -> None:
    destination = stage["Properties"]["AccessLogSettings"]["DestinationArn"]
    assert destination == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    group = resources["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_access_log_format_is_json_with_supported_variables(stage: dict[str, Any]) -> None:
    fmt: str = stage["Properties"]["AccessLogSettings"]["Format"]
    variables = set(re.findall(r"\$context(?:\.[A-Za-z0-9]+)+", fmt))
    unsupported = variables - HTTP_API_ACCESS_LOG_VARIABLES
    assert not unsupported, f"not HTTP API access-log variables: {sorted(unsupported)}"
    # Every variable sits inside a JSON string, so substituting sample values must give valid JSON.
    record = json.loads(re.sub(r"\$context(?:\.[A-Za-z0-9]+)+", "x", fmt))
    assert REQUIRED_ACCESS_LOG_FIELDS <= set(record)
    assert "\n" not in fmt  # one line per request


def test_explain_permission_limited_to_its_route(resources: dict[str, Any]) -> None:
    props = resources["ExplainFunctionExplainPermission"]["Properties"]
    source_arn, _ = props["SourceArn"]["Fn::Sub"]
    assert source_arn.endswith("${__ApiId__}/${__Stage__}/GET/explain")
