"""The optional edge rate limit (issue 11): CloudFront in front of the HTTP API with the web ACL of
deploy/edge-waf.yaml, so that one token is refused before it can use up the stage throttle that every caller
shares.

* template.yaml without EdgeWebAclArn deploys no edge; with one it deploys a distribution that caches nothing,
  forwards every viewer header (Authorization included) to the API over TLS 1.2 and carries that web ACL;
* deploy/edge-waf.yaml: a per-token rule (aggregated on the Authorization header) and a per-IP rule, both
  answering 429 in the API's error shape with Retry-After, limits sized against the per-user limit and the
  stage throttle of every samconfig environment; the log keeps refusals only, with the token redacted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.template.cfn_helpers import as_list, deployed, of_type, stage_throttles
from tests.template.conftest import EDGE_TEMPLATE_PATH, PSEUDO_PARAMETERS, REPO_ROOT, TEMPLATE_PATH, TEST_PARAMETERS
from tests.template.test_openapi import load_openapi
from tests.template.test_template_lint import _findings, _ignores_of_generated_resources
from tools.transform_template import load_template, parameter_values, transform

WEB_ACL_ARN = (
    "arn:aws:wafv2:us-east-1:123456789012:global/webacl/sentiment-api-prod-edge/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
WINDOW_S = 60
# the 4xx and 5xx codes CloudFront caches (CloudFront developer guide, "How CloudFront processes HTTP 4xx and
# 5xx status codes from your origin")
CLOUDFRONT_CACHED_ERROR_CODES = {400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504}


@pytest.fixture(scope="module")
def with_edge() -> dict[str, Any]:
    return transform(TEMPLATE_PATH, parameter_overrides={**TEST_PARAMETERS, "EdgeWebAclArn": WEB_ACL_ARN})


def _deployed(cfn: Mapping[str, Any], arn: str) -> dict[str, Any]:
    values = parameter_values(load_template(TEMPLATE_PATH), {**TEST_PARAMETERS, "EdgeWebAclArn": arn})
    return deployed(cfn, {**values, **PSEUDO_PARAMETERS})


@pytest.fixture(scope="module")
def edge() -> dict[str, Any]:
    return load_template(EDGE_TEMPLATE_PATH)


def web_acl(**overrides: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge's web ACL as CloudFormation creates it from deploy/edge-waf.yaml (its defaults, Stage prod,
    then ``overrides``): its properties, and the parameter values they were resolved with."""
    template = load_template(EDGE_TEMPLATE_PATH)
    values = parameter_values(template, {"Stage": "prod", **overrides})
    acl = deployed(template, {**values, **PSEUDO_PARAMETERS})["Resources"]["EdgeWebAcl"]
    return acl["Properties"], values


def _rules(edge: Mapping[str, Any], ip_limit: str = "3000") -> dict[str, dict[str, Any]]:
    properties, _ = web_acl(IpLimitPerMinute=ip_limit)
    return {rule["Name"]: rule for rule in properties["Rules"]}


# ---- template.yaml ----------------------------------------------------------------------------------------
def test_no_edge_by_default(cfn: dict[str, Any]) -> None:
    assert load_template(TEMPLATE_PATH)["Parameters"]["EdgeWebAclArn"]["Default"] == ""
    plain = _deployed(cfn, "")
    assert not of_type(plain["Resources"], "AWS::CloudFront::Distribution")
    assert "EdgeUrl" not in plain["Outputs"]


def test_the_edge_fronts_the_api_and_caches_nothing(with_edge: dict[str, Any]) -> None:
    shipped = _deployed(with_edge, WEB_ACL_ARN)
    ((_, distribution),) = of_type(shipped["Resources"], "AWS::CloudFront::Distribution").items()
    config = distribution["Properties"]["DistributionConfig"]
    assert config["Enabled"] is True
    assert config["WebACLId"] == {"Ref": "EdgeWebAclArn"}
    ((origin),) = config["Origins"]
    assert origin["DomainName"] == {"Fn::Sub": "${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert "OriginPath" not in origin  # the $default stage: no stage prefix
    custom = origin["CustomOriginConfig"]
    assert custom["OriginProtocolPolicy"] == "https-only" and custom["OriginSSLProtocols"] == ["TLSv1.2"]
    # above the slowest function's timeout (jobs, 20 s): the edge never cuts an answer the API would give
    sam = load_template(TEMPLATE_PATH)
    behind_the_api = [
        resource["Properties"].get("Timeout", sam["Globals"]["Function"]["Timeout"])
        for resource in sam["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        and any(e["Type"] == "HttpApi" for e in resource["Properties"].get("Events", {}).values())
    ]
    assert len(behind_the_api) >= 3 and custom["OriginReadTimeout"] > max(behind_the_api)
    assert custom["OriginReadTimeout"] <= 30  # API Gateway's own integration limit
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["ViewerProtocolPolicy"] == "https-only"
    assert behaviour["CachePolicyId"] == CACHING_DISABLED
    # with caching disabled, this managed policy forwards Authorization (and every other viewer header but
    # Host, which CloudFront sets to the origin's name for API Gateway)
    assert behaviour["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert {"GET", "POST", "PUT", "OPTIONS"} <= set(behaviour["AllowedMethods"])
    assert "CacheBehaviors" not in config  # one behaviour: no path escapes the web ACL or the policies
    # no error answer is cached either (CloudFront keeps GET errors 10 s by default, keyed on the path)
    errors = {e["ErrorCode"]: e for e in config["CustomErrorResponses"]}
    assert set(errors) == CLOUDFRONT_CACHED_ERROR_CODES
    assert all(e == {"ErrorCode": code, "ErrorCachingMinTTL": 0} for code, e in errors.items())
    assert config["IPV6Enabled"] is False  # one IPv6 host holds a /64: the per-IP rule would count nothing
    assert shipped["Outputs"]["EdgeUrl"]["Value"] == {"Fn::Sub": "https://${EdgeDistribution.DomainName}"}


def test_the_template_with_an_edge_lints_clean(sam_template: dict[str, Any], with_edge: dict[str, Any]) -> None:
    assert _findings(json.dumps(with_edge), _ignores_of_generated_resources(sam_template, with_edge)) == []


@pytest.mark.parametrize(
    ("arn", "accepted"),
    [
        ("", True),
        (WEB_ACL_ARN, True),
        ("arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/acl/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", False),
        ("arn:aws:wafv2:eu-west-1:123456789012:global/webacl/acl/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", False),
        ("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", False),  # a WAF Classic id: CloudFront takes it, we do not
        (WEB_ACL_ARN + "\nx", False),
    ],
)
def test_only_a_cloudfront_web_acl_is_accepted(arn: str, accepted: bool) -> None:
    pattern = load_template(TEMPLATE_PATH)["Parameters"]["EdgeWebAclArn"]["AllowedPattern"]
    assert (re.fullmatch(pattern, arn) is not None) is accepted


# ---- deploy/edge-waf.yaml ---------------------------------------------------------------------------------
def test_the_edge_template_lints_clean() -> None:
    assert _findings(EDGE_TEMPLATE_PATH.read_text("utf-8"), []) == []


def test_the_web_acl_is_for_cloudfront_and_lives_in_us_east_1(edge: dict[str, Any]) -> None:
    acl = edge["Resources"]["EdgeWebAcl"]["Properties"]
    assert acl["Scope"] == "CLOUDFRONT"
    assert acl["DefaultAction"] == {"Allow": {}}
    ((rule),) = edge["Rules"].values()
    assert "RuleCondition" not in rule  # whatever the parameters
    assert [a["Assert"] for a in rule["Assertions"]] == [{"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}]


def test_the_rules_run_per_ip_then_format_then_per_token(edge: dict[str, Any]) -> None:
    """Every request counts against its IP (garbage included); only a well-formed bearer token gets further,
    so one token has one spelling and one count."""
    rules = _rules(edge)
    assert sorted(rules, key=lambda name: rules[name]["Priority"]) == ["per-ip", "bearer-format", "per-token"]
    assert sorted(_rules(edge, ip_limit="0"), key=lambda n: rules[n]["Priority"]) == ["bearer-format", "per-token"]


def _format_rule_passes(edge: Mapping[str, Any], header: str | None) -> bool:
    """Whether the bearer-format rule lets a request with this Authorization header (None: none) through."""
    statement = _rules(edge)["bearer-format"]["Statement"]["NotStatement"]["Statement"]["RegexMatchStatement"]
    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "authorization"}}
    assert statement["TextTransformations"] == [{"Priority": 0, "Type": "NONE"}]
    # a missing header never matches a regex, so the NotStatement blocks it
    return header is not None and re.search(statement["RegexString"], header) is not None


def test_only_a_well_formed_bearer_token_passes_the_format_rule(edge: dict[str, Any], tmp_path: Any) -> None:
    from local_stack.idp import load_or_create

    token = load_or_create(tmp_path / "keys").mint(sub="alice")  # a real RS256 JWT, as the dev IdP mints
    assert _format_rule_passes(edge, f"Bearer {token}")
    for refused in [
        token,  # API Gateway takes it without the scheme: a second count of the same token at the edge
        f"bearer {token}",
        f"BEARER {token}",
        f"Bearer  {token}",
        f"Bearer {token} ",
        f"Bearer\t{token}",
        f" Bearer {token}",  # (no line feed case: a header value cannot carry one, in HTTP/1.1 or HTTP/2)
        "Bearer " + ".".join(token.split(".")[:2]),  # two parts
        "Bearer " + ".".join(token.split(".")[:2]) + ".",  # no signature (alg none)
        f"Basic {token}",
        "Bearer ",
        "",
        None,
    ]:
        assert not _format_rule_passes(edge, refused), repr(refused)


def test_the_per_token_rule_is_keyed_on_the_authorization_header(edge: dict[str, Any]) -> None:
    statement = _rules(edge)["per-token"]["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "CUSTOM_KEYS"
    # the whole header value, untransformed: two tokens are two callers, one token one caller
    assert statement["CustomKeys"] == [
        {"Header": {"Name": "authorization", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    ]
    assert statement["EvaluationWindowSec"] == WINDOW_S
    assert statement["Limit"] == {"Ref": "TokenLimitPerMinute"}
    assert "ScopeDownStatement" not in statement  # every request with a token counts


def test_the_per_ip_rule_counts_everything_and_can_be_turned_off(edge: dict[str, Any]) -> None:
    statement = _rules(edge)["per-ip"]["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP" and statement["EvaluationWindowSec"] == WINDOW_S
    assert statement["Limit"] == {"Ref": "IpLimitPerMinute"}
    assert "ScopeDownStatement" not in statement
    assert "per-ip" not in _rules(edge, ip_limit="0")
    assert int(edge["Parameters"]["IpLimitPerMinute"]["MinValue"]) == 0


def test_the_limits_never_refuse_a_caller_the_function_serves_and_stop_one_token_early(edge: dict[str, Any]) -> None:
    """The arithmetic of docs/security.md, for the defaults and every samconfig environment's stage rate."""
    main = load_template(TEMPLATE_PATH)["Parameters"]
    per_minute, burst = int(main["RateLimitPerMinute"]["Default"]), int(main["RateLimitBurst"]["Default"])
    token_limit = int(edge["Parameters"]["TokenLimitPerMinute"]["Default"])
    ip_limit = int(edge["Parameters"]["IpLimitPerMinute"]["Default"])
    # the most the per-user limiter (GCRA) serves in any 60 s: a full burst, then one minute of refill
    most_served = burst + per_minute * WINDOW_S // 60
    assert token_limit >= 2 * most_served
    # WAF counts refused requests too: no limit the parameter allows may refuse a caller that honours
    # Retry-After (at least 1 s after each 429: at most one refused request a second on top of the served)
    assert int(edge["Parameters"]["TokenLimitPerMinute"]["MinValue"]) >= most_served + WINDOW_S
    # the refusal lasts while the 60 s rate stays over the limit: a caller the function would serve has room
    for stage_rate, _ in stage_throttles(load_template(TEMPLATE_PATH)["Parameters"]):
        stage_per_window = stage_rate * WINDOW_S
        assert token_limit <= stage_per_window / 10, (
            f"one token may use {token_limit / stage_per_window:.0%} of the stage"
        )
        assert ip_limit < stage_per_window / 2, f"one IP may use {ip_limit / stage_per_window:.0%} of the stage"
    assert ip_limit >= token_limit  # an IP carries at least one caller's worth


@pytest.mark.parametrize(
    ("rule", "status", "header", "code", "response"),
    [
        ("per-token", 429, {"Name": "retry-after", "Value": str(WINDOW_S)}, "EDGE_RATE_LIMITED", "TooManyRequests"),
        ("per-ip", 429, {"Name": "retry-after", "Value": str(WINDOW_S)}, "EDGE_RATE_LIMITED", "TooManyRequests"),
        ("bearer-format", 401, {"Name": "www-authenticate", "Value": "Bearer"}, "EDGE_UNAUTHENTICATED", "Unauthorized"),
    ],
)
def test_a_refusal_is_in_the_documented_shape(
    edge: dict[str, Any], rule: str, status: int, header: dict[str, str], code: str, response: str
) -> None:
    answer = _rules(edge)[rule]["Action"]["Block"]["CustomResponse"]
    assert answer["ResponseCode"] == status
    assert answer["ResponseHeaders"] == [header]
    body = edge["Resources"]["EdgeWebAcl"]["Properties"]["CustomResponseBodies"][answer["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    content = json.loads(body["Content"])
    assert content["error"]["code"] == code
    document = load_openapi()
    schema = document["components"]["schemas"]["EdgeErrorResponse"]
    Draft202012Validator({"components": document["components"], **schema}).validate(content)
    documented = document["components"]["responses"][response]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/EdgeErrorResponse"} in documented["oneOf"]


def test_the_log_keeps_refusals_only_and_never_the_token(edge: dict[str, Any]) -> None:
    resources = edge["Resources"]
    logging = resources["EdgeWafLogging"]["Properties"]
    assert logging["ResourceArn"] == {"Fn::GetAtt": ["EdgeWebAcl", "Arn"]}
    assert {"SingleHeader": {"Name": "authorization"}} in logging["RedactedFields"]
    assert logging["LoggingFilter"] == {
        "DefaultBehavior": "DROP",
        "Filters": [
            {"Behavior": "KEEP", "Requirement": "MEETS_ANY", "Conditions": [{"ActionCondition": {"Action": "BLOCK"}}]}
        ],
    }
    # WAF delivers only to log groups named aws-waf-logs-*, given by an ARN without GetAtt's ":*"
    # the token also rides in a rate-based refusal's details and in sampled requests: hashed at the web ACL
    protections = resources["EdgeWebAcl"]["Properties"]["DataProtectionConfig"]["DataProtections"]
    assert {
        "Field": {"FieldType": "SINGLE_HEADER", "FieldKeys": ["authorization"]},
        "Action": "HASH",
        "ExcludeRateBasedDetails": False,
        "ExcludeRuleMatchDetails": False,
    } in protections
    name = resources["EdgeWafLogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
    assert name.startswith("aws-waf-logs-")
    ((destination),) = logging["LogDestinationConfigs"]
    assert destination["Fn::Sub"].endswith(":log-group:${EdgeWafLogGroup}")
    assert "RetentionInDays" in resources["EdgeWafLogGroup"]["Properties"]


def test_the_ci_role_may_touch_only_its_stacks_distribution_and_web_acl() -> None:
    """CloudFront is global: the execution role's services statement (scoped to the stack's Region) cannot
    cover it. Its own statements are scoped by the tag CloudFormation sets, which no caller can set (the aws:
    prefix is reserved): a tag of our own could be put on another environment's distribution by this role."""
    oidc = load_template(REPO_ROOT / "deploy" / "github-oidc.yaml")
    policy = oidc["Resources"]["ExecutionPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    cloudfront = [s for s in policy if any(str(a).startswith("cloudfront:") for a in as_list(s["Action"]))]
    assert {s["Sid"] for s in cloudfront} == {"TheOptionalEdgeCreate", "TheOptionalEdge"}
    stack = {"Fn::Sub": "sentiment-api-${Environment}"}  # the stack of the role's environment (samconfig)
    for statement in cloudfront:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"
        }
        assert list(statement["Condition"]) == ["StringEquals"]  # not ...IfExists: an untagged one is refused
        ((key, value),) = statement["Condition"]["StringEquals"].items()
        assert value == stack
        if "cloudfront:CreateDistribution" in statement["Action"]:
            assert key == "aws:RequestTag/aws:cloudformation:stack-name"
            assert set(statement["Action"]) == {"cloudfront:CreateDistribution", "cloudfront:TagResource"}
        else:
            assert key == "aws:ResourceTag/aws:cloudformation:stack-name"
            assert not any("Create" in a or "Invalidation" in a or "Function" in a for a in statement["Action"])
    (waf,) = [s for s in policy if any(str(a).startswith("wafv2:") for a in as_list(s["Action"]))]
    assert waf["Action"] == "wafv2:GetWebACL"
    assert waf["Resource"]["Fn::Sub"].endswith(":global/webacl/sentiment-api-${Environment}-edge/*")
    # and the web ACL of deploy/edge-waf.yaml is named so
    assert load_template(EDGE_TEMPLATE_PATH)["Resources"]["EdgeWebAcl"]["Properties"]["Name"] == {
        "Fn::Sub": "sentiment-api-${Stage}-edge"
    }
