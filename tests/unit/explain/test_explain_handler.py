"""GET /explain end to end inside the process: events/explain.json in, API Gateway responses out; the
report in moto S3, the rate limiter on moto DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from sentiment_api.schemas import ERROR_SCHEMA, compile_schema

from tests.helpers import FUNCTION_ENV, FakeContext, create_rate_limit_table, load_function
from tests.unit.explain.test_explain_reports import make_report

validate_error_body = compile_schema(ERROR_SCHEMA)

BUCKET = "sentiment-reports-handler"
PREFIX = "governance/"


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_limit_table(dynamodb, FUNCTION_ENV["RATE_LIMIT_TABLE_NAME"])
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield s3


@pytest.fixture(scope="module")
def explain(aws: Any) -> ModuleType:
    return load_function("explain", {"REPORTS_URI": f"s3://{BUCKET}/{PREFIX}"})


@pytest.fixture
def empty_bucket(aws: Any) -> Iterator[Any]:
    for item in aws.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        aws.delete_object(Bucket=BUCKET, Key=item["Key"])
    yield aws


def call(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = module.lambda_handler(event, FakeContext())
    headers = {k.lower(): v for k, v in response["headers"].items()}
    return response["statusCode"], headers, json.loads(response["body"])


def test_no_report_yet_is_a_404_with_the_standard_error_body(
    explain: ModuleType, empty_bucket: Any, event: Any
) -> None:
    status, headers, body = call(explain, event("explain"))
    assert status == 404
    validate_error_body(body)
    assert body["error"]["code"] == "NOT_FOUND"
    assert "governance" in body["error"]["message"]
    assert body["error"]["correlation_id"] == headers["x-correlation-id"] == "event-explain-0001"
    assert headers["ratelimit-policy"].startswith('"per-user";q=200;')  # the rate-limit middleware ran


def test_latest_report_summary(explain: ModuleType, empty_bucket: Any, event: Any) -> None:
    endpoint = FUNCTION_ENV["SAGEMAKER_ENDPOINT_NAME"]
    for date, version in (("2026-01-05", "model-old"), ("2026-01-12", "model-new")):
        empty_bucket.put_object(
            Bucket=BUCKET, Key=f"{PREFIX}{date}/analysis.json", Body=json.dumps(make_report(date, version, endpoint))
        )
    status, headers, body = call(explain, event("explain"))
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert headers["cache-control"] == "private, max-age=60"
    assert (body["model_version"], body["report_date"]) == ("model-new", "2026-01-12")
    assert body["report_covers_live_endpoint"] is True
    assert body["report"] == {"key": "2026-01-12/analysis.json", "markdown_key": "2026-01-12/report.md"}
    assert BUCKET not in json.dumps(body) and "s3://" not in json.dumps(body)
    assert set(body["top_tokens"]) == {"negative", "neutral", "positive"}
    assert isinstance(body["bias"]["passed"], bool) and body["bias"]["checks"]


def test_unreadable_report_is_a_502_with_the_public_message(
    explain: ModuleType, empty_bucket: Any, event: Any, caplog: pytest.LogCaptureFixture
) -> None:
    empty_bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-01-05/analysis.json", Body=b"{not json")
    status, _, body = call(explain, event("explain"))
    assert status == 502
    validate_error_body(body)
    assert body["error"]["code"] == "REPORT_UNREADABLE"
    assert "json" not in body["error"]["message"].lower() and "s3://" not in body["error"]["message"]
    failure = next(r for r in caplog.records if getattr(r, "error_code", None) == "REPORT_UNREADABLE")
    assert "not JSON" in failure.detail  # type: ignore[attr-defined]  # the detail is in the log, with the id


def test_a_nan_in_the_report_never_leaves_as_invalid_json(explain: ModuleType, empty_bucket: Any, event: Any) -> None:
    report = make_report("2026-01-05", "model-nan", FUNCTION_ENV["SAGEMAKER_ENDPOINT_NAME"])
    for result in report["bias"].values():
        for metric in result["metrics"]:
            metric["value"] = float("nan")
    empty_bucket.put_object(Bucket=BUCKET, Key=f"{PREFIX}2026-01-05/analysis.json", Body=json.dumps(report))
    response = explain.lambda_handler(event("explain"), FakeContext())
    assert response["statusCode"] == 200 and "NaN" not in response["body"]
    body = json.loads(response["body"], parse_constant=lambda name: pytest.fail(f"{name} in the answer"))
    assert body["bias"]["passed"] is False


def test_s3_down_is_a_503_with_retry_after(
    explain: ModuleType, empty_bucket: Any, event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"no access to {BUCKET}"}}, "ListObjectsV2")

    monkeypatch.setattr(explain.reports._client, "get_paginator", denied)
    status, headers, body = call(explain, event("explain"))
    assert status == 503 and headers["retry-after"] == "5"
    validate_error_body(body)
    assert body["error"]["code"] == "REPORTS_UNAVAILABLE" and BUCKET not in body["error"]["message"]


def test_missing_subject_is_rejected(explain: ModuleType, empty_bucket: Any, event: Any) -> None:
    request = event("explain")
    del request["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    status, _, body = call(explain, request)
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"


def test_other_methods_are_not_routed(explain: ModuleType, event: Any) -> None:
    request = event("explain")
    request["requestContext"]["http"]["method"] = "POST"
    request["routeKey"] = "POST /explain"
    status, _, body = call(explain, request)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
