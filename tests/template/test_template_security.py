"""Security properties of the transformed template, written generically over resource types so that they
hold for every role, data store, topic and API that any section of the template adds.

1. Least privilege: no `*` or `service:*` actions, no NotAction/NotResource, resources scoped to ARNs of
   this stack's resources; the few actions that cannot be scoped are listed below with their reason.
2. Encryption at rest for every data store and topic; KMS keys rotate.
3. HTTPS only: the HTTP API (execute-api serves HTTPS only), custom domains on TLS 1.2, no http:// anywhere,
   TLS-only resource policies on buckets.
4. Logs never contain request text: no event logging or debug switches in any function's configuration,
   application log level INFO or above, and an access-log format without any request-content variable.
The behaviour side of (4) is tests/unit/test_redaction.py. Decisions: docs/security.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tests.template.cfn_helpers import as_list, of_type
from tests.template.conftest import PSEUDO_PARAMETERS

# ---- documented exceptions --------------------------------------------------------------------------
#: Actions that IAM cannot scope to a resource (or that AWS documents with Resource "*"); each may appear
#: with Resource "*", and only these. A new entry needs a reason here and in docs/security.md.
STAR_RESOURCE_ACTIONS: dict[str, str] = {
    "cloudwatch:GetMetricData": "no resource-level permissions (metric reads are account-wide)",
    "cloudwatch:GetMetricStatistics": "no resource-level permissions (metric reads are account-wide)",
    "cloudwatch:PutMetricData": "no resource-level permissions (use a cloudwatch:namespace condition)",
    "cloudwatch:GetMetricWidgetImage": "no resource-level permissions (AWS Chatbot renders alarm graphs)",
    "cloudwatch:DescribeAlarms": "read-only; AWS Chatbot's documented notification policy uses Resource '*'",
    "xray:PutTraceSegments": "no resource-level permissions",
    "xray:PutTelemetryRecords": "no resource-level permissions",
    "xray:GetSamplingRules": "no resource-level permissions",
    "xray:GetSamplingTargets": "no resource-level permissions",
    "ecr:GetAuthorizationToken": "no resource-level permissions (the bootstrap model pulls its AWS image)",
}

#: AWS managed policies a role may carry, and why.
ALLOWED_MANAGED_POLICIES: dict[str, str] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": "logs to the function's own groups",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": "SAM attaches it for Tracing: Active (X-Ray writes only)",
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda": (
        "SAM's CodeDeployServiceRole for DeploymentPreference: shifts the alias, invokes the hooks"
    ),
}


#: Resource types that hold data at rest, and the check that says it is encrypted.
def _dynamodb(props: Mapping[str, Any]) -> bool:
    return props.get("SSESpecification", {}).get("SSEEnabled") is True


def _s3(props: Mapping[str, Any]) -> bool:
    rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    return bool(rules) and all(r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules)


def _sns(props: Mapping[str, Any]) -> bool:
    return bool(props.get("KmsMasterKeyId"))


def _sqs(props: Mapping[str, Any]) -> bool:
    return bool(props.get("KmsMasterKeyId")) or props.get("SqsManagedSseEnabled", True) is not False


def _kinesis(props: Mapping[str, Any]) -> bool:
    return props.get("StreamEncryption", {}).get("EncryptionType") == "KMS"


def _efs(props: Mapping[str, Any]) -> bool:
    return props.get("Encrypted") is True


def _sagemaker_endpoint_config(props: Mapping[str, Any]) -> bool:
    """A KMS key for the instances' storage volumes; serverless variants have no volume of the account's and
    take no KmsKeyId (Serverless Inference's feature exclusions list KMS keys), so only they may omit it."""
    variants = props.get("ProductionVariants", [])
    return bool(props.get("KmsKeyId")) or (bool(variants) and all("ServerlessConfig" in v for v in variants))


ENCRYPTED: dict[str, Any] = {
    "AWS::DynamoDB::Table": _dynamodb,
    "AWS::DynamoDB::GlobalTable": lambda p: p.get("SSESpecification", {}).get("SSEEnabled") is True,
    "AWS::S3::Bucket": _s3,
    "AWS::SNS::Topic": _sns,
    "AWS::SQS::Queue": _sqs,
    "AWS::Kinesis::Stream": _kinesis,
    "AWS::EFS::FileSystem": _efs,
    "AWS::SageMaker::EndpointConfig": _sagemaker_endpoint_config,
}

#: Resource types that hold no customer data at rest of their own (or that AWS always encrypts:
#: CloudWatch Logs, Step Functions execution history, Lambda code and environment).
NO_DATA_AT_REST = {
    "AWS::Lambda::Function",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::Permission",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::EventSourceMapping",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Logs::LogGroup",
    "AWS::Logs::QueryDefinition",
    "AWS::Logs::MetricFilter",
    "AWS::CodeDeploy::Application",
    "AWS::CodeDeploy::DeploymentGroup",
    "AWS::CodeDeploy::DeploymentConfig",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::Chatbot::SlackChannelConfiguration",
    "AWS::StepFunctions::StateMachine",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::SageMaker::Model",
    "AWS::SageMaker::Endpoint",
    # Cognito encrypts the user pool's data at rest itself (no customer key option in CloudFormation here).
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolDomain",
    "AWS::Cognito::UserPoolResourceServer",
    "AWS::SSM::Parameter",
    "AWS::CloudFormation::WaitConditionHandle",
    # the optional edge caches nothing (managed policy CachingDisabled: tests/template/test_template_edge.py)
    "AWS::CloudFront::Distribution",
}


# ---- rendering intrinsic functions to candidate strings -----------------------------------------------
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def rendered(value: Any) -> list[str]:
    """The strings an intrinsic can evaluate to, with this stack's references as concrete placeholders
    (a Ref/GetAtt is one resource of this stack: never a wildcard)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return [PSEUDO_PARAMETERS.get(arg, f"ref-{arg}")]
        if fn == "Fn::GetAtt":
            name = arg[0] if isinstance(arg, list) else str(arg).split(".")[0]
            return [f"arn:aws:resource:us-east-1:123456789012:getatt-{name}"]
        if fn == "Fn::Sub":
            body, local = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})

            def repl(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in local:
                    return rendered(local[name])[0]
                if name in PSEUDO_PARAMETERS:
                    return PSEUDO_PARAMETERS[name]
                return f"sub-{name.replace('.', '-')}"

            return [_SUB_VAR.sub(repl, body)]
        if fn == "Fn::Join":
            separator, parts = arg
            return [separator.join(rendered(p)[0] for p in parts)]
        if fn == "Fn::If":
            return [s for branch in arg[1:] for s in rendered(branch)]
        if fn in {"Fn::ImportValue", "Fn::Select", "Fn::FindInMap", "Fn::GetAZs", "Fn::Split"}:
            return [f"intrinsic-{fn}"]
    return [json.dumps(value)]


def is_scoped_arn(resource: str) -> bool:
    """An ARN with no wildcard in partition, service, region or account, and a resource part that names a
    resource (a trailing qualifier wildcard such as `function:name:*` or `bucket/prefix/*` is fine)."""
    if resource == "*":
        return False
    if not resource.startswith("arn:"):
        return True  # a placeholder for a Ref/GetAtt of this stack
    parts = resource.split(":", 5)
    if len(parts) < 6 or any("*" in part for part in parts[1:5]):
        return False
    return bool(parts[5]) and not parts[5].startswith("*")


# ---- walking the policies -----------------------------------------------------------------------------
def identity_policies(resources: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every statement of every identity-based policy of the template."""
    for lid, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                yield f"{lid}/{policy.get('PolicyName')}", statement
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for lid, policy in of_type(resources, rtype).items():
            for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
                yield lid, statement


def resource_policies(resources: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    documents = {
        "AWS::SNS::TopicPolicy": "PolicyDocument",
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::KMS::Key": "KeyPolicy",
    }
    for rtype, key in documents.items():
        for lid, resource in of_type(resources, rtype).items():
            for statement in as_list(resource["Properties"][key]["Statement"]):
                yield lid, statement


def actions(statement: Mapping[str, Any]) -> list[str]:
    return [a for value in as_list(statement.get("Action", [])) for a in rendered(value)]


def test_the_template_has_roles_to_check(resources: dict[str, Any]) -> None:
    assert of_type(resources, "AWS::IAM::Role"), "no role found: the checks below would be vacuous"
    assert list(identity_policies(resources))


def test_no_wildcard_actions_and_no_not_elements(resources: dict[str, Any]) -> None:
    for where, statement in identity_policies(resources):
        assert "NotAction" not in statement and "NotResource" not in statement, where
        assert "NotPrincipal" not in statement, where
        for action in actions(statement):
            assert "*" not in action, f"{where}: wildcard action {action!r} (name each action)"


def test_resources_are_scoped_except_documented_actions(resources: dict[str, Any]) -> None:
    for where, statement in identity_policies(resources):
        if statement.get("Effect") != "Allow":
            continue
        targets = [r for value in as_list(statement.get("Resource", [])) for r in rendered(value)]
        assert targets, f"{where}: a statement without Resource"
        unscoped = [r for r in targets if not is_scoped_arn(r)]
        if not unscoped:
            continue
        assert unscoped == ["*"] == targets, f"{where}: partly wildcarded resources {unscoped}"
        undocumented = set(actions(statement)) - set(STAR_RESOURCE_ACTIONS)
        assert not undocumented, f"{where}: Resource '*' for {sorted(undocumented)}: scope it or document why"


def test_pass_role_is_scoped_and_conditioned(resources: dict[str, Any]) -> None:
    for where, statement in identity_policies(resources):
        if "iam:PassRole" in actions(statement):
            assert "*" not in json.dumps(statement.get("Resource")), where
            assert "iam:PassedToService" in json.dumps(statement.get("Condition", {})), where


def test_managed_policies_are_allow_listed(resources: dict[str, Any]) -> None:
    for lid, role in of_type(resources, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            for candidate in rendered(arn):
                assert candidate.replace("arn:aws-cn:", "arn:aws:") in ALLOWED_MANAGED_POLICIES, (lid, candidate)
                assert not re.search(r"FullAccess|AdministratorAccess|PowerUser", candidate), (lid, candidate)


def test_roles_are_assumed_by_named_services_only(resources: dict[str, Any]) -> None:
    for lid, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in as_list(role["Properties"]["AssumeRolePolicyDocument"]["Statement"]):
            principal = statement["Principal"]
            assert isinstance(principal, dict) and set(principal) == {"Service"}, (lid, principal)
            services = [s for value in as_list(principal["Service"]) for s in rendered(value)]
            assert all(s.endswith(".amazonaws.com") and "*" not in s for s in services), (lid, services)
            assert statement.get("Action") in ("sts:AssumeRole", ["sts:AssumeRole"]), lid


def test_resource_policies_never_open_to_anyone_without_a_condition(resources: dict[str, Any]) -> None:
    for lid, statement in resource_policies(resources):
        principal = statement.get("Principal")
        if statement.get("Effect") != "Allow":
            continue
        open_to_all = principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", [])))
        assert not open_to_all or statement.get("Condition"), f"{lid}: Allow to everyone without a condition"
        if "kms:*" in actions(statement):
            # The default key policy: the account's root administers the key through IAM.
            root = rendered(principal.get("AWS")) if isinstance(principal, dict) else []
            assert root and all(r.endswith(":root") for r in root), f"{lid}: kms:* for {principal}"


def test_lambda_permissions_name_their_caller(resources: dict[str, Any]) -> None:
    for lid, permission in of_type(resources, "AWS::Lambda::Permission").items():
        props = permission["Properties"]
        assert props["Principal"] != "*", lid
        if str(props["Principal"]).endswith(".amazonaws.com"):
            assert "SourceArn" in props or "SourceAccount" in props, lid
    for lid, url in of_type(resources, "AWS::Lambda::Url").items():
        assert url["Properties"].get("AuthType") == "AWS_IAM", f"{lid}: a public function URL"


# ---- encryption at rest -------------------------------------------------------------------------------
def test_every_resource_type_is_classified(resources: dict[str, Any]) -> None:
    """A new kind of resource must be classified: a data store gets an encryption check in ENCRYPTED."""
    unknown = {r["Type"] for r in resources.values()} - set(ENCRYPTED) - NO_DATA_AT_REST
    assert not unknown, f"classify these resource types in {__name__}: {sorted(unknown)}"


@pytest.mark.parametrize("rtype", sorted(ENCRYPTED))
def test_data_stores_and_topics_are_encrypted(rtype: str, resources: dict[str, Any]) -> None:
    for lid, resource in of_type(resources, rtype).items():
        assert ENCRYPTED[rtype](resource.get("Properties", {})), f"{lid} ({rtype}) is not encrypted at rest"


def test_kms_keys_rotate(resources: dict[str, Any]) -> None:
    for lid, key in of_type(resources, "AWS::KMS::Key").items():
        props = key["Properties"]
        if props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT":
            assert props.get("EnableKeyRotation") is True, lid


def test_buckets_block_public_access_and_require_tls(resources: dict[str, Any]) -> None:
    policies = of_type(resources, "AWS::S3::BucketPolicy")
    for lid, bucket in of_type(resources, "AWS::S3::Bucket").items():
        block = bucket["Properties"].get("PublicAccessBlockConfiguration", {})
        assert all(
            block.get(k) is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ), lid
        tls_only = [
            p
            for p in policies.values()
            if lid in json.dumps(p["Properties"]["Bucket"])
            and any(
                s.get("Effect") == "Deny" and "aws:SecureTransport" in json.dumps(s.get("Condition", {}))
                for s in as_list(p["Properties"]["PolicyDocument"]["Statement"])
            )
        ]
        assert tls_only, f"{lid}: no bucket policy denying requests without TLS"


def test_the_rate_limit_table_uses_kms_and_point_in_time_recovery(resources: dict[str, Any]) -> None:
    for lid, table in of_type(resources, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}, lid
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, lid


# ---- HTTPS only ---------------------------------------------------------------------------------------
def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_no_plain_http_urls_anywhere(cfn: dict[str, Any]) -> None:
    """The one exception: the people client's default redirect to a loopback address (a native app's
    redirect, RFC 8252 7.3; Cognito accepts http:// for localhost only)."""
    plain = [s for s in strings(cfn) if "http://" in s and not s.startswith("http://localhost:")]
    assert not plain, plain
    assert cfn["Parameters"]["UserCallbackUrls"]["Default"] == "http://localhost:8400/callback"


def test_apis_are_http_apis_served_over_https_only(resources: dict[str, Any], cfn: dict[str, Any]) -> None:
    """HTTP APIs serve execute-api over HTTPS only (TLS 1.2); a custom domain must pin TLS 1.2 and then
    be the only way in (the execute-api endpoint disabled), so that no second entry point exists."""
    apis = of_type(resources, "AWS::ApiGatewayV2::Api")
    assert apis and not of_type(resources, "AWS::ApiGateway::RestApi")
    domains = of_type(resources, "AWS::ApiGatewayV2::DomainName")
    for lid, domain in domains.items():
        for configuration in domain["Properties"].get("DomainNameConfigurations", []):
            assert configuration.get("SecurityPolicy") == "TLS_1_2", lid
    for lid, api in apis.items():
        props = api["Properties"]
        protocol = props.get("ProtocolType") or (props.get("Body", {}).get("openapi") and "HTTP")
        assert protocol == "HTTP", lid
        if domains:
            assert props.get("DisableExecuteApiEndpoint") is True, f"{lid}: custom domain, execute-api still open"
    assert cfn["Parameters"]["JwtIssuerUrl"]["AllowedPattern"] == "^$|^https://[^\\s]+$"


def test_the_routes_integrate_lambda_only(resources: dict[str, Any]) -> None:
    for lid, api in of_type(resources, "AWS::ApiGatewayV2::Api").items():
        for path, operations in (api["Properties"].get("Body", {}).get("paths") or {}).items():
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration", {})
                assert integration.get("type") == "aws_proxy", (lid, method, path)
                assert ":lambda:path/" in rendered(integration["uri"])[0], (lid, method, path)
                assert operation.get("security"), f"{lid}: {method.upper()} {path} has no authorizer"
    for lid, integration in of_type(resources, "AWS::ApiGatewayV2::Integration").items():
        assert integration["Properties"]["IntegrationType"] == "AWS_PROXY", lid


def test_subscriptions_use_no_plain_http(resources: dict[str, Any]) -> None:
    for lid, subscription in of_type(resources, "AWS::SNS::Subscription").items():
        assert str(subscription["Properties"]["Protocol"]).lower() != "http", lid


# ---- logs never contain request text ----------------------------------------------------------------
TRUTHY = {"true", "1", "yes", "on"}
# Every variable an access-log format may use: identifiers, codes, sizes and latencies. Nothing that
# carries request content (there is no body variable for HTTP APIs; headers and claims are kept out too).
ACCESS_LOG_ALLOWED = {
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
    "$context.integration.latency",
    "$context.integration.requestId",
    "$context.authorizer.error",
    "$context.error.message",
    "$context.error.responseType",
    "$context.domainName",
    "$context.apiId",
    "$context.stage",
    "$context.dataProcessed",
    "$context.awsEndpointRequestId",
}


def function_environments(resources: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for lid, function in of_type(resources, "AWS::Lambda::Function").items():
        yield lid, function["Properties"].get("Environment", {}).get("Variables", {})


def test_no_function_logs_events_or_runs_in_debug_mode(resources: dict[str, Any]) -> None:
    assert list(function_environments(resources))
    for lid, env in function_environments(resources):
        for name in (
            "POWERTOOLS_LOGGER_LOG_EVENT",
            "POWERTOOLS_DEV",
            "POWERTOOLS_EVENT_HANDLER_DEBUG",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE",
        ):
            values = rendered(env[name]) if name in env else []
            assert not any(v.strip().lower() in TRUTHY for v in values), f"{lid}: {name} is on"
        level = rendered(env.get("POWERTOOLS_LOG_LEVEL", "INFO"))
        assert all(v.upper() not in {"DEBUG", "TRACE"} for v in level), f"{lid}: POWERTOOLS_LOG_LEVEL {level}"


def test_function_logs_are_json_at_info_or_above(resources: dict[str, Any]) -> None:
    for lid, function in of_type(resources, "AWS::Lambda::Function").items():
        config = function["Properties"].get("LoggingConfig", {})
        assert config.get("LogFormat") == "JSON", lid
        assert config.get("ApplicationLogLevel", "INFO") not in {"DEBUG", "TRACE"}, lid


def test_access_logs_carry_no_request_content(resources: dict[str, Any]) -> None:
    stages = of_type(resources, "AWS::ApiGatewayV2::Stage")
    assert stages
    for lid, stage in stages.items():
        settings = stage["Properties"].get("AccessLogSettings")
        assert settings, f"{lid}: no access logs"
        fmt = rendered(settings["Format"])[0]
        variables = set(re.findall(r"\$[A-Za-z][\w.]*", fmt))
        assert variables <= ACCESS_LOG_ALLOWED, variables - ACCESS_LOG_ALLOWED
        assert not re.search(r"body|\$input|\$request\.|claims|header", fmt, re.IGNORECASE), fmt
        json.loads(fmt)


# ---- the checks catch what they are for ---------------------------------------------------------------
def _role(statement: dict[str, Any], managed: list[str] | None = None) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ]
            },
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [statement]}}],
            "ManagedPolicyArns": managed or [],
        },
    }


VIOLATIONS: dict[str, tuple[Any, dict[str, Any]]] = {
    "service-wildcard-action": (
        test_no_wildcard_actions_and_no_not_elements,
        _role({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
    ),
    "not-action": (
        test_no_wildcard_actions_and_no_not_elements,
        _role({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}),
    ),
    "star-resource": (
        test_resources_are_scoped_except_documented_actions,
        _role({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}),
    ),
    "wildcard-account": (
        test_resources_are_scoped_except_documented_actions,
        _role(
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:topic"}}
        ),
    ),
    "full-access": (
        test_managed_policies_are_allow_listed,
        _role(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"},
            ["arn:aws:iam::aws:policy/AmazonS3FullAccess"],
        ),
    ),
    "unencrypted-topic": (test_data_stores_and_topics_are_encrypted, {"Type": "AWS::SNS::Topic", "Properties": {}}),
    "unclassified-type": (test_every_resource_type_is_classified, {"Type": "AWS::RDS::DBInstance", "Properties": {}}),
    "log-event": (
        test_no_function_logs_events_or_runs_in_debug_mode,
        {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Environment": {"Variables": {"POWERTOOLS_LOGGER_LOG_EVENT": "true"}}},
        },
    ),
    "plain-http": (
        test_subscriptions_use_no_plain_http,
        {"Type": "AWS::SNS::Subscription", "Properties": {"Protocol": "http", "Endpoint": "x"}},
    ),
    "open-bucket-policy": (
        test_resource_policies_never_open_to_anyone_without_a_condition,
        {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": "b",
                "PolicyDocument": {
                    "Statement": [
                        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
                    ]
                },
            },
        },
    ),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_the_checks_catch_a_violation(name: str, resources: dict[str, Any]) -> None:
    check, resource = VIOLATIONS[name]
    mutated = {**resources, "Injected": resource}
    if check is test_data_stores_and_topics_are_encrypted:
        with pytest.raises(AssertionError):
            check(resource["Type"], mutated)
        return
    with pytest.raises(AssertionError):
        check(mutated)
