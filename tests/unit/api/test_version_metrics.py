"""The per-version request metrics the canary rule reads: the predict handler publishes Requests, Latency,
4xx and 5xx per Stage (as before) and per Stage + FunctionVersion, in the same EMF blob."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from canary import alarms as canary_alarms
from canary.settings import HookSettings
from moto import mock_aws
from sentiment_api import observability

from tests.helpers import FUNCTION_ENV, FakeContext, create_rate_limit_table, load_function
from tests.unit.canary_hooks.conftest import HOOK_ENV, emf_blobs


@pytest.fixture(scope="module")
def predict() -> Iterator[ModuleType]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_limit_table(dynamodb, FUNCTION_ENV["RATE_LIMIT_TABLE_NAME"])
        yield load_function("predict")


def request_blob(out: str) -> dict[str, Any]:
    (blob,) = [b for b in emf_blobs(out) if "Requests" in b]
    return blob


def test_request_metrics_are_published_per_version(
    predict: ModuleType, event: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")  # what Lambda sets for version 7
    response = predict.lambda_handler(event("predict-invalid-json"), FakeContext())
    assert response["statusCode"] == 400

    blob = request_blob(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert ["Stage", "FunctionVersion"] in directive["Dimensions"]  # the canary comparison
    assert any(ds[0] == "Stage" and "FunctionVersion" not in ds for ds in directive["Dimensions"])  # unchanged
    assert (blob["Stage"], blob["FunctionVersion"]) == ("test", "7")
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"Requests", "Latency", "4xx", "5xx"} <= names
    assert (blob["Requests"], blob["4xx"], blob["5xx"]) == ([1.0], [1.0], [0.0])


@pytest.fixture
def settings() -> HookSettings:
    return HookSettings.from_env(HOOK_ENV)


def test_the_hooks_read_exactly_that_dimension_set(settings: Any) -> None:
    assert canary_alarms.version_dimensions(settings, "7") == {"Stage": "prod", "FunctionVersion": "7"}


def test_outside_lambda_no_version_dimension_is_added(
    predict: ModuleType, event: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_VERSION", raising=False)
    predict.lambda_handler(event("predict-invalid-json"), FakeContext())
    blob = request_blob(capsys.readouterr().out)
    assert "FunctionVersion" not in blob
    assert len(blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) == 1


def test_the_version_set_does_not_leak_into_the_next_invocation(
    predict: ModuleType, event: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    predict.lambda_handler(event("predict-invalid-json"), FakeContext())
    predict.lambda_handler(event("predict-oversize"), FakeContext())
    blobs = [b for b in emf_blobs(capsys.readouterr().out) if "Requests" in b]
    version_sets = [b["_aws"]["CloudWatchMetrics"][0]["Dimensions"].count(["Stage", "FunctionVersion"]) for b in blobs]
    assert version_sets == [1, 1]
    assert json.dumps(observability.function_version()) == '"7"'
