"""GCRA arithmetic with a controlled clock, and the DynamoDB implementation against moto."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from sentiment_api.ratelimit import (
    Decision,
    DynamoDbRateLimiter,
    RateLimiterUnavailable,
    RatePolicy,
    allowed_decision,
    rejected_decision,
)

POLICY = RatePolicy(rate_per_minute=100, burst=200)


def gcra(policy: RatePolicy, tat: int | None, now: int) -> tuple[Decision, int | None]:
    """The pure algorithm, the reference the DynamoDB implementation is checked against (times in integer
    ms): the decision and the new TAT to store (None when rejected: nothing changes)."""
    new_tat = max(tat if tat is not None else now, now) + policy.interval_ms
    if new_tat - now > policy.tolerance_ms:
        assert tat is not None
        return rejected_decision(policy, tat, now), None
    return allowed_decision(policy, new_tat, now), new_tat


class Clock:
    def __init__(self, now: float = 1_800_000_000.123) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_policy_numbers() -> None:
    assert POLICY.interval_ms == 600
    assert POLICY.tolerance_ms == 120_000


def test_pure_gcra_burst_then_refill() -> None:
    clock, tat = Clock(), None
    remaining = []
    for _ in range(200):
        decision, tat = gcra(POLICY, tat, round(clock() * 1000))
        assert decision.allowed
        remaining.append(decision.remaining)
    assert remaining[0] == 199 and remaining[-1] == 0
    rejected, unchanged = gcra(POLICY, tat, round(clock() * 1000))
    assert not rejected.allowed and unchanged is None
    assert rejected.retry_after_s == 1  # 0.6 s, rounded up to whole seconds
    clock.advance(0.6)
    decision, tat = gcra(POLICY, tat, round(clock() * 1000))
    assert decision.allowed and decision.remaining == 0


@pytest.fixture
def table() -> Iterator[tuple[object, str]]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="rate-limits",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client, "rate-limits"


def test_dynamodb_matches_the_pure_algorithm_step_by_step(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    limiter = DynamoDbRateLimiter(client, name, POLICY, clock)
    tat = None
    # a burst, a pause, a trickle, another burst: decisions must equal the reference algorithm's
    steps = [0.0] * 205 + [30.0] + [0.0] * 60 + [0.3] * 20 + [120.0] + [0.0] * 210
    for step in steps:
        clock.advance(step)
        expected, new_tat = gcra(POLICY, tat, round(clock() * 1000))
        tat = new_tat if new_tat is not None else tat
        assert limiter.check("alice") == expected


def test_burst_200_then_429_with_retry_after(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    limiter = DynamoDbRateLimiter(client, name, POLICY, clock)
    results = [limiter.check("alice") for _ in range(250)]
    assert sum(d.allowed for d in results) == 200
    rejected = results[200]
    assert not rejected.allowed and rejected.retry_after_s == 1 and rejected.remaining == 0
    assert rejected.headers(POLICY)["Retry-After"] == "1"
    assert results[0].headers(POLICY) == {
        "RateLimit-Limit": "200",
        "RateLimit-Remaining": "199",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": "200;w=120;rate=100/min",
    }
    # after 60 s idle, exactly 100 more are allowed (100/min refill)
    clock.advance(60)
    assert sum(limiter.check("alice").allowed for _ in range(150)) == 100
    # another user is unaffected
    assert limiter.check("bob").allowed


def test_at_most_two_writes_and_no_reads(table: tuple[object, str]) -> None:
    client, name = table
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    limiter = DynamoDbRateLimiter(client, name, POLICY, Clock())
    for _ in range(205):
        calls.clear()
        limiter.check("alice")
        assert calls and len(calls) <= 2 and set(calls) == {"UpdateItem"}


def test_ttl_attribute_is_set(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    DynamoDbRateLimiter(client, name, POLICY, clock).check("alice")
    item = client.get_item(TableName=name, Key={"pk": {"S": "alice"}})["Item"]
    assert int(item["expires_at"]["N"]) > clock.now


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "InternalServerError",
        "ResourceNotFoundException",
    ],
)
def test_store_failures_raise_unavailable(code: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=400)
    with stubber, pytest.raises(RateLimiterUnavailable):
        DynamoDbRateLimiter(client, "t", POLICY, Clock()).check("alice")
