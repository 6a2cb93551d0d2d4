"""A model release can change only what a model release changes (issue 10, docs/security.md "Trust boundary
of a model release"), shown on the real transformed template:

* the release function may update this stack only with CloudFormation acting as ModelReleaseRole, and may
  pass that role and no other, to CloudFormation only;
* ModelReleaseRole holds nothing in IAM that creates or changes a principal or a policy, writes no function
  but those a release changes, and never their code;
* the template is transformed twice, with two endpoint names, and compared: every resource that changes is
  allowed by the release's stack policy (RELEASE_STACK_POLICY), every other resource is protected by it, no
  IAM resource changes, and ModelReleaseRole may make every API call CloudFormation makes for those changes.

What CloudFormation calls for a change comes from the resource types' registry schemas (handler permissions,
createOnlyProperties), as bundled in cfn-lint; the IAM action list from the Service Authorization Reference,
as bundled in cfn-lint (AdditionalSpecs/Policies.json); the stack policy language from
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/protect-stack-resources.html.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

import pytest
from cfnlint.data import AdditionalSpecs
from cfnlint.helpers import load_resource
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from samtranslator.intrinsics.resolver import IntrinsicsResolver

from tests.template.cfn_helpers import as_list, deployed, of_type, policy_statements, referenced_ids
from tests.template.conftest import PSEUDO_PARAMETERS, REPO_ROOT, TEMPLATE_PATH, TEST_PARAMETERS
from tools.transform_template import load_template, parameter_values, transform

REGION = PSEUDO_PARAMETERS["AWS::Region"]
ACCOUNT = PSEUDO_PARAMETERS["AWS::AccountId"]
STACK = PSEUDO_PARAMETERS["AWS::StackName"]

#: The two parameters a model release changes (functions/release_model: UsePreviousTemplate, every other
#: parameter UsePreviousValue).
RELEASE_PARAMETERS = ("SageMakerEndpointName", "PreviousSageMakerEndpointName")
BEFORE = {
    **TEST_PARAMETERS,
    "SageMakerEndpointName": "sentiment-prod-20260101-000000",
    "PreviousSageMakerEndpointName": "sentiment-prod-20251201-000000",
}
AFTER = {
    **TEST_PARAMETERS,
    "SageMakerEndpointName": "sentiment-prod-20260201-000000",
    "PreviousSageMakerEndpointName": "sentiment-prod-20260101-000000",
}
#: The first release of a stack deployed with nothing given: it served the bootstrap endpoint (the bundle
#: stays set: UsePreviousValue) and records it as the previous one.
BOOTSTRAP_BUNDLE = "s3://sam-artifacts/sentiment-api-prod/bootstrap-model/" + "0" * 64 + ".tar.gz"
FIRST_BEFORE = {**TEST_PARAMETERS, "SageMakerEndpointName": "", "BootstrapModelDataUrl": BOOTSTRAP_BUNDLE}
FIRST_AFTER = {
    **FIRST_BEFORE,
    "SageMakerEndpointName": "sentiment-prod-20260201-000000",
    "PreviousSageMakerEndpointName": "sentiment-prod-bootstrap-1a2b3c4d",
}
SCENARIOS = {"a-release": (BEFORE, AFTER), "the-first-release": (FIRST_BEFORE, FIRST_AFTER)}
MODIFY, REPLACE, DELETE, CREATE = "Update:Modify", "Update:Replace", "Update:Delete", "Create"
UPDATE_ACTIONS = (MODIFY, REPLACE, DELETE)

#: Resource types that are, or hold, an IAM principal or policy (identity or resource policies).
POLICY_TYPES = (
    "AWS::IAM::*",
    "AWS::Lambda::Permission",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::KMS::Key",
)
#: IAM actions that cannot create or change a principal or a policy (everything else in iam: can, or reads).
HARMLESS_IAM_ACTIONS = {"iam:PassRole"}

#: What the registry schemas list for a handler but a release never calls, per resource type, with the
#: reason: a release changes only SageMakerEndpointName/PreviousSageMakerEndpointName, i.e. the functions'
#: Environment, the version's Description (replacement), the alias's FunctionVersion and the DashboardBody.
#: Every other property those actions serve is unset or unchanged in template.yaml (a test below checks the
#: entries still name actions the schemas list).
NOT_CALLED_BY_A_RELEASE: dict[str, dict[str, str]] = {
    "AWS::Lambda::Function": {
        "lambda:UpdateFunctionCode": "Code unchanged (UsePreviousTemplate: same S3 object)",
        "s3:GetObject": "reads the code, for UpdateFunctionCode only",
        "s3:GetObjectVersion": "reads the code, for UpdateFunctionCode only",
        "lambda:PutFunctionConcurrency": "ReservedConcurrentExecutions not set",
        "lambda:DeleteFunctionConcurrency": "ReservedConcurrentExecutions not set",
        "lambda:TagResource": "tags unchanged",
        "lambda:UntagResource": "tags unchanged",
        "ec2:DescribeSecurityGroups": "no VpcConfig",
        "ec2:DescribeSubnets": "no VpcConfig",
        "ec2:DescribeVpcs": "no VpcConfig",
        "elasticfilesystem:DescribeMountTargets": "no FileSystemConfigs",
        "s3files:ListMountTargets": "no FileSystemConfigs",
        "kms:CreateGrant": "no KmsKeyArn (environment encrypted with the AWS managed key)",
        "kms:Decrypt": "no KmsKeyArn",
        "kms:DescribeKey": "no KmsKeyArn",
        "kms:GenerateDataKey": "no KmsKeyArn",
        "lambda:PutRuntimeManagementConfig": "RuntimeManagementConfig not set",
        "lambda:PutFunctionCodeSigningConfig": "no CodeSigningConfigArn",
        "lambda:DeleteFunctionCodeSigningConfig": "no CodeSigningConfigArn",
        "lambda:GetCodeSigningConfig": "no CodeSigningConfigArn",
        "lambda:PutFunctionRecursionConfig": "RecursiveLoop not set",
        "lambda:PutFunctionScalingConfig": "no CapacityProviderConfig (Lambda Managed Instances)",
        "lambda:PassCapacityProvider": "no CapacityProviderConfig (Lambda Managed Instances)",
        "lambda:AssociateRuntimeAlias": "no runtime alias configuration",
        "lambda:PublishVersion": "publishes for Lambda Managed Instances only; versions are AWS::Lambda::Version",
    },
    "AWS::Lambda::Version": {
        "lambda:PutProvisionedConcurrencyConfig": "no ProvisionedConcurrencyConfig",
        "lambda:PutRuntimeManagementConfig": "no RuntimePolicy",
        "lambda:PutFunctionScalingConfig": "no FunctionScalingConfig",
    },
    "AWS::Lambda::Alias": {
        "lambda:PutProvisionedConcurrencyConfig": "no ProvisionedConcurrencyConfig",
        "lambda:DeleteProvisionedConcurrencyConfig": "no ProvisionedConcurrencyConfig",
    },
    "AWS::CloudWatch::Dashboard": {
        "cloudwatch:TagResource": "no tags",
        "cloudwatch:UntagResource": "no tags",
    },
}


# ---- the two transforms and what differs -----------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    logical_id: str
    type: str
    action: str  # Update:Modify | Update:Replace | Update:Delete | Create


@dataclass(frozen=True)
class Release:
    before: dict[str, Any]  # resolved resources, before and after the release
    after: dict[str, Any]
    template: dict[str, Any]  # the transformed template after the release (unresolved)
    changes: tuple[Change, ...]

    def changed(self) -> dict[str, Change]:
        return {c.logical_id: c for c in self.changes}


def _resolved(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The transformed template, and its resources with every parameter and pseudo parameter resolved
    (samtranslator's own resolver: Ref and Fn::Sub of parameters; resource references stay)."""
    cfn = transform(TEMPLATE_PATH, parameter_overrides=parameters)
    values = {**parameter_values(load_template(TEMPLATE_PATH), parameters), **PSEUDO_PARAMETERS}
    resolver = IntrinsicsResolver(values)
    resources = resolver.resolve_parameter_refs(copy.deepcopy(cfn["Resources"]))
    # what CloudFormation deploys with these values: conditional resources and Fn::If branches chosen
    return cfn, deployed({"Conditions": cfn.get("Conditions", {}), "Resources": resources}, values)["Resources"]


@cache
def _schema(resource_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, resource_type).schema
    return schema


def _create_only(resource_type: str) -> set[str]:
    return {path.split("/")[2] for path in _schema(resource_type).get("createOnlyProperties", [])}


_SUB_NAME = re.compile(r"\$\{([^!}][^}]*)\}")


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[Change, ...]:
    changes: dict[str, Change] = {}
    for logical_id in before.keys() - after.keys():
        changes[logical_id] = Change(logical_id, before[logical_id]["Type"], DELETE)
    for logical_id in after.keys() - before.keys():
        changes[logical_id] = Change(logical_id, after[logical_id]["Type"], CREATE)
    for logical_id in before.keys() & after.keys():
        old, new = before[logical_id], after[logical_id]
        if old == new:
            continue
        props_old, props_new = old.get("Properties", {}), new.get("Properties", {})
        changed = {k for k in props_old.keys() | props_new.keys() if props_old.get(k) != props_new.get(k)}
        replaced = bool(changed & _create_only(new["Type"]))
        changes[logical_id] = Change(logical_id, new["Type"], REPLACE if replaced else MODIFY)
    # A replaced resource gets a new physical id and new attributes: what refers to it is updated too (the
    # alias, whose FunctionVersion is the replaced version's Version). A resource modified in place keeps its
    # physical id (Ref) and, for the types a release modifies, the attributes others read (Arn).
    grew = True
    while grew:
        grew = False
        replaced_ids = {c.logical_id for c in changes.values() if c.action == REPLACE}
        for logical_id, resource in after.items():
            if logical_id in changes:
                continue
            props = resource.get("Properties", {})
            hit = {name for name, value in props.items() if replaced_ids & referenced_ids(value)}
            if hit or replaced_ids & referenced_ids({k: v for k, v in resource.items() if k != "Properties"}):
                action = REPLACE if hit & _create_only(resource["Type"]) else MODIFY
                changes[logical_id] = Change(logical_id, resource["Type"], action)
                grew = True
    return tuple(sorted(changes.values(), key=lambda c: c.logical_id))


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def release(request: pytest.FixtureRequest) -> Release:
    """A release between two retrained endpoints, and the first one, from the bootstrap endpoint."""
    before_values, after_values = SCENARIOS[request.param]
    _, before = _resolved(before_values)
    cfn, after = _resolved(after_values)
    return Release(before, after, cfn, _diff(before, after))


# ---- CloudFormation's stack policy language --------------------------------------------------------------
def _condition_holds(condition: Mapping[str, Any], resource_type: str) -> bool:
    for operator, keys in condition.items():
        assert set(keys) == {"ResourceType"}, keys
        patterns = as_list(keys["ResourceType"])
        if operator == "StringEquals":
            if resource_type not in patterns:
                return False
        elif operator == "StringLike":
            if not any(fnmatchcase(resource_type, p) for p in patterns):
                return False
        else:
            raise AssertionError(f"stack policies know StringEquals and StringLike only, not {operator}")
    return True


def _statement_matches(statement: Mapping[str, Any], action: str, logical_id: str, resource_type: str) -> bool:
    target = f"LogicalResourceId/{logical_id}"
    if "Action" in statement:
        action_ok = any(fnmatchcase(action, a) for a in as_list(statement["Action"]))
    else:
        action_ok = not any(fnmatchcase(action, a) for a in as_list(statement["NotAction"]))
    if "Resource" in statement:
        resource_ok = any(fnmatchcase(target, r) for r in as_list(statement["Resource"]))
    else:
        resource_ok = not any(fnmatchcase(target, r) for r in as_list(statement["NotResource"]))
    return action_ok and resource_ok and _condition_holds(statement.get("Condition", {}), resource_type)


def stack_policy_allows(policy: Mapping[str, Any], action: str, logical_id: str, resource_type: str) -> bool:
    """With a stack policy set, an update not explicitly allowed is denied, and a Deny overrides any Allow."""
    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and _statement_matches(s, action, logical_id, resource_type) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _statement_matches(s, action, logical_id, resource_type) for s in statements)


@pytest.fixture(scope="module")
def stack_policy(release: Release) -> dict[str, Any]:
    env = release.template["Resources"]["ReleaseModelFunction"]["Properties"]["Environment"]["Variables"]
    policy: dict[str, Any] = json.loads(env["RELEASE_STACK_POLICY"])
    return policy


def test_the_stack_policy_reader_follows_the_documented_example() -> None:
    """The reference's first example: everything may be updated but ProductionDatabase (guards the reader)."""
    documented = {
        "Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "Update:*",
                "Principal": "*",
                "Resource": "LogicalResourceId/ProductionDatabase",
            },
        ]
    }
    assert stack_policy_allows(documented, MODIFY, "WebServer", "AWS::EC2::Instance")
    assert not stack_policy_allows(documented, REPLACE, "ProductionDatabase", "AWS::RDS::DBInstance")
    assert not stack_policy_allows(
        {"Statement": [documented["Statement"][1]]}, MODIFY, "WebServer", "AWS::EC2::Instance"
    )


# ---- (c) what a release changes, and what the stack policy lets it change --------------------------------
def test_a_release_changes_the_three_functions_the_version_the_alias_and_the_dashboard(release: Release) -> None:
    by_type = {(c.type, c.action) for c in release.changes}
    assert by_type == {
        ("AWS::Lambda::Function", MODIFY),  # PredictFunction, ExplainFunction, JobsFunction: SAGEMAKER_ENDPOINT_NAME
        ("AWS::Lambda::Version", REPLACE),  # VersionDescription: a new predict version is published
        ("AWS::Lambda::Alias", MODIFY),  # `live` moves to it, through the CodeDeploy canary
        ("AWS::CloudWatch::Dashboard", MODIFY),  # the SageMaker widgets name the live endpoint
    }, release.changes
    functions = {c.logical_id for c in release.changes if c.type == "AWS::Lambda::Function"}
    assert functions == {"PredictFunction", "ExplainFunction", "JobsFunction"}


def test_a_release_publishes_a_new_predict_version_behind_live(release: Release) -> None:
    """Without the endpoint in the version's description SAM would keep the version's logical id (it hashes
    the function's properties with parameter references unresolved): no new version, `live` unchanged, the
    release a silent no-op. The version is replaced, and the alias follows it."""
    changed = release.changed()
    alias = release.after["PredictFunctionAliaslive"]
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert changed[version_id].action == REPLACE
    assert changed["PredictFunctionAliaslive"].action == MODIFY
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]  # the canary, not a direct alias update
    # the replaced version stays: the stable side of the canary, the target of deploy/rollback.sh --to-version
    assert release.after[version_id]["UpdateReplacePolicy"] == "Retain"
    assert release.after[version_id]["DeletionPolicy"] == "Retain"


def test_a_sam_that_hashes_parameter_values_is_allowed_too(release: Release, stack_policy: dict[str, Any]) -> None:
    """aws/serverless-application-model#3820 may change SAM to resolve parameters before naming a version:
    then a release creates PredictFunctionVersion<new hash> and deletes the old logical id instead of
    replacing one resource. The managed transform (UsePreviousTemplate re-runs AWS's current one) is not
    pinned, so the stack policy must allow that shape as well (the deletion keeps the version: Retain)."""
    old_id = release.after["PredictFunctionAliaslive"]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    new_id = "PredictFunctionVersion0123456789"
    renamed = json.loads(json.dumps(release.after).replace(f'"{old_id}"', f'"{new_id}"'))  # key and references
    assert old_id not in renamed and new_id in renamed
    changes = _diff(release.before, renamed)
    assert {(c.logical_id, c.action) for c in changes} >= {(old_id, DELETE), (new_id, CREATE)}
    for change in changes:
        if change.action != CREATE:  # stack policies do not govern creations
            assert stack_policy_allows(stack_policy, change.action, change.logical_id, change.type), change
    assert renamed[new_id]["DeletionPolicy"] == "Retain"


def test_a_parameter_only_deploy_of_any_function_setting_publishes_a_version() -> None:
    """Every parameter the predict function's configuration reads is in the version's description, so a
    `sam deploy` that changes only it (e.g. RateLimitFailMode=closed) still reaches `live`."""
    _, before = _resolved(BEFORE)
    for parameter, value in (("RateLimitFailMode", "closed"), ("RateLimitPerMinute", "60"), ("RateLimitBurst", "50")):
        _, after = _resolved({**BEFORE, parameter: value})
        version_id = after["PredictFunctionAliaslive"]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        assert before[version_id]["Properties"]["Description"] != after[version_id]["Properties"]["Description"]
    environment = before["PredictFunction"]["Properties"]["Environment"]["Variables"]
    description = str(before[version_id]["Properties"]["Description"])
    for name, value in environment.items():
        if (name.startswith("RATE_LIMIT_") and name != "RATE_LIMIT_TABLE_NAME") or name == "SAGEMAKER_ENDPOINT_NAME":
            assert str(value) in description, name


def test_a_release_changes_no_iam_principal_or_policy(release: Release) -> None:
    touched = [c for c in release.changes if any(fnmatchcase(c.type, t) for t in POLICY_TYPES)]
    assert touched == []


#: Conditions on the release parameters that only choose a value (Fn::If), never whether a resource exists:
#: the endpoint the functions call (the bootstrap one while SageMakerEndpointName is empty).
VALUE_ONLY_CONDITIONS = {"UseBootstrapEndpoint"}


def test_no_resource_is_conditional_on_a_release_parameter(release: Release) -> None:
    """A condition on the endpoint parameters would let a release create or remove resources; the ones that
    exist serve an output (HasPreviousSageMakerEndpoint) or choose the endpoint name the functions, the
    version's description and the dashboard read (UseBootstrapEndpoint: the first release changes those
    values, like any release, and the bootstrap endpoint stays; the scenarios above diff both)."""
    conditions = release.template.get("Conditions", {})
    dependent: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, body in conditions.items():
            text = json.dumps(body)
            if name not in dependent and (
                any(f'"Ref": "{p}"' in text for p in RELEASE_PARAMETERS)
                or any(f'"Condition": "{d}"' in text for d in dependent)
            ):
                dependent.add(name)
                grew = True
    resources_text = json.dumps(release.template["Resources"])
    assert VALUE_ONLY_CONDITIONS <= dependent, "stale: the bootstrap choice no longer depends on the endpoint"
    for name in dependent:
        assert f'"Condition": "{name}"' not in resources_text, name
        if name not in VALUE_ONLY_CONDITIONS:
            assert f'"Fn::If": ["{name}"' not in resources_text, name
    for name in VALUE_ONLY_CONDITIONS:  # never around a statement, a resource's existence or a list
        for resource in release.template["Resources"].values():
            assert f'"Condition": "{name}"' not in json.dumps(resource), name


def test_the_stack_policy_allows_every_change_of_a_release(release: Release, stack_policy: dict[str, Any]) -> None:
    for change in release.changes:
        assert change.action != CREATE, f"{change}: stack policies cannot govern a creation"
        assert stack_policy_allows(stack_policy, change.action, change.logical_id, change.type), change


def test_the_stack_policy_protects_everything_a_release_does_not_change(
    release: Release, stack_policy: dict[str, Any]
) -> None:
    changed = release.changed()
    for logical_id, resource in release.after.items():
        own = changed[logical_id].action if logical_id in changed else None
        for action in UPDATE_ACTIONS:
            if action == own or (logical_id.startswith("PredictFunctionVersion") and action == DELETE):
                continue  # a version may leave the template (test_a_sam_that_hashes_parameter_values_...)
            assert not stack_policy_allows(stack_policy, action, logical_id, resource["Type"]), (action, logical_id)
    # whatever a wrong allow-list might say, no IAM resource may be updated during a release
    for logical_id in of_type(release.after, "AWS::IAM::Role"):
        for action in UPDATE_ACTIONS:
            with_everything_allowed = {
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"},
                    *(s for s in stack_policy["Statement"] if s["Effect"] == "Deny" and "Condition" in s),
                ]
            }
            assert not stack_policy_allows(with_everything_allowed, action, logical_id, "AWS::IAM::Role")


def test_the_stack_policy_is_one_cloudformation_accepts(release: Release, stack_policy: dict[str, Any]) -> None:
    """The documented elements only; every logical id it names exists (CloudFormation rejects a policy that
    names an unknown one), every pattern matches something."""
    assert set(stack_policy) == {"Statement"}
    for statement in stack_policy["Statement"]:
        assert statement["Effect"] in {"Allow", "Deny"} and statement["Principal"] == "*", statement
        assert set(statement) <= {"Effect", "Principal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
        assert ("Action" in statement) != ("NotAction" in statement), statement
        assert ("Resource" in statement) != ("NotResource" in statement), statement
        for action in as_list(statement.get("Action", statement.get("NotAction"))):
            assert action in {*UPDATE_ACTIONS, "Update:*"}, action
        for target in as_list(statement.get("Resource", statement.get("NotResource"))):
            if target == "*":
                continue
            assert target.startswith("LogicalResourceId/"), target
            pattern = target.removeprefix("LogicalResourceId/")
            assert any(fnmatchcase(lid, pattern) for lid in release.after), f"{target} names no resource"
            if "*" not in pattern:
                assert "Condition" not in release.template["Resources"][pattern], f"{pattern} may not exist"


# ---- (a) the release function's own role -----------------------------------------------------------------
def _statements(role: Mapping[str, Any], condition_value: bool = True) -> list[dict[str, Any]]:
    """A role's statements, each Fn::If [condition, then, else] taken as ``condition_value`` says (the
    release function's statements depend on AutomaticRelease only)."""
    out = []
    for statement in policy_statements(role):
        if "Fn::If" in statement:
            _, when_true, when_false = statement["Fn::If"]
            statement = when_true if condition_value else when_false
        if statement != {"Ref": "AWS::NoValue"}:
            out.append(statement)
    return out


def _actions(statement: Mapping[str, Any]) -> list[str]:
    assert "NotAction" not in statement and "NotResource" not in statement, statement
    assert statement["Effect"] == "Allow", statement
    return [str(a) for a in as_list(statement["Action"])]


def _grants(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _actions(statement))


RELEASE_ROLE_ARN = {"Fn::GetAtt": ["ModelReleaseRole", "Arn"]}
STACK_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*"
}


def test_the_release_function_passes_only_the_release_role_and_only_to_cloudformation(release: Release) -> None:
    statements = _statements(release.template["Resources"]["ReleaseModelFunctionRole"])
    (passing,) = [s for s in statements if _grants(s, "iam:PassRole")]
    assert _actions(passing) == ["iam:PassRole"]
    assert as_list(passing["Resource"]) == [RELEASE_ROLE_ARN]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    assert all(
        _actions(s) != [] and not any(a.startswith("iam:") and s is not passing for a in _actions(s))
        for s in statements
    )


def test_the_release_function_updates_the_stack_only_as_the_release_role(release: Release) -> None:
    """cloudformation:RoleArn (a condition key of UpdateStack, Service Authorization Reference) equal to the
    release role: a call without RoleARN, which CloudFormation would run as the role last associated with the
    stack (the deployment role of the last `sam deploy`, no iam:PassRole needed), or with another role, is
    denied."""
    statements = _statements(release.template["Resources"]["ReleaseModelFunctionRole"])
    (updating,) = [s for s in statements if _grants(s, "cloudformation:UpdateStack")]
    assert _actions(updating) == ["cloudformation:UpdateStack"]
    assert updating["Resource"] == STACK_ARN
    assert updating["Condition"] == {"ArnEquals": {"cloudformation:RoleArn": RELEASE_ROLE_ARN}}
    for action in (
        "cloudformation:CreateStack",
        "cloudformation:DeleteStack",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:ContinueUpdateRollback",
        "cloudformation:CreateStackSet",
    ):
        assert not any(_grants(s, action) for s in statements), action
    writes = {a for s in statements for a in _actions(s) if not re.match(r"cloudformation:(Describe|Get|List)", a)}
    assert writes == {
        "cloudformation:UpdateStack",
        "cloudformation:SetStackPolicy",
        "cloudformation:CreateChangeSet",
        "iam:PassRole",
    }
    (transform_statement,) = [s for s in statements if _grants(s, "cloudformation:CreateChangeSet")]
    assert transform_statement["Resource"]["Fn::Sub"].endswith(":aws:transform/Serverless-2016-10-31")
    role = release.template["Resources"]["ReleaseModelFunctionRole"]["Properties"]
    assert set(role.get("ManagedPolicyArns", [])) <= {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }


def test_a_manual_release_cannot_update_the_stack_at_all() -> None:
    cfn = transform(TEMPLATE_PATH, parameter_overrides={**AFTER, "ModelRelease": "manual"})
    resources = cfn["Resources"]
    statements = _statements(resources["ReleaseModelFunctionRole"], condition_value=False)
    assert {a for s in statements for a in _actions(s)} == {
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackEvents",
    }
    assert resources["ModelReleaseRole"]["Condition"] == "AutomaticRelease"
    assert cfn["Conditions"]["AutomaticRelease"] == {"Fn::Equals": [{"Ref": "ModelRelease"}, "automatic"]}
    env = resources["ReleaseModelFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CLOUDFORMATION_ROLE_ARN"] == {"Fn::If": ["AutomaticRelease", RELEASE_ROLE_ARN, ""]}
    assert cfn["Parameters"]["ModelRelease"]["Default"] == "automatic"
    assert sorted(cfn["Parameters"]["ModelRelease"]["AllowedValues"]) == ["automatic", "manual"]


def test_the_release_function_gets_the_stack_the_role_and_the_policy(release: Release) -> None:
    """The variables functions/release_model reads (STAGE from Globals), within Lambda's 4 KB for all."""
    env = release.template["Resources"]["ReleaseModelFunction"]["Properties"]["Environment"]["Variables"]
    assert {"STACK_NAME", "STAGE", "CLOUDFORMATION_ROLE_ARN", "RELEASE_STACK_POLICY"} <= set(env)
    assert env["STACK_NAME"] == {"Ref": "AWS::StackName"}
    resolved = {k: (v if isinstance(v, str) else "x" * 100) for k, v in env.items()}
    assert sum(len(k) + len(v) for k, v in resolved.items()) < 4096


# ---- (b) the release role --------------------------------------------------------------------------------
@cache
def _sar_actions() -> tuple[str, ...]:
    """Every IAM action, from the Service Authorization Reference as cfn-lint bundles it."""
    services = load_resource(AdditionalSpecs, "Policies.json")
    return tuple(f"{prefix}:{action}" for prefix, spec in services.items() for action in spec["Actions"])


def _expand(pattern: str) -> set[str]:
    """The IAM actions a pattern grants, lower case (IAM action names are case-insensitive)."""
    found = {a.lower() for a in _sar_actions() if fnmatchcase(a.lower(), pattern.lower())}
    assert found, f"{pattern} is no IAM action"
    return found


@pytest.fixture(scope="module")
def release_role(release: Release) -> dict[str, Any]:
    role: dict[str, Any] = release.template["Resources"]["ModelReleaseRole"]
    return role


def test_the_release_role_is_cloudformations_only(release_role: dict[str, Any]) -> None:
    props = release_role["Properties"]
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    assert "ManagedPolicyArns" not in props and "PermissionsBoundary" not in props
    assert release_role["Condition"] == "AutomaticRelease"


def test_the_release_role_has_nothing_in_iam_but_passing_the_functions_own_roles(
    release: Release, release_role: dict[str, Any]
) -> None:
    statements = _statements(release_role)
    actions = {a for s in statements for pattern in _actions(s) for a in _expand(pattern)}
    iam = {a for a in actions if a.startswith("iam:")}
    assert iam <= {a.lower() for a in HARMLESS_IAM_ACTIONS}, iam
    # The roles it may pass: those of the functions a release changes, to Lambda only...
    changed_functions = [c.logical_id for c in release.changes if c.type == "AWS::Lambda::Function"]
    own_roles = sorted(release.after[f]["Properties"]["Role"]["Fn::GetAtt"][0] for f in changed_functions)
    (passing,) = [s for s in statements if _grants(s, "iam:PassRole")]
    assert sorted(r["Fn::GetAtt"][0] for r in as_list(passing["Resource"])) == own_roles
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in as_list(passing["Resource"]))
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    # ...which themselves can change nothing in IAM (and their managed policies are the logging ones).
    for role_id in own_roles:
        role = release.template["Resources"][role_id]
        assert not any(a.startswith("iam:") for s in policy_statements(role) for a in as_list(s["Action"])), role_id
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= {
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        }, role_id


def _function_arn(logical_id: str, qualifier: str | None = None) -> dict[str, str]:
    """How the template writes a function's ARN from its name (Ref, not GetAtt: see ModelReleaseRole)."""
    prefix = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    return {"Fn::Sub": prefix + "${" + logical_id + "}" + (f":{qualifier}" if qualifier else "")}


def test_the_release_role_writes_only_the_functions_a_release_changes_and_never_code(
    release: Release, release_role: dict[str, Any]
) -> None:
    statements = _statements(release_role)
    lambda_writes: dict[str, list[Any]] = {}
    for statement in statements:
        for pattern in _actions(statement):
            for action in _expand(pattern):
                if action.startswith("lambda:") and not re.match(r"lambda:(get|list)", action):
                    lambda_writes.setdefault(action, []).extend(as_list(statement["Resource"]))
    assert set(lambda_writes) == {"lambda:updatefunctionconfiguration", "lambda:publishversion", "lambda:updatealias"}
    changed_functions = sorted(c.logical_id for c in release.changes if c.type == "AWS::Lambda::Function")
    assert sorted(lambda_writes["lambda:updatefunctionconfiguration"], key=json.dumps) == sorted(
        (_function_arn(f) for f in changed_functions), key=json.dumps
    )
    assert lambda_writes["lambda:publishversion"] == [_function_arn("PredictFunction")]
    assert lambda_writes["lambda:updatealias"] == [_function_arn("PredictFunction", "live")]


def test_the_release_role_attaches_no_layer_but_the_stacks_own(release: Release, release_role: dict[str, Any]) -> None:
    """lambda:Layer on UpdateFunctionConfiguration (https://docs.aws.amazon.com/lambda/latest/dg/
    permissions-user-layer.html): a release cannot swap in a layer of someone else's, a public one included."""
    (configure,) = [s for s in _statements(release_role) if _grants(s, "lambda:UpdateFunctionConfiguration")]
    (patterns,) = configure["Condition"]["ForAllValues:StringLike"].values()
    assert list(configure["Condition"]["ForAllValues:StringLike"]) == ["lambda:Layer"]
    names = sorted(
        layer["Properties"]["LayerName"]["Fn::Sub"]
        for layer in of_type(release.template["Resources"], "AWS::Lambda::LayerVersion").values()
    )
    assert sorted(p["Fn::Sub"].rsplit(":layer:", 1)[1] for p in patterns) == sorted(f"{n}:*" for n in names)


# ---- (d) the release role covers what CloudFormation calls for each change -------------------------------
def _physical(value: Any, resources: Mapping[str, Any]) -> Any:
    """A value with resource references replaced by plausible physical values (name = the logical id)."""

    def attribute(logical_id: str, attr: str) -> str:
        rtype = resources[logical_id]["Type"]
        if (rtype, attr) == ("AWS::IAM::Role", "Arn"):
            return f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"
        if (rtype, attr) == ("AWS::Lambda::Function", "Arn"):
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        raise AssertionError(f"no test value for {logical_id}.{attr}")

    def name(reference: str) -> str:
        if reference in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[reference]
        if "." in reference:
            return attribute(*reference.split(".", 1))
        assert reference in resources, reference
        return reference

    if isinstance(value, dict) and set(value) == {"Ref"}:
        return name(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return attribute(*value["Fn::GetAtt"])
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return _SUB_NAME.sub(lambda m: name(m.group(1)), value["Fn::Sub"])
    if isinstance(value, dict):
        return {k: _physical(v, resources) for k, v in value.items()}
    if isinstance(value, list):
        return [_physical(v, resources) for v in value]
    return value


def _allowed(statements: list[dict[str, Any]], action: str, arns: list[str], resources: Mapping[str, Any]) -> bool:
    for statement in statements:
        if _grants(statement, action):
            patterns = [_physical(r, resources) for r in as_list(statement["Resource"])]
            if any(fnmatchcase(arn, p) for p in patterns for arn in arns):
                return True
    return False


def _targets(change: Change, action: str, release: Release) -> list[str]:
    """The ARNs a call of ``action`` for this change is authorized against."""
    resources = release.template["Resources"]
    resource = resources[change.logical_id]
    service = action.split(":", 1)[0]
    if change.type == "AWS::Lambda::Function":
        function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{change.logical_id}"
        if action == "iam:PassRole":
            return [_physical(resource["Properties"]["Role"], resources)]
        return [function]
    if change.type in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
        function = _physical(resource["Properties"]["FunctionName"], resources)
        qualifier = resource["Properties"].get("Name", "7")  # an alias name, or a version number
        if service == "codedeploy":
            update = _physical(resource["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"], resources)
            if action == "codedeploy:GetDeploymentConfig":
                return [f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentconfig:CanaryConfiguration"]
            group = f"{update['ApplicationName']}/{update['DeploymentGroupName']}"
            return [f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:deploymentgroup:{group}"]
        return [
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}",
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{qualifier}",
        ]
    if change.type == "AWS::CloudWatch::Dashboard":
        return [f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{change.logical_id}"]
    raise AssertionError(f"no ARN rule for {change.type}")


def _handler_actions(change: Change) -> set[str]:
    """What CloudFormation's handlers may call for the change: update (or create, for a replacement) and
    read (after the change, and on rollback)."""
    handlers = _schema(change.type)["handlers"]
    operation = "update" if change.action == MODIFY else "create"
    return set(handlers[operation]["permissions"]) | set(handlers["read"]["permissions"])


def test_the_release_role_may_make_every_call_cloudformation_makes_for_a_release(
    release: Release, release_role: dict[str, Any]
) -> None:
    statements = _statements(release_role)
    resources = release.template["Resources"]
    missing = []
    for change in release.changes:
        assert change.action in (MODIFY, REPLACE), change  # a release deletes nothing (versions are retained)
        required = _handler_actions(change) - set(NOT_CALLED_BY_A_RELEASE.get(change.type, {}))
        for action in sorted(required):
            if not _allowed(statements, action, _targets(change, action, release), resources):
                missing.append((change.logical_id, action))
    assert missing == []


def test_the_list_of_calls_a_release_does_not_make_is_not_stale(release: Release) -> None:
    types = {c.type: c for c in release.changes}
    assert set(NOT_CALLED_BY_A_RELEASE) <= set(types)
    for rtype, actions in NOT_CALLED_BY_A_RELEASE.items():
        listed = _handler_actions(types[rtype])
        assert set(actions) <= listed, (rtype, set(actions) - listed)


def test_the_release_role_may_not_delete_or_create_anything(release_role: dict[str, Any]) -> None:
    actions = {a for s in _statements(release_role) for p in _actions(s) for a in _expand(p)}
    assert not {a for a in actions if re.match(r"[a-z0-9-]+:(delete|create(?!deployment$)|put(?!dashboard$))", a)}


# ---- the endpoints: IAM by tag, as the retraining tags them ----------------------------------------------
def test_the_endpoint_is_reached_by_tag_not_by_name(resources: dict[str, Any]) -> None:
    """Every role that invokes or describes the live endpoint does it for the endpoints tagged with this
    stack's name (endpoint resources support aws:ResourceTag: Service Authorization Reference, SageMaker), so
    no IAM policy names an endpoint and a release changes none."""
    found = 0
    for logical_id, role in of_type(resources, "AWS::IAM::Role").items():
        for statement in _statements(role):
            actions = set(as_list(statement["Action"])) & {"sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"}
            if not actions or logical_id == "RetrainStateMachineRole" or logical_id == "SmokeTestEndpointFunctionRole":
                continue  # the retraining's own: endpoints named sentiment-<stage>-..., the ones it creates
            found += 1
            assert statement["Resource"] == {
                "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/*"
            }, logical_id
            assert statement["Condition"] == {
                "StringEquals": {"aws:ResourceTag/sentiment-api:stack": {"Ref": "AWS::StackName"}}
            }, logical_id
    # the predict function, the jobs worker, the SageMaker execution role, the governance state machine
    assert found == 4


def test_the_retraining_tags_every_endpoint_it_creates_with_the_stack(sam_template: dict[str, Any]) -> None:
    definition = json.loads((REPO_ROOT / "statemachines/retrain.asl.json").read_text("utf-8"))

    def tasks(states: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        for state in states.values():
            yield state
            for branch in state.get("Branches", []):
                yield from tasks(branch["States"])
            if "ItemProcessor" in state:
                yield from tasks(state["ItemProcessor"]["States"])

    creates = [s for s in tasks(definition["States"]) if s.get("Resource", "").endswith("sagemaker:createEndpoint")]
    assert creates
    for state in creates:
        assert {"Key": "sentiment-api:stack", "Value": "${StackName}"} in state["Parameters"]["Tags"], state
    substitutions = sam_template["Resources"]["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["StackName"] == {"Ref": "AWS::StackName"}


def test_governance_reads_the_live_endpoint_at_run_time(
    sam_template: dict[str, Any], resources: dict[str, Any]
) -> None:
    definition = (REPO_ROOT / "statemachines/governance.asl.json").read_text("utf-8")
    states = json.loads(definition)["States"]
    find = states["FindLiveEndpoint"]
    assert find["Resource"] == "arn:aws:states:::aws-sdk:lambda:getFunctionConfiguration"
    assert find["Parameters"] == {"FunctionName": "${PredictFunctionName}", "Qualifier": "live"}
    substitutions = sam_template["Resources"]["GovernanceStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["PredictFunctionName"] == {"Ref": "PredictFunction"}
    assert not any("SageMakerEndpointName" in json.dumps(v) for v in substitutions.values())
    sids = {s["Sid"]: s for s in policy_statements(resources["GovernanceStateMachineRole"])}
    assert sids["FindTheLiveEndpoint"]["Action"] == "lambda:GetFunctionConfiguration"
    assert sids["FindTheLiveEndpoint"]["Resource"] == _function_arn("PredictFunction", "live")


@pytest.mark.parametrize(("mode", "expected"), [("automatic", "ModelReleaseRole.Arn"), ("manual", "")])
def test_the_tests_and_the_local_stack_give_the_release_function_the_same_role(mode: str, expected: str) -> None:
    """local_stack resolves the Fn::If on AutomaticRelease like CloudFormation does."""
    from tests.helpers import TEST_REFS, function_env

    env = function_env("release_model", {"ModelRelease": mode})
    assert env["CLOUDFORMATION_ROLE_ARN"] == TEST_REFS.get(expected, "")
    assert json.loads(env["RELEASE_STACK_POLICY"])["Statement"]
