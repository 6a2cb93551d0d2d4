"""cfn-lint (in-process) on the SAM template and on its CloudFormation transform; outputs and sections."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from tests.template.conftest import TEMPLATE_PATH


def _findings(text: str, ignored: Mapping[str, set[str]] | None = None) -> list[str]:
    """cfn-lint errors and warnings (informational findings are not counted), minus ``ignored`` (logical id ->
    rule ids)."""
    matches = lint(text, config=ManualArgs(regions=["us-east-1"]))
    ignored = ignored or {}
    return [
        f"{m.rule.id} {m.message} (line {m.linenumber})"
        for m in matches
        if m.rule.id[0] in "EW"
        and not (len(m.path) > 1 and m.path[0] == "Resources" and m.rule.id in ignored.get(str(m.path[1]), set()))
    ]


def _ignores_of_generated_resources(sam_template: dict[str, Any], cfn: dict[str, Any]) -> dict[str, set[str]]:
    """A SAM resource's cfn-lint ignore_checks, applied to the resources SAM generates for it (those of the
    transformed template that the SAM template does not declare and whose logical id starts with its own), as
    cfn-lint itself does when it lints the SAM template. Declared resources keep only their own ignores."""
    declared = sam_template["Resources"]
    ignores = {
        logical_id: set(resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", []))
        for logical_id, resource in declared.items()
        if resource["Type"].startswith("AWS::Serverless::")
    }
    return {
        generated: checks
        for source, checks in ignores.items()
        if checks
        for generated in cfn["Resources"]
        if generated not in declared and generated.startswith(source)
    }


def test_cfn_lint_sam_template() -> None:
    assert _findings(TEMPLATE_PATH.read_text(encoding="utf-8")) == []


def test_cfn_lint_transformed_template(sam_template: dict[str, Any], cfn: dict[str, Any]) -> None:
    assert _findings(json.dumps(cfn), _ignores_of_generated_resources(sam_template, cfn)) == []


def test_only_the_predict_functions_generated_resources_skip_a_lint_rule(
    sam_template: dict[str, Any], cfn: dict[str, Any]
) -> None:
    """The ignore above is narrow: W3011 for what SAM generates from PredictFunction (its UpdateReplacePolicy
    keeps replaced versions; see template.yaml), nothing else."""
    ignored = _ignores_of_generated_resources(sam_template, cfn)
    assert ignored, "nothing generated from PredictFunction: the ignore is stale"
    assert all(checks == {"W3011"} for checks in ignored.values()), ignored
    assert all(logical_id.startswith("PredictFunction") for logical_id in ignored), ignored


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
    assert cfn["Parameters"]["Stage"]["AllowedValues"] == ["dev", "staging", "prod"]


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
