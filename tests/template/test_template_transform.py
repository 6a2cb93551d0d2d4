"""tools/transform_template.py: offline, credential-free, deterministic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from tests.template.conftest import TEMPLATE_PATH
from tools import transform_template as tt


def test_transform_makes_no_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"AWS API call during transform: {args[1:2]}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    cfn = tt.transform(TEMPLATE_PATH)
    assert "Transform" not in cfn
    assert not [r for r in cfn["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]


def test_local_paths_become_s3_placeholders(cfn: dict[str, Any]) -> None:
    code = cfn["Resources"]["PredictFunction"]["Properties"]["Code"]
    assert code == {"S3Bucket": tt.PLACEHOLDER_BUCKET, "S3Key": "PredictFunction.zip"}
    layers = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layers[0]["Properties"]["Content"]["S3Bucket"] == tt.PLACEHOLDER_BUCKET


def test_parameter_values_merge_defaults_examples_and_overrides() -> None:
    template = tt.load_template(TEMPLATE_PATH)
    values = tt.parameter_values(template, {"JwtAudiences": "a, b", "Stage": "prod"})
    assert values["JwtAudiences"] == ["a", "b"]
    assert values["Stage"] == "prod"
    assert values["RequiredScope"] == "sentiment-api/predict"
    assert values["SageMakerEndpointName"] == tt.EXAMPLE_PARAMETERS["SageMakerEndpointName"]


def test_transform_is_deterministic() -> None:
    assert tt.transform(TEMPLATE_PATH) == tt.transform(TEMPLATE_PATH)


def test_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "cfn.json"
    assert tt.main(["--template", str(TEMPLATE_PATH), "--output", str(out), "-p", "Stage=prod"]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["Resources"]["PredictFunction"]["Type"] == "AWS::Lambda::Function"


def test_offline_policy_loader_knows_sam_policies() -> None:
    policies = tt.OfflineManagedPolicyLoader().load()
    assert policies["AWSLambdaBasicExecutionRole"].endswith(":policy/service-role/AWSLambdaBasicExecutionRole")
    assert tt.OfflineManagedPolicyLoader("aws-cn").load()["AWSXRayDaemonWriteAccess"].startswith("arn:aws-cn:")
