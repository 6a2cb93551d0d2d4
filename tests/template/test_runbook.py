"""runbook.md and deploy/README.md against the template: every resource name, output, alarm, log group,
dashboard widget and AWS CLI command they mention must exist, so the docs cannot drift from the stack.

Conventions the docs follow (and this test relies on): `$STACK` (or `<stack>`) stands for the stack name;
outputs are read with `out <OutputKey>` or named as `<OutputKey>` output; dashboard widgets are written
"widget **<title>**"."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import xform_name

from tests.template.cfn_helpers import resolve_sub
from tests.template.conftest import EDGE_TEMPLATE_PATH, PSEUDO_PARAMETERS, REPO_ROOT
from tools.transform_template import load_template

DOCS = [REPO_ROOT / "runbook.md", REPO_ROOT / "deploy" / "README.md"]
STACK = "$STACK"
NAME_PROPERTIES = (
    "AlarmName",
    "DashboardName",
    "FunctionName",
    "LogGroupName",
    "TopicName",
    "AliasName",
    "ConfigurationName",
)
CLI_SERVICES = {"deploy": "codedeploy", "s3api": "s3"}  # CLI name -> botocore name, where they differ
GLOBAL_OPTIONS = {
    "--query",
    "--output",
    "--region",
    "--profile",
    "--no-cli-pager",
    "--debug",
    "--endpoint-url",
    "--no-paginate",
    "--cli-input-json",
}
# Words in backticks that are neither resources nor metrics: AWS vocabulary the docs use.
VOCABULARY = {
    "CanaryVerdicts",
    "ColdStart",
    "FunctionVersion",
    "ExecutedVersion",
    "ErrorCode",
    "AppSpecContent",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
    "AdditionalVersionWeights",
    "RoutingConfig",
    "InService",
    "UsePreviousTemplate",
    "UsePreviousValue",
    "VersionDescription",
    "ListExecutions",
    "S3Prefix",
    "ClientRequestToken",
    "StackPolicyDuringUpdateBody",
    "UpdateStack",
    "CreateDeployment",
    "UpdateFunctionConfiguration",
    "PublishVersion",
    "UpdateDeploymentGroup",
    "DeploymentPreference",
    "AutoPublishAlias",
    "EndpointStatus",
    "StateReason",
    "ThrottledRequests",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "ClientError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ModelLatency",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "Invocations",
    "Latency",
    "Count",
    "Errors",
    "Throttles",
    "Canary10Percent5Minutes",
}


def _docs() -> Iterator[tuple[Path, str]]:
    for path in DOCS:
        text = path.read_text(encoding="utf-8").replace("<stack>", STACK)
        yield path, text


@pytest.fixture(scope="module")
def names(cfn: dict[str, Any]) -> set[str]:
    """Every physical name the template gives, with the stack name written as $STACK."""
    found = set()
    for resource in cfn["Resources"].values():
        props = resource.get("Properties") or {}
        candidates = [props.get(key) for key in NAME_PROPERTIES]
        if resource["Type"] == "AWS::Logs::QueryDefinition":
            candidates.append(props.get("Name"))
        for value in candidates:
            if isinstance(value, str) or (isinstance(value, dict) and "Fn::Sub" in value):
                found.add(resolve_sub(value, {**PSEUDO_PARAMETERS, "AWS::StackName": STACK}))
    return found


@pytest.fixture(scope="module")
def dashboard_titles(cfn: dict[str, Any]) -> set[str]:
    body = cfn["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    parsed = json.loads(re.sub(r"\$\{[^}!]+\}", "x", body))
    return {w["properties"]["title"] for w in parsed["widgets"] if "title" in w["properties"]}


# ---- physical names ----------------------------------------------------------------------------------------
_NAME = re.compile(r"(?:/aws/[a-z0-9]+/|CodeDeployHook_)?\$STACK(?:[-/][A-Za-z0-9_-]*)*")


@pytest.mark.parametrize(("path", "text"), list(_docs()), ids=[p.name for p in DOCS])
def test_every_stack_derived_name_exists(path: Path, text: str, names: set[str]) -> None:
    mentioned = {m.group(0).rstrip("/") for m in _NAME.finditer(text)} - {STACK}
    assert mentioned, f"{path.name} mentions no stack resource"
    for name in sorted(mentioned):
        if name.endswith("-"):  # a prefix (describe-alarms --alarm-name-prefix "$STACK-slo-")
            assert any(n.startswith(name) for n in names), f"{path.name}: no name starts with {name}"
        else:
            assert name in names, f"{path.name}: {name} is not a name in template.yaml"


# ---- outputs, logical ids, parameters ----------------------------------------------------------------------
@pytest.mark.parametrize(("path", "text"), list(_docs()), ids=[p.name for p in DOCS])
def test_every_output_read_exists(path: Path, text: str, cfn: dict[str, Any]) -> None:
    read = set(re.findall(r"(?:\$\(|^)out (\w+)", text, flags=re.M)) | set(re.findall(r"OutputKey=='(\w+)'", text))
    read |= set(re.findall(r"`(\w+)` outputs?", text))
    for group in re.findall(r"\(((?:`\w+`,? ?)+) outputs?\)", text):  # (`A`, `B` outputs)
        read |= set(re.findall(r"`(\w+)`", group))
    read |= set(re.findall(r"<([A-Z]\w+)>", text))  # <PredictFunctionName> placeholders
    assert read
    # the docs also read the outputs of the edge stack (deploy/edge-waf.yaml, us-east-1)
    outputs = {**cfn["Outputs"], **load_template(EDGE_TEMPLATE_PATH)["Outputs"]}
    for key in sorted(read):
        assert key in outputs, f"{path.name}: output {key} does not exist"


def _metric_names(cfn: dict[str, Any]) -> set[str]:
    text = json.dumps(cfn)
    return (
        set(re.findall(r'"MetricName": "(\w+)"', text))
        | set(re.findall(r'MetricName=\\\\?"(\w+)', text))
        | {
            "Requests",
            "Latency",
            "4xx",
            "5xx",
            "ModelLatency",
            "RateLimited",
            "Errors",
            "Predictions",
            "RateLimiterErrors",
            "ColdStart",
            "CanaryVerdicts",
        }
    )


def _state_machine_names() -> set[str]:
    """The states and error names of the state machines, and the exceptions the functions raise: what an
    execution's outcome and a notification name."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("States", {}))
            if isinstance(node.get("Error"), str):
                names.add(node["Error"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for definition in (REPO_ROOT / "statemachines").glob("*.asl.json"):
        walk(json.loads(definition.read_text()))
    for source in [*(REPO_ROOT / "functions").rglob("*.py"), *(REPO_ROOT / "layers").rglob("*.py")]:
        names.update(re.findall(r"^class (\w+)\((?:\w*Exception|\w*Error|\w+)\):", source.read_text(), re.M))
    return names


def _side_template_names() -> set[str]:
    """deploy/github-oidc.yaml (the CI/CD roles) and deploy/edge-waf.yaml (the edge's web ACL), which the docs
    describe too."""
    names: set[str] = set()
    for path in (REPO_ROOT / "deploy" / "github-oidc.yaml", EDGE_TEMPLATE_PATH):
        side = load_template(path)
        names |= set(side["Resources"]) | set(side["Outputs"]) | set(side["Parameters"])
    return names


@pytest.mark.parametrize(("path", "text"), list(_docs()), ids=[p.name for p in DOCS])
def test_every_camel_case_identifier_is_known(
    path: Path, text: str, cfn: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    known = (
        set(cfn["Resources"])
        | set(sam_template["Resources"])
        | set(cfn["Outputs"])
        | set(cfn["Parameters"])
        | _metric_names(cfn)
        | _state_machine_names()
        | VOCABULARY
        | _side_template_names()
    )
    for token in sorted(set(re.findall(r"`([A-Z][a-z0-9]+(?:[A-Z0-9][A-Za-z0-9]*)+)`", text))):
        assert token in known, f"{path.name}: `{token}` is neither a template name, a metric nor known vocabulary"


# ---- dashboard widgets ----------------------------------------------------------------------------------
def test_every_widget_named_exists(dashboard_titles: set[str]) -> None:
    text = (REPO_ROOT / "runbook.md").read_text(encoding="utf-8")
    named = set(re.findall(r"[Ww]idgets? \*\*(.+?)\*\*", text)) | set(re.findall(r"row \*\*(.+?)\*\*", text))
    assert len(named) >= 8
    for title in sorted(named):
        assert title in dashboard_titles or any(t.startswith(title) for t in dashboard_titles), title


# ---- AWS CLI commands ------------------------------------------------------------------------------------------
def _commands(text: str) -> Iterator[str]:
    code = "\n".join(re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S))
    code += "\n" + "\n".join(re.findall(r"`(aws [^`]+)`", text))
    code = code.replace("\\\n", " ")
    for line in code.splitlines():
        for match in re.finditer(r"\baws\s+([a-z0-9-]+)\s+([a-z0-9-]+)(.*)", line):
            yield match.group(0)


def _split(command: str) -> tuple[str, str, set[str]]:
    _, service, operation, *_ = command.split(None, 3)
    rest = command.split(None, 3)[3] if len(command.split(None, 3)) > 3 else ""
    rest = re.sub(r"'[^']*'", "''", rest)  # single-quoted values (queries, JSON) may contain anything
    while re.search(r"\([^()]*\)", rest):  # drop $( ... ) and $(( ... )): they hold other commands
        rest = re.sub(r"\$?\([^()]*\)", "", rest)
    rest = re.split(r"[)|;]|&&", rest)[0]  # the command ends at an unmatched ")" or a pipe
    return service, operation, set(re.findall(r"(?:^|\s)(--[a-z0-9-]+)", rest))


def _all_commands() -> list[tuple[str, str]]:
    """The CLI commands of the docs and of the deploy scripts."""
    found = [(path.name, command) for path, text in _docs() for command in _commands(text)]
    for script in sorted((REPO_ROOT / "deploy").glob("*.sh")):
        text = "```bash\n" + script.read_text(encoding="utf-8") + "```"
        found += [(script.name, command) for command in _commands(text)]
    return found


#: awscli's own high-level commands (customisations, not in botocore's service models) and their options.
HIGH_LEVEL_COMMANDS = {
    ("s3", "sync"): {"--only-show-errors", "--delete", "--exclude", "--include", "--dryrun"},
    ("s3", "cp"): {"--only-show-errors", "--sse", "--dryrun"},
    # the CLI's own command (create or update through a change set)
    ("cloudformation", "deploy"): {
        "--template-file",
        "--stack-name",
        "--capabilities",
        "--parameter-overrides",
        "--no-fail-on-empty-changeset",
    },
}


@pytest.mark.parametrize(("doc", "command"), _all_commands())
def test_aws_cli_commands_exist_with_these_options(doc: str, command: str) -> None:
    service, operation, options = _split(command)
    if (service, operation) in HIGH_LEVEL_COMMANDS:
        assert options - GLOBAL_OPTIONS <= HIGH_LEVEL_COMMANDS[(service, operation)], f"{doc}: {command}"
        return
    client = boto3.client(CLI_SERVICES.get(service, service), region_name="us-east-1")
    model = client.meta.service_model
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    assert operation in operations, f"{doc}: aws {service} {operation} does not exist"
    shape = model.operation_model(operations[operation]).input_shape
    members = {f"--{xform_name(m, '-')}" for m in (shape.members if shape else {})}
    members |= {f"--no-{m[2:]}" for m in members}
    for option in sorted(options - GLOBAL_OPTIONS):
        assert option in members, f"{doc}: aws {service} {operation} has no option {option}"


def test_the_docs_use_the_cli_a_lot() -> None:
    assert len(_all_commands()) >= 25


def test_scripts_the_docs_name_exist() -> None:
    for _, text in _docs():
        for script in set(re.findall(r"deploy/[a-z_]+\.sh", text)):
            path = REPO_ROOT / script
            assert path.is_file(), script
            assert path.stat().st_mode & 0o111, f"{script} is not executable"


def test_runbook_covers_the_required_incidents() -> None:
    headings = re.findall(r"^## (.+)$", (REPO_ROOT / "runbook.md").read_text(encoding="utf-8"), flags=re.M)
    for incident in (
        "High 5xx rate",
        "High latency",
        "SageMaker endpoint unavailable or throttling",
        "Rate limiter store failing",
        "Authorizer rejecting everyone (IdP key rotation)",
        "Bad canary",
        "Bad model after retraining",
        "Bulk job failed",
    ):
        assert incident in headings, incident
    text = (REPO_ROOT / "runbook.md").read_text(encoding="utf-8")
    for section in re.split(r"^## ", text, flags=re.M)[2:-1]:
        assert "**Diagnose**" in section or "**Diagnose:**" in section or "Diagnose" in section, section[:40]
        assert re.search(r"[Rr]oll(?:ed)? back|rollback", section), section[:40]
