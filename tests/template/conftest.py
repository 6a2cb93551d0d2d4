"""Fixtures for the template tests: the SAM template as written, and as plain CloudFormation.

The transform runs in-process and offline (tools/transform_template.py): no AWS account, no credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.transform_template import load_template, transform

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
#: the edge's web ACL, a stack of its own in us-east-1 (deploy/edge-waf.yaml)
EDGE_TEMPLATE_PATH = REPO_ROOT / "deploy" / "edge-waf.yaml"

# Parameter values the tests deploy "with" (examples; the endpoint name is deliberately distinctive).
TEST_PARAMETERS: dict[str, str] = {
    "Stage": "prod",
    "JwtIssuerUrl": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TEST",
    "JwtAudiences": "client-one,client-two",
    "SageMakerEndpointName": "sentiment-endpoint-test",
}

# What the pseudo parameters resolve to when the tests evaluate Fn::Sub strings.
PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "sentiment-api-prod",
    "AWS::URLSuffix": "amazonaws.com",
}


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals), short-form intrinsics expanded."""
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def cfn() -> dict[str, Any]:
    """template.yaml after the AWS::Serverless transform: plain CloudFormation."""
    return transform(TEMPLATE_PATH, parameter_overrides=TEST_PARAMETERS)


@pytest.fixture(scope="session")
def resources(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return cfn["Resources"]


@pytest.fixture(scope="session")
def parameter_values(sam_template: dict[str, Any]) -> dict[str, Any]:
    """Defaults of the template, then TEST_PARAMETERS: the values a Ref to a parameter resolves to."""
    values: dict[str, Any] = {
        name: decl["Default"] for name, decl in sam_template["Parameters"].items() if "Default" in decl
    }
    values.update(TEST_PARAMETERS)
    return values
