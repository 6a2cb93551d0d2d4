"""Section 6: the rate-limit table, and that the code and the local stack use the same key schema."""

from __future__ import annotations

from typing import Any

from tests.helpers import FUNCTION_ENV


def table(resources: dict[str, Any]) -> dict[str, Any]:
    """The rate-limit table; the only other table is the bulk jobs' (tests/template/test_template_jobs.py)."""
    tables = {lid for lid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert tables == {"RateLimitTable", "JobsTable"}
    return dict(resources["RateLimitTable"])


def test_rate_limit_table_shape(resources: dict[str, Any]) -> None:
    props = table(resources)["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_rate_limit_table_is_on_demand_encrypted_and_recoverable(resources: dict[str, Any]) -> None:
    props = table(resources)["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_function_gets_the_table_and_policy_from_the_template(resources: dict[str, Any]) -> None:
    env = resources["PredictFunction"]["Properties"]["Environment"]["Variables"]
    assert env["RATE_LIMIT_TABLE_NAME"] == {"Ref": "RateLimitTable"}
    assert env["RATE_LIMIT_PER_MINUTE"] == {"Ref": "RateLimitPerMinute"}
    assert env["RATE_LIMIT_BURST"] == {"Ref": "RateLimitBurst"}
    assert env["RATE_LIMIT_FAIL_MODE"] == {"Ref": "RateLimitFailMode"}


def test_spec_defaults(cfn: dict[str, Any]) -> None:
    params = cfn["Parameters"]
    assert (params["RateLimitPerMinute"]["Default"], params["RateLimitBurst"]["Default"]) == (100, 200)
    assert params["RateLimitFailMode"]["Default"] == "open"


def test_tests_configure_every_variable_the_template_sets(resources: dict[str, Any], cfn: dict[str, Any]) -> None:
    """tests/helpers.FUNCTION_ENV mirrors the deployed configuration (required names at least)."""
    env = resources["PredictFunction"]["Properties"]["Environment"]["Variables"]
    for required in (
        "SAGEMAKER_ENDPOINT_NAME",
        "RATE_LIMIT_TABLE_NAME",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "STAGE",
    ):
        assert required in env
        assert required in FUNCTION_ENV
