"""Transforms template.yaml (SAM) into plain CloudFormation, offline and without AWS credentials.

The AWS::Serverless-2016-10-31 transform runs in-process through samtranslator, the library CloudFormation
itself uses. Two things normally need AWS and are replaced here:

* local code paths (CodeUri, ContentUri, DefinitionUri) are what `sam package` would upload; they become
  ``s3://<placeholder-bucket>/<LogicalId>.zip`` URIs;
* the managed-policy map (policy name -> ARN) that samtranslator would list from IAM comes from a fixed
  table of the AWS-managed policies (``OfflineManagedPolicyLoader``).

Usage::

    python tools/transform_template.py [--template template.yaml] [--output transformed.json]
                                       [--parameter Key=Value ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.translator import Translator

REGION = "us-east-1"
PLACEHOLDER_BUCKET = "sam-artifacts-placeholder"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

# Values for the parameters that have no default, so that the transform (and anything resolving
# parameters afterwards) sees a complete, realistic set. All are examples, not real resources.
EXAMPLE_PARAMETERS: dict[str, Any] = {
    "Stage": "dev",
    "JwtIssuerUrl": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
    "JwtAudiences": "example-app-client-id",
    "SageMakerEndpointName": "sentiment-endpoint-example",
}

# AWS-managed policies SAM may reference by name (function Policies, Tracing, VPC, event sources).
_AWS_MANAGED_POLICIES = (
    "service-role/AWSLambdaBasicExecutionRole",
    "service-role/AWSLambdaVPCAccessExecutionRole",
    "service-role/AWSLambdaRole",
    "service-role/AWSLambdaDynamoDBExecutionRole",
    "service-role/AWSLambdaSQSQueueExecutionRole",
    "service-role/AWSLambdaKinesisExecutionRole",
    "AWSXRayDaemonWriteAccess",
    "AWSXrayWriteOnlyAccess",
    "CloudWatchLambdaInsightsExecutionRolePolicy",
)

# (resource type, property) pairs that hold a local path `sam package` would upload.
_ARTIFACT_PROPERTIES = (
    ("AWS::Serverless::Function", "CodeUri"),
    ("AWS::Serverless::LayerVersion", "ContentUri"),
    ("AWS::Serverless::Api", "DefinitionUri"),
    ("AWS::Serverless::HttpApi", "DefinitionUri"),
    ("AWS::Serverless::StateMachine", "DefinitionUri"),
)


class OfflineManagedPolicyLoader(ManagedPolicyLoader):
    """A ManagedPolicyLoader that never calls IAM: it answers from a fixed name -> ARN table."""

    def __init__(self, partition: str = "aws") -> None:
        super().__init__(iam_client=None)  # never used: load() answers from the table
        self._policy_map = {
            name.rsplit("/", 1)[-1]: f"arn:{partition}:iam::aws:policy/{name}" for name in _AWS_MANAGED_POLICIES
        }

    def load(self) -> dict[str, str]:
        return dict(self._policy_map or {})


def load_template(template_path: str | Path) -> dict[str, Any]:
    """Loads a CloudFormation/SAM YAML or JSON template, short-form intrinsics (!Ref, !Sub...) included."""
    text = Path(template_path).read_text(encoding="utf-8")
    decoded = cfn_yaml.loads(text, str(template_path))
    # cfn-lint returns its own dict/str subclasses (with line marks); turn them into plain Python objects.
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def replace_local_artifacts(template: dict[str, Any], bucket: str = PLACEHOLDER_BUCKET) -> dict[str, Any]:
    """Returns a copy of the template with every local code/definition path replaced by an S3 URI."""
    result = copy.deepcopy(template)
    for logical_id, resource in (result.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        props = resource.get("Properties") or {}
        for rtype, prop in _ARTIFACT_PROPERTIES:
            if resource.get("Type") == rtype and _is_local(props.get(prop)):
                props[prop] = f"s3://{bucket}/{logical_id}.zip"
    for section in (result.get("Globals") or {}).values():
        if isinstance(section, dict):
            for prop in ("CodeUri", "ContentUri", "DefinitionUri"):
                if _is_local(section.get(prop)):
                    section[prop] = f"s3://{bucket}/globals-{prop}.zip"
    return result


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Template defaults, then EXAMPLE_PARAMETERS, then overrides, as strings; CommaDelimitedList values as lists."""
    declared = template.get("Parameters") or {}
    values: dict[str, Any] = {k: v["Default"] for k, v in declared.items() if "Default" in v}
    values.update({k: v for k, v in EXAMPLE_PARAMETERS.items() if k in declared})
    values.update(overrides or {})
    for name, value in list(values.items()):
        if declared.get(name, {}).get("Type") == "CommaDelimitedList" and isinstance(value, str):
            values[name] = [item.strip() for item in value.split(",")]
        elif not isinstance(value, list):
            values[name] = str(value)  # CloudFormation hands every parameter over as a string (Number too)
    return values


def transform(
    template_path: str | Path = DEFAULT_TEMPLATE,
    parameter_overrides: Mapping[str, Any] | None = None,
    region: str = REGION,
) -> dict[str, Any]:
    """Loads the SAM template and returns the equivalent plain CloudFormation template (a dict).

    ``parameter_overrides`` (name -> value) are handed to the transform like `sam deploy
    --parameter-overrides`; parameters without a value fall back to the template default, then to
    EXAMPLE_PARAMETERS. The returned template still declares its Parameters, so it can be deployed or
    linted like any other.
    """
    sam_template = replace_local_artifacts(load_template(template_path))
    session = boto3.Session(region_name=region)
    loader = OfflineManagedPolicyLoader(partition=session.get_partition_for_region(region))
    translator = Translator(None, Parser(), boto_session=session)
    cfn: dict[str, Any] = translator.translate(
        sam_template,
        parameter_values=parameter_values(sam_template, parameter_overrides),
        get_managed_policy_map=loader.load,
    )
    # Round-trip through JSON: plain dicts/lists/str only, and proof the result is serialisable.
    result: dict[str, Any] = json.loads(json.dumps(cfn))
    return result


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--parameter expects Key=Value, got {pair!r}")
        overrides[name] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--template", default=str(DEFAULT_TEMPLATE), help="SAM template (default: %(default)s)")
    parser.add_argument("--output", "-o", default="-", help="output file, '-' for stdout (default)")
    parser.add_argument(
        "--parameter", "-p", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    parser.add_argument("--region", default=REGION, help="region for the transform (default: %(default)s)")
    args = parser.parse_args(argv)
    cfn = transform(args.template, _parse_overrides(args.parameter), region=args.region)
    text = json.dumps(cfn, indent=2, sort_keys=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
