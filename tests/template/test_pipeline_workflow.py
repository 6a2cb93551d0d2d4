"""The CI/CD workflow (.github/workflows/pipeline.yml) and the role template it deploys with
(deploy/github-oidc.yaml): what runs when, with which permissions and credentials. `make lint` runs
actionlint and zizmor on the workflow; here they must also fail on a broken copy (no vacuous lint)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.template.cfn_helpers import as_list
from tools.transform_template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "pipeline.yml"
OIDC_TEMPLATE = REPO_ROOT / "deploy" / "github-oidc.yaml"
VENV_BIN = REPO_ROOT / ".venv" / "bin"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    return document


def _on(workflow: dict[str, Any]) -> Any:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True


def test_pull_requests_run_the_tests_and_main_deploys_staging_then_prod(workflow: dict[str, Any]) -> None:
    assert _on(workflow) == {"pull_request": None, "push": {"branches": ["main"]}}
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "staging", "prod"}
    assert "if" not in jobs["test"]  # every pull request and push
    assert [s["run"] for s in jobs["test"]["steps"] if "run" in s] == ["bash .ci/run"]
    for name in ("staging", "prod"):
        assert jobs[name]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
        assert jobs[name]["environment"] == name  # the OIDC subject and the approval gate
    assert jobs["staging"]["needs"] == "test" and jobs["prod"]["needs"] == "staging"
    staging = "\n".join(s.get("run", "") for s in jobs["staging"]["steps"])
    assert "deploy/deploy.sh staging" in staging
    assert "deploy/token.sh staging" in staging and "make integration API_URL=" in staging
    assert "::add-mask::$TOKEN" in staging
    prod = "\n".join(s.get("run", "") for s in jobs["prod"]["steps"])
    assert "deploy/deploy.sh prod" in prod and "integration" not in prod
    assert "concurrency" not in workflow  # per job: a run waiting for the prod approval blocks no test
    for name in ("staging", "prod"):  # one deploy per stack at a time, never cut a canary half-way
        assert jobs[name]["concurrency"] == {"group": f"deploy-{name}", "cancel-in-progress": False}
    for name in ("staging", "prod"):  # no AWS credentials while third-party code is installed
        names = [s.get("name", s.get("uses", "")) for s in jobs[name]["steps"]]
        assert names.index("tools (pinned virtualenvs)") < next(
            i for i, n in enumerate(names) if n.startswith("aws-actions/configure-aws-credentials@")
        )


def test_least_permissions_and_oidc_only_where_it_deploys(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert jobs["test"]["permissions"] == {"contents": "read"}
    for name in ("staging", "prod"):
        assert jobs[name]["permissions"] == {"contents": "read", "id-token": "write"}
    text = WORKFLOW.read_text("utf-8")
    assert "secrets." not in text  # no stored AWS keys: OIDC only
    assert "aws-access-key-id" not in text


def test_every_action_is_pinned_by_commit_sha(workflow: dict[str, Any]) -> None:
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def _lint(tool: str, path: Path) -> subprocess.CompletedProcess[str]:
    if tool == "actionlint":
        command = [str(VENV_BIN / "actionlint"), str(path)]
    else:
        command = [str(VENV_BIN / "zizmor"), "--offline", "--persona=pedantic", "--quiet", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.skipif(not (VENV_BIN / "zizmor").exists(), reason="the linters come with .venv (requirements/dev.txt)")
@pytest.mark.parametrize("tool", ["actionlint", "zizmor"])
def test_the_linters_pass_the_workflow_and_catch_a_broken_one(tool: str, tmp_path: Path) -> None:
    assert _lint(tool, WORKFLOW).returncode == 0, _lint(tool, WORKFLOW).stdout
    broken_dir = tmp_path / ".github" / "workflows"
    broken_dir.mkdir(parents=True)
    broken = broken_dir / "pipeline.yml"
    text = WORKFLOW.read_text("utf-8")
    text = text.replace("@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1", "@v7")  # an unpinned action
    text = text.replace("run: bash .ci/run", "run: echo ${{ github.event.pull_request.title }}")  # injection
    broken.write_text(text)
    assert _lint(tool, broken).returncode != 0


# ---- deploy/github-oidc.yaml --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oidc() -> dict[str, Any]:
    return load_template(OIDC_TEMPLATE)


def test_only_the_repositorys_job_of_one_environment_can_assume_its_pipeline_role(oidc: dict[str, Any]) -> None:
    """One stack of this template per environment: the staging job's credentials cannot deploy prod."""
    role = oidc["Resources"]["PipelineRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": {
                "Fn::Sub": "repo:${GitHubRepository}:environment:${Environment}"
            },
        }
    }
    provider = oidc["Resources"]["GitHubOidcProvider"]["Properties"]
    assert provider == {"Url": "https://token.actions.githubusercontent.com", "ClientIdList": ["sts.amazonaws.com"]}


def test_the_pipeline_role_deploys_its_stack_as_the_execution_role_only(oidc: dict[str, Any]) -> None:
    statements: dict[str, Any] = {}
    for policy in oidc["Resources"]["PipelineRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:  # IsStaging: the token for the integration tests
                statement = statement["Fn::If"][1]
            statements[statement["Sid"]] = statement
    deploy = statements["DeployTheStack"]
    assert deploy["Resource"]["Fn::Sub"].endswith(":stack/sentiment-api-${Environment}/*")
    assert "cloudformation:DeleteStack" not in deploy["Action"]
    assert statements["NoImports"] == {
        "Sid": "NoImports",
        "Effect": "Deny",
        "Action": "cloudformation:CreateChangeSet",
        "Resource": "*",
        "Condition": {"Null": {"cloudformation:ImportResourceTypes": "false"}},
    }
    passing = statements["PassTheExecutionRoleToCloudFormationOnly"]
    assert passing["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    allowed = [s for s in statements.values() if s["Effect"] == "Allow"]
    every_action = {a for s in allowed for a in as_list(s["Action"])}
    assert not {a for a in every_action if a.startswith("iam:") and a != "iam:PassRole"}
    assert not any("*" in a for a in every_action)
    # writes only under this stack's prefix of the shared SAM bucket, and its data bucket's code/
    writes = [r["Fn::Sub"] for r in as_list(statements["UploadArtefacts"]["Resource"])]
    assert all(w.endswith(("/sentiment-api-${Environment}/*", "-databucket-*/code/*")) for w in writes), writes
    # the token for the integration tests: the staging pool's client, by the stack's tag
    token = statements["ReadTheStagingMachineClient"]
    assert token["Condition"] == {"StringEquals": {"aws:ResourceTag/sentiment-api:stack": "sentiment-api-staging"}}


def test_the_execution_role_touches_only_the_stacks_roles_in_iam(oidc: dict[str, Any]) -> None:
    role = oidc["Resources"]["CloudFormationExecutionRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    policy = oidc["Resources"]["ExecutionPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in policy:
        iam = [a for a in as_list(statement["Action"]) if a.startswith("iam:")]
        if not iam:
            continue
        for target in as_list(statement["Resource"]):
            text = target["Fn::Sub"] if isinstance(target, dict) else target
            assert re.search(
                r":role/sentiment-api-\$\{Environment\}-\*$|:role/aws-service-role/\*$|:iam::aws:policy/\*$", text
            ), (statement["Sid"], text)
        if "iam:AttachRolePolicy" in iam:  # only the managed policies SAM attaches
            policies = statement["Condition"]["ArnEquals"]["iam:PolicyARN"]
            assert [p["Fn::Sub"].rsplit("/", 1)[1] for p in policies] == [
                "AWSLambdaBasicExecutionRole",
                "AWSXrayWriteOnlyAccess",
                "AWSCodeDeployRoleForLambda",
            ]
    services = next(s for s in policy if s["Sid"] == "TheTemplatesServices")
    assert not any(a.startswith("iam:") for a in services["Action"])
    assert services["Condition"] == {"StringEquals": {"aws:RequestedRegion": {"Ref": "AWS::Region"}}}


CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov comes with .venv-checkov (scripts/bootstrap.sh checkov)")
def test_checkov_passes_the_role_template() -> None:
    result = subprocess.run(
        [str(CHECKOV), "-f", str(OIDC_TEMPLATE), "--quiet", "--compact", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]
    assert report["summary"]["passed"] > 0


def test_staging_is_integration_tested_through_the_edge_when_it_has_one(workflow: dict[str, Any]) -> None:
    """The integration suite calls what clients call: EdgeUrl on a stack with the edge (EdgeWebAclArn), so
    that the CloudFront path (Authorization forwarded, nothing cached) is tested too; ApiBaseUrl otherwise."""
    import jmespath

    (step,) = [s for s in workflow["jobs"]["staging"]["steps"] if s.get("name") == "integration tests against staging"]
    (query,) = re.findall(r'--query "([^"]+)"', step["run"])

    def stack(*outputs: tuple[str, str]) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs]}]}

    api, edge = (
        ("ApiBaseUrl", "https://abc.execute-api.us-east-1.amazonaws.com"),
        ("EdgeUrl", "https://d1.cloudfront.net"),
    )
    assert jmespath.search(query, stack(api, edge)) == edge[1]
    assert jmespath.search(query, stack(edge, api)) == edge[1]
    assert jmespath.search(query, stack(api)) == api[1]
