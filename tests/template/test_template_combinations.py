"""The four ways to deploy (issuer given or not x endpoint given or not), each transformed, linted and
deployed "on paper" (conditions evaluated, Fn::If branches chosen: what CloudFormation would create), and the
tag-based IAM of every role that touches SageMaker (issue 14, items 1-3).

* nothing given: a Cognito user pool with the resource server, both app clients and a domain; a serverless
  endpoint serving the shipped model's bundle; and every wire between them and the functions;
* everything given: none of that, today's behaviour;
* the Rules refuse the combinations that cannot work (issuer without audiences, no endpoint and no bundle,
  a created pool with another scope).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.template.cfn_helpers import as_list, deployed, policy_statements, referenced_ids, resolve_sub
from tests.template.conftest import PSEUDO_PARAMETERS, TEMPLATE_PATH, TEST_PARAMETERS
from tests.template.test_template_lint import _findings, _ignores_of_generated_resources
from tools import image_uris
from tools.transform_template import load_template, parameter_values, transform

BUNDLE = "s3://aws-sam-cli-managed-default-samclisourcebucket-abc/sentiment-api-prod/bootstrap-model/" + "a" * 64
BUNDLE += ".tar.gz"
ISSUER = {
    "given": {"JwtIssuerUrl": TEST_PARAMETERS["JwtIssuerUrl"], "JwtAudiences": TEST_PARAMETERS["JwtAudiences"]},
    "created": {"JwtIssuerUrl": "", "JwtAudiences": ""},
}
ENDPOINT = {
    "given": {"SageMakerEndpointName": TEST_PARAMETERS["SageMakerEndpointName"], "BootstrapModelDataUrl": ""},
    "bootstrap": {"SageMakerEndpointName": "", "BootstrapModelDataUrl": BUNDLE},
}
COMBINATIONS = [f"issuer-{i}/endpoint-{e}" for i, e in itertools.product(ISSUER, ENDPOINT)]
IDENTITY = {"UserPool", "UserPoolDomain", "ApiResourceServer", "MachineClient", "PeopleClient"}
BOOTSTRAP = {"BootstrapModelRole", "BootstrapModel", "BootstrapEndpointConfig", "BootstrapEndpoint"}
STACK_TAG = {"Key": "sentiment-api:stack", "Value": {"Ref": "AWS::StackName"}}
# what Ref / the stack id resolve to in the tests
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/sentiment-api-prod/1a2b3c4d-0000-4000-8000-00000000abcd"


def _overrides(combination: str) -> dict[str, str]:
    issuer, endpoint = (part.split("-", 1)[1] for part in combination.split("/"))
    return {"Stage": "prod", **ISSUER[issuer], **ENDPOINT[endpoint]}


_CACHE: dict[str, dict[str, Any]] = {}


def _transformed(combination: str) -> dict[str, Any]:
    if combination not in _CACHE:
        _CACHE[combination] = transform(TEMPLATE_PATH, parameter_overrides=_overrides(combination))
    return _CACHE[combination]


def _values(combination: str) -> dict[str, Any]:
    return {**parameter_values(load_template(TEMPLATE_PATH), _overrides(combination)), **PSEUDO_PARAMETERS}


def _deployed(combination: str) -> dict[str, Any]:
    return deployed(_transformed(combination), _values(combination))


def _evaluate(node: Any, values: Mapping[str, Any]) -> Any:
    """A value of the deployed template with parameters, pseudo parameters, Fn::Select/Split/Sub resolved; a
    reference to a resource becomes "<LogicalId>" (or "<LogicalId.Attr>")."""
    if isinstance(node, list):
        return [_evaluate(item, values) for item in node]
    if not isinstance(node, Mapping):
        return node
    if set(node) == {"Ref"}:
        name = node["Ref"]
        if name == "AWS::StackId":
            return STACK_ID
        return values[name] if name in values else f"<{name}>"
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return f"<{target if isinstance(target, str) else '.'.join(target)}>"
    if set(node) == {"Fn::Split"}:
        sep, text = node["Fn::Split"]
        return str(_evaluate(text, values)).split(sep)
    if set(node) == {"Fn::Select"}:
        index, items = node["Fn::Select"]
        return _evaluate(items, values)[int(index)]
    if set(node) == {"Fn::Sub"}:
        body = node["Fn::Sub"]
        text, local = (body[0], body[1]) if isinstance(body, list) else (body, {})
        scope = {**values, **{k: _evaluate(v, values) for k, v in local.items()}}
        return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: str(scope.get(m.group(1), f"<{m.group(1)}>")), text).replace(
            "${!", "${"
        )
    if set(node) == {"Fn::FindInMap"}:
        name, key, attribute = (_evaluate(part, values) for part in node["Fn::FindInMap"])
        mappings = load_template(TEMPLATE_PATH)["Mappings"]
        return mappings[name][key][attribute]
    return {k: _evaluate(v, values) for k, v in node.items()}


# ---- every combination -----------------------------------------------------------------------------------
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_each_combination_transforms_and_lints_clean(combination: str, sam_template: dict[str, Any]) -> None:
    cfn = _transformed(combination)
    assert _findings(json.dumps(cfn), _ignores_of_generated_resources(sam_template, cfn)) == []


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_each_combination_satisfies_the_rules(combination: str) -> None:
    assert _failed_rules(_overrides(combination)) == []


def _failed_rules(overrides: Mapping[str, str]) -> list[str]:
    """The template's Rules (Fn::Equals, Fn::Not, Fn::Contains over parameter values) that refuse these values."""
    template = load_template(TEMPLATE_PATH)
    values = parameter_values(template, overrides)

    def value(node: Any) -> Any:
        return values[node["Ref"]] if isinstance(node, Mapping) and "Ref" in node else node

    def holds(node: Mapping[str, Any]) -> bool:
        ((fn, arg),) = node.items()
        if fn == "Fn::Equals":
            return bool(value(arg[0]) == value(arg[1]))
        if fn == "Fn::Not":
            return not holds(arg[0])
        if fn == "Fn::Contains":
            return value(arg[1]) in value(arg[0])
        raise AssertionError(f"no evaluator for {fn} in a rule")

    failed = []
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not holds(rule["RuleCondition"]):
            continue
        failed += [name for assertion in rule["Assertions"] if not holds(assertion["Assert"])]
    return failed


@pytest.mark.parametrize(
    ("overrides", "refused_by"),
    [
        ({"JwtIssuerUrl": TEST_PARAMETERS["JwtIssuerUrl"], "JwtAudiences": ""}, "GivenIssuerNeedsAudiences"),
        ({"JwtIssuerUrl": TEST_PARAMETERS["JwtIssuerUrl"], "JwtAudiences": "a,"}, "GivenIssuerNeedsAudiences"),
        ({"JwtIssuerUrl": "", "RequiredScope": "other/scope"}, "CreatedUserPoolDefinesTheScope"),
        ({"SageMakerEndpointName": "", "BootstrapModelDataUrl": ""}, "BootstrapEndpointNeedsTheModel"),
    ],
)
def test_the_rules_refuse_what_cannot_work(overrides: dict[str, str], refused_by: str) -> None:
    base = _overrides("issuer-given/endpoint-given")
    assert refused_by in _failed_rules({**base, **overrides})


def test_the_rule_evaluator_reads_the_templates_rules() -> None:
    """Guard: the rules above are the template's (a renamed rule would make the refusals vacuous)."""
    assert set(load_template(TEMPLATE_PATH)["Rules"]) == {
        "GivenIssuerNeedsAudiences",
        "CreatedUserPoolDefinesTheScope",
        "BootstrapEndpointNeedsTheModel",
    }


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_what_each_combination_creates(combination: str) -> None:
    resources = _deployed(combination)["Resources"]
    created_pool = "issuer-created" in combination
    bootstrap = "endpoint-bootstrap" in combination
    assert (IDENTITY <= set(resources)) is created_pool and (IDENTITY & set(resources)) is not created_pool
    assert (BOOTSTRAP <= set(resources)) is bootstrap and (BOOTSTRAP & set(resources)) is not bootstrap
    # nothing left refers to a resource that this combination does not create
    for lid, resource in resources.items():
        dangling = referenced_ids(resource) - set(resources) - set(_values(combination)) - {"AWS::NoValue"}
        assert not {d for d in dangling if not d.startswith("AWS::")}, (lid, dangling)
    outputs = _deployed(combination)["Outputs"]
    for name in ("UserPoolId", "TokenUrl", "AuthorizeUrl", "MachineClientId", "PeopleClientId"):
        assert (name in outputs) is created_pool, name
        assert not referenced_ids(outputs.get(name, {})) - set(resources) - {"AWS::Region", "AWS::URLSuffix"}


def _authorizer(resources: Mapping[str, Any]) -> dict[str, Any]:
    body = resources["Api"]["Properties"]["Body"]
    config: dict[str, Any] = body["components"]["securitySchemes"]["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    return config["jwtConfiguration"]


def _serving_endpoint(combination: str) -> str:
    resources = _deployed(combination)["Resources"]
    env = resources["PredictFunction"]["Properties"]["Environment"]["Variables"]
    return str(_evaluate(env["SAGEMAKER_ENDPOINT_NAME"], _values(combination)))


# ---- nothing given: the wires ----------------------------------------------------------------------------
def test_the_created_pool_issues_what_the_authorizer_accepts() -> None:
    combination = "issuer-created/endpoint-bootstrap"
    resources = _deployed(combination)["Resources"]
    values = _values(combination)
    jwt = _authorizer(resources)
    assert _evaluate(jwt["issuer"], values) == "https://cognito-idp.us-east-1.amazonaws.com/<UserPool>"
    assert jwt["audience"] == [{"Ref": "MachineClient"}, {"Ref": "PeopleClient"}]
    server = resources["ApiResourceServer"]["Properties"]
    scope = f"{server['Identifier']}/{server['Scopes'][0]['ScopeName']}"
    assert scope == values["RequiredScope"] == "sentiment-api/predict"
    for path, operations in resources["Api"]["Properties"]["Body"]["paths"].items():  # every route wants it
        for operation in operations.values():
            assert _evaluate(operation["security"], values) == [{"JwtAuthorizer": [scope]}], path
    machine, people = resources["MachineClient"], resources["PeopleClient"]
    assert machine["Properties"]["AllowedOAuthFlows"] == ["client_credentials"]
    assert machine["Properties"]["GenerateSecret"] is True
    assert machine["Properties"]["AllowedOAuthScopes"] == [scope]
    assert people["Properties"]["AllowedOAuthFlows"] == ["code"]
    assert people["Properties"]["GenerateSecret"] is False  # a public client: PKCE, no secret in an app
    assert scope in people["Properties"]["AllowedOAuthScopes"]
    for client in (machine, people):
        assert client["Properties"]["UserPoolId"] == {"Ref": "UserPool"}
        assert client["DependsOn"] == "ApiResourceServer"  # the scope exists before a client names it
        assert client["Properties"]["EnableTokenRevocation"] is True
        assert client["Properties"]["AccessTokenValidity"] == 60
    pool = resources["UserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}  # no self sign-up
    assert pool["DeletionProtection"] == "ACTIVE"  # prod
    domain = _evaluate(resources["UserPoolDomain"]["Properties"]["Domain"], values)
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", domain), domain
    assert not re.search("aws|amazon|cognito", domain), domain  # prefixes Cognito reserves
    outputs = _deployed(combination)["Outputs"]
    assert _evaluate(outputs["TokenUrl"]["Value"], values) == (
        "https://<UserPoolDomain>.auth.us-east-1.amazoncognito.com/oauth2/token"
    )
    assert _evaluate(outputs["JwtIssuer"]["Value"], values) == _evaluate(jwt["issuer"], values)


def test_the_functions_call_the_bootstrap_endpoint_the_stack_creates() -> None:
    combination = "issuer-created/endpoint-bootstrap"
    resources = _deployed(combination)["Resources"]
    values = _values(combination)
    endpoint = resources["BootstrapEndpoint"]["Properties"]
    assert _evaluate(endpoint["EndpointName"], values) == "sentiment-prod-bootstrap-1a2b3c4d"
    # SageMakerEndpointName's pattern: the first release records it as PreviousSageMakerEndpointName
    assert re.fullmatch(r"[a-z0-9](-*[a-z0-9]){0,62}", "sentiment-prod-bootstrap-1a2b3c4d")
    name = "<BootstrapEndpoint.EndpointName>"  # by GetAtt: CloudFormation creates it before the functions
    assert _serving_endpoint(combination) == name
    explain = resources["ExplainFunction"]["Properties"]["Environment"]["Variables"]
    assert _evaluate(explain["SAGEMAKER_ENDPOINT_NAME"], values) == name
    outputs = _deployed(combination)["Outputs"]
    assert _evaluate(outputs["SageMakerEndpointName"]["Value"], values) == name  # what a release reads
    dashboard = _evaluate(resources["Dashboard"]["Properties"]["DashboardBody"], values)
    assert f'EndpointName=\\"{name}\\"' in dashboard
    version = next(r for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Version")
    assert f"model endpoint {name};" in _evaluate(version["Properties"]["Description"], values)
    # endpoint -> configuration -> model -> bundle, serverless, in the mapped AWS image
    assert endpoint["EndpointConfigName"] == {"Fn::GetAtt": ["BootstrapEndpointConfig", "EndpointConfigName"]}
    (variant,) = resources["BootstrapEndpointConfig"]["Properties"]["ProductionVariants"]
    assert variant["ModelName"] == {"Fn::GetAtt": ["BootstrapModel", "ModelName"]}
    assert _evaluate(variant["ServerlessConfig"], values) == {"MemorySizeInMB": "2048", "MaxConcurrency": "5"}
    model = resources["BootstrapModel"]["Properties"]
    container = _evaluate(model["PrimaryContainer"], values)
    assert container["ModelDataUrl"] == BUNDLE
    assert container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"  # the bundle's entry point
    assert model["ExecutionRoleArn"] == {"Fn::GetAtt": ["BootstrapModelRole", "Arn"]}
    # the predict role may invoke it: its tag is the one the InvokeEndpoint condition names
    for lid in ("BootstrapModel", "BootstrapEndpointConfig", "BootstrapEndpoint"):
        assert STACK_TAG in resources[lid]["Properties"]["Tags"], lid
    (invoke,) = [
        s for s in policy_statements(resources["PredictFunctionRole"]) if s["Sid"] == "InvokeSentimentEndpoint"
    ]
    assert invoke["Condition"] == {"StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}}


def test_the_bootstrap_model_role_reads_its_bundle_and_its_image_only() -> None:
    combination = "issuer-given/endpoint-bootstrap"
    resources = _deployed(combination)["Resources"]
    values = _values(combination)
    role = resources["BootstrapModelRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = {s["Sid"]: _evaluate(s, values) for s in policy_statements(role)}
    assert statements["ReadTheBundle"]["Action"] == "s3:GetObject"
    assert statements["ReadTheBundle"]["Resource"] == "arn:aws:s3:::" + BUNDLE.removeprefix("s3://")
    assert statements["PullTheInferenceImage"]["Resource"] == (
        "arn:aws:ecr:us-east-1:763104351884:repository/pytorch-inference"
    )
    assert statements["EcrLogin"] == {
        "Sid": "EcrLogin",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert not any("s3:PutObject" in json.dumps(s) or "iam:" in json.dumps(s) for s in statements.values())


def test_a_given_image_is_pulled_from_its_own_repository() -> None:
    overrides = {**_overrides("issuer-given/endpoint-bootstrap")}
    values = {
        **_values("issuer-given/endpoint-bootstrap"),
        "BootstrapImageUri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/onnx:1.0",
    }
    template = deployed(_transformed("issuer-given/endpoint-bootstrap"), values)
    assert overrides["SageMakerEndpointName"] == ""
    statements = {
        s["Sid"]: _evaluate(s, values) for s in policy_statements(template["Resources"]["BootstrapModelRole"])
    }
    assert statements["PullTheInferenceImage"]["Resource"] == "arn:aws:ecr:us-east-1:111122223333:repository/*"
    image = _evaluate(template["Resources"]["BootstrapModel"]["Properties"]["PrimaryContainer"]["Image"], values)
    assert image == "111122223333.dkr.ecr.eu-west-1.amazonaws.com/team/onnx:1.0"


def test_the_image_mapping_is_the_sdks_list() -> None:
    """Generated by tools/image_uris.py from the SageMaker Python SDK's entry (deploy/image_uris/)."""
    template = load_template(TEMPLATE_PATH)
    assert template["Mappings"]["BootstrapInferenceImage"] == image_uris.mapping()
    assert image_uris.image_tag() == "2.6.0-cpu-py312"
    assert f"pytorch-inference:{image_uris.image_tag()}" in TEMPLATE_PATH.read_text("utf-8")
    assert "cn-north-1" not in template["Mappings"]["BootstrapInferenceImage"]  # no Serverless Inference there


# ---- everything given: today's stack ---------------------------------------------------------------------
def test_with_issuer_and_endpoint_given_nothing_is_created_and_the_parameters_are_used() -> None:
    combination = "issuer-given/endpoint-given"
    resources = _deployed(combination)["Resources"]
    assert not (IDENTITY | BOOTSTRAP) & set(resources)
    assert _authorizer(resources) == {"issuer": {"Ref": "JwtIssuerUrl"}, "audience": {"Ref": "JwtAudiences"}}
    assert _serving_endpoint(combination) == TEST_PARAMETERS["SageMakerEndpointName"]


# ---- tag-based IAM (spec 11) -----------------------------------------------------------------------------
SAGEMAKER_ACTIONS_BY_TAG = {
    # action: the condition key that scopes it to this stack's resources
    "sagemaker:CreateAutoMLJobV2": "aws:RequestTag/sentiment-api:stack",
    "sagemaker:CreateModel": "aws:RequestTag/sentiment-api:stack",
    "sagemaker:CreateEndpointConfig": "aws:RequestTag/sentiment-api:stack",
    "sagemaker:CreateProcessingJob": "aws:RequestTag/sentiment-api:stack",
    "sagemaker:AddTags": "sagemaker:TaggingAction",
    "sagemaker:DescribeAutoMLJobV2": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:StopAutoMLJob": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:DescribeEndpoint": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:DeleteEndpoint": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:DeleteEndpointConfig": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:DeleteModel": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:DescribeProcessingJob": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:StopProcessingJob": "aws:ResourceTag/sentiment-api:stack",
    "sagemaker:InvokeEndpoint": "aws:ResourceTag/sentiment-api:stack",
}


def _sagemaker_statements(resources: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for lid, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in policy_statements(resource):
            if "Action" in statement and any(str(a).startswith("sagemaker:") for a in as_list(statement["Action"])):
                found.append((lid, statement))
    return found


def test_every_sagemaker_permission_is_conditioned_on_the_stacks_tag(resources: dict[str, Any]) -> None:
    statements = _sagemaker_statements(resources)
    assert len(statements) >= 8
    for lid, statement in statements:
        condition = json.dumps(statement.get("Condition", {}))
        for action in as_list(statement["Action"]):
            if action == "sagemaker:CreateEndpoint":
                continue  # test_create_endpoint_needs_a_configuration_of_this_stack
            assert action in SAGEMAKER_ACTIONS_BY_TAG, (lid, action)
            assert SAGEMAKER_ACTIONS_BY_TAG[action] in condition, (lid, action, condition)
        if "aws:RequestTag/sentiment-api:stack" in condition:
            assert statement["Condition"]["StringEquals"]["aws:RequestTag/sentiment-api:stack"] == {
                "Ref": "AWS::StackName"
            }
            assert statement["Condition"]["ForAllValues:StringLike"] == {"aws:TagKeys": ["sentiment-api:*"]}
        if "aws:ResourceTag/sentiment-api:stack" in condition:
            assert statement["Condition"]["StringEquals"]["aws:ResourceTag/sentiment-api:stack"] == {
                "Ref": "AWS::StackName"
            }
        # the account's own resources only, by type: no name prefix, no other account or Region
        for target in as_list(statement["Resource"]):
            arn = resolve_sub(target, PSEUDO_PARAMETERS)
            assert re.fullmatch(r"arn:aws:sagemaker:us-east-1:123456789012:[a-z-]+/\*", arn), (lid, arn)


def test_create_endpoint_needs_a_configuration_of_this_stack(resources: dict[str, Any]) -> None:
    """CreateEndpoint authorises the endpoint and the configuration it names. The request tag is in the context
    of both, so a statement granting the configuration under aws:RequestTag would admit another team's: the
    configuration is granted only under its own resource tag, the endpoint only under the request tag."""
    creating = [
        (lid, s) for lid, s in _sagemaker_statements(resources) if "sagemaker:CreateEndpoint" in as_list(s["Action"])
    ]
    by_resource: dict[str, dict[str, Any]] = {}
    for lid, statement in creating:
        assert lid == "RetrainStateMachineRole"
        assert as_list(statement["Action"]) == ["sagemaker:CreateEndpoint"], statement["Sid"]
        (target,) = as_list(statement["Resource"])
        by_resource[resolve_sub(target, PSEUDO_PARAMETERS).rsplit(":", 1)[1]] = statement["Condition"]
    assert set(by_resource) == {"endpoint/*", "endpoint-config/*"}
    assert set(by_resource["endpoint/*"]["StringEquals"]) == {"aws:RequestTag/sentiment-api:stack"}
    assert by_resource["endpoint-config/*"] == {
        "StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}
    }
    # an endpoint configuration may name only the retraining's models (no tag key exists for the model)
    (config,) = [
        s for _, s in _sagemaker_statements(resources) if "sagemaker:CreateEndpointConfig" in as_list(s["Action"])
    ]
    (model_arn,) = config["Condition"]["ForAllValues:ArnLike"]["sagemaker:ModelArn"]
    assert resolve_sub(model_arn, {**PSEUDO_PARAMETERS, "Stage": "prod"}).endswith(":model/sentiment-prod*")


def test_tags_are_added_only_while_creating(resources: dict[str, Any]) -> None:
    """AddTags with sagemaker:TaggingAction = the Create* calls: no existing resource of the account (another
    team's endpoint) can be tagged as this stack's and then invoked or deleted by its roles."""
    adders = [(lid, s) for lid, s in _sagemaker_statements(resources) if "sagemaker:AddTags" in as_list(s["Action"])]
    assert {lid for lid, _ in adders} == {"RetrainStateMachineRole", "GovernanceStateMachineRole"}
    for lid, statement in adders:
        assert as_list(statement["Action"]) == ["sagemaker:AddTags"], lid
        actions = as_list(statement["Condition"]["StringEquals"]["sagemaker:TaggingAction"])
        assert actions and all(a.startswith("Create") for a in actions), (lid, actions)
        assert "sagemaker:DeleteTags" not in json.dumps(resources[lid])


def test_every_sagemaker_resource_the_pipelines_create_carries_the_stack_tag() -> None:
    for name in ("retrain", "governance"):
        definition = json.loads((TEMPLATE_PATH.parent / "statemachines" / f"{name}.asl.json").read_text())
        creates = [
            state
            for state in definition["States"].values()
            if str(state.get("Resource", "")).startswith("arn:aws:states:::aws-sdk:sagemaker:create")
        ]
        assert creates, name
        for state in creates:
            assert {"Key": "sentiment-api:stack", "Value": "${StackName}"} in state["Parameters"]["Tags"], state
            keys = {tag["Key"] for tag in state["Parameters"]["Tags"]}
            assert all(k.startswith("sentiment-api:") for k in keys), keys  # aws:TagKeys allows only these
