"""cfn-lint (in-process) on the SAM template and on its CloudFormation transform; outputs and sections."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from tests.template.conftest import TEMPLATE_PATH


def _findings(text: str) -> list[str]:
    """cfn-lint errors and warnings (informational findings are not counted)."""
    matches = lint(text, config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"]


def test_cfn_lint_sam_template() -> None:
    assert _findings(TEMPLATE_PATH.read_text(encoding="utf-8")) == []


def test_cfn_lint_transformed_template(cfn: dict[str, Any]) -> None:
    assert _findings(json.dumps(cfn)) == []


def test_cfn_lint_catches_a_broken_template(cfn: dict[str, Any]) -> None:
    """Guard against a lint call that silently checks nothing."""
    broken = json.loads(json.dumps(cfn))
    broken["Resources"]["PredictFunction"]["Properties"]["Runtime"] = "python2.7"
    assert any(f.startswith("E") for f in _findings(json.dumps(broken)))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("PredictUrl", {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/predict"}),
        ("PredictFunctionArn", {"Fn::GetAtt": ["PredictFunction", "Arn"]}),
        ("PredictFunctionAliasArn", {"Ref": "PredictFunctionAliaslive"}),
        ("PredictFunctionLogGroupName", {"Ref": "PredictFunctionLogGroup"}),
        ("ApiAccessLogGroupName", {"Ref": "ApiAccessLogGroup"}),
        ("ApiId", {"Ref": "Api"}),
    ],
)
def test_outputs(cfn: dict[str, Any], output: str, expected: Any) -> None:
    assert cfn["Outputs"][output]["Value"] == expected
    assert cfn["Outputs"][output].get("Description")


def test_stage_parameter(cfn: dict[str, Any]) -> None:
    assert cfn["Parameters"]["Stage"]["AllowedValues"] == ["dev", "prod"]


def test_template_is_organised_in_commented_sections() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for section in (
        "Parameters",
        "Globals",
        "API",
        "Functions & layers",
        "Deployment safety",
        "Data",
        "ML pipeline",
        "Observability",
        "Outputs",
    ):
        assert f". {section}" in text, f"no '# n. {section}' section comment"
