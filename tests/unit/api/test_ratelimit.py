"""GCRA arithmetic with a controlled clock, and the DynamoDB implementation against moto."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import http_sf
import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    ParamValidationError,
    ReadTimeoutError,
    SSLError,
)
from botocore.stub import Stubber
from moto import mock_aws
from sentiment_api.ratelimit import (
    MAX_KNOWN_CALLERS,
    Decision,
    DynamoDbRateLimiter,
    RateLimiterUnavailable,
    RatePolicy,
    allowed_decision,
    caller_key,
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


def assert_follows_the_reference(limiter: DynamoDbRateLimiter, clock: Clock, steps: list[float]) -> None:
    """Advances ``clock`` by each step and checks one decision per step against ``gcra``."""
    tat = None
    for step in steps:
        clock.advance(step)
        expected, new_tat = gcra(POLICY, tat, round(clock() * 1000))
        tat = new_tat if new_tat is not None else tat
        assert limiter.check("alice") == expected


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
    # a burst, a pause, a trickle, another burst: decisions must equal the reference algorithm's
    assert_follows_the_reference(
        DynamoDbRateLimiter(client, name, POLICY, clock := Clock()),
        clock,
        [0.0] * 205 + [30.0] + [0.0] * 60 + [0.3] * 20 + [120.0] + [0.0] * 210,
    )


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
        "RateLimit": '"per-user";r=199;t=1',
        "RateLimit-Policy": '"per-user";q=200;w=120;qu="request"',
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
        assert len(calls) <= 2 and set(calls) <= {"UpdateItem"}  # none at all once a deny entry answers


def test_ttl_attribute_is_set(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    DynamoDbRateLimiter(client, name, POLICY, clock).check("alice")
    item = client.get_item(TableName=name, Key={"pk": {"S": "alice"}})["Item"]
    assert int(item["expires_at"]["N"]) > clock.now


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("ProvisionedThroughputExceededException", 400, True),
        ("ThrottlingException", 400, True),
        ("RequestLimitExceeded", 400, True),
        ("InternalServerError", 500, True),
        ("ServiceUnavailable", 503, True),
        ("SomethingNew", 503, True),  # any 5xx is the store's trouble
        ("ValidationException", 400, False),  # e.g. a key over 2,048 bytes: never a reason to fail open
        ("ResourceNotFoundException", 400, False),  # the table is missing: misconfigured
        ("AccessDeniedException", 400, False),
    ],
)
def test_store_failures_say_whether_they_are_transient(code: str, status: int, transient: bool) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=status)
    with stubber, pytest.raises(RateLimiterUnavailable) as caught:
        DynamoDbRateLimiter(client, "t", POLICY, Clock()).check("alice")
    assert (caught.value.reason, caught.value.transient) == (code, transient)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectTimeoutError(endpoint_url="https://dynamodb"), True),
        (ReadTimeoutError(endpoint_url="https://dynamodb"), True),
        (SSLError(endpoint_url="https://dynamodb", error="handshake"), True),
        (ConnectionClosedError(endpoint_url="https://dynamodb"), True),
        (ParamValidationError(report="bad key"), False),
    ],
)
def test_transport_failures_say_whether_they_are_transient(error: Exception, transient: bool) -> None:
    class Failing:
        exceptions = boto3.client("dynamodb", region_name="us-east-1").exceptions

        def update_item(self, **_: object) -> None:
            raise error

    with pytest.raises(RateLimiterUnavailable) as caught:
        DynamoDbRateLimiter(Failing(), "t", POLICY, Clock()).check("alice")
    assert caught.value.transient is transient


# ---- the caller's key ---------------------------------------------------------------------------------
def test_caller_key_is_fixed_length_for_any_subject_and_separates_issuers() -> None:
    keys = {caller_key("https://idp-a", sub) for sub in ("alice", "x" * 3000, "é\u0000\ud800", "")}
    assert len(keys) == 4 and {len(k) for k in keys} == {len("caller#") + 64}
    assert caller_key("https://idp-a", "alice") != caller_key("https://idp-b", "alice")
    assert caller_key("https://idp-a", "b\nc") != caller_key("https://idp-a\nb", "c")  # no ambiguous joins


def test_a_3000_byte_subject_is_limited_like_any_other(table: tuple[object, str]) -> None:
    client, name = table
    limiter = DynamoDbRateLimiter(client, name, POLICY, Clock())
    key = caller_key("https://idp", "s" * 3000)
    assert sum(limiter.check(key).allowed for _ in range(205)) == 200


# ---- what an execution environment remembers ---------------------------------------------------------
def count_calls(client: object) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))  # type: ignore[attr-defined]
    return calls


def test_a_rejected_caller_costs_no_writes_until_its_retry_time(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    calls = count_calls(client)
    limiter = DynamoDbRateLimiter(client, name, POLICY, clock)
    for _ in range(200):
        assert limiter.check("alice").allowed
    calls.clear()
    rejections = [limiter.check("alice") for _ in range(100)]
    assert not any(d.allowed for d in rejections)
    assert calls == []  # the TAT this instance set says it all: no write for any of the 100
    assert {d.retry_after_s for d in rejections} == {1}
    clock.advance(0.599)
    assert not limiter.check("alice").allowed and calls == []
    clock.advance(0.001)  # exactly when the reference algorithm lets the next request pass
    assert limiter.check("alice").allowed and calls == ["UpdateItem"]  # busy path first: one write


def test_a_caller_this_instance_knows_costs_one_write_per_request(table: tuple[object, str]) -> None:
    client, name = table
    calls = count_calls(client)
    limiter = DynamoDbRateLimiter(client, name, POLICY, Clock())
    assert all(limiter.check("alice").allowed for _ in range(200))
    assert len(calls) == 200  # the first on the idle path, the other 199 on the busy path first


def test_another_instance_sees_the_rejection_the_store_gives(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    first, second = (DynamoDbRateLimiter(client, name, POLICY, clock) for _ in range(2))
    assert all(first.check("alice").allowed for _ in range(200))
    calls = count_calls(client)
    assert not second.check("alice").allowed and len(calls) == 2  # it knew nothing: idle, then busy
    assert not second.check("alice").allowed and len(calls) == 2  # now it knows


def test_a_stale_memory_is_a_wrong_guess_never_a_wrong_answer(table: tuple[object, str]) -> None:
    client, name = table
    clock = Clock()
    limiter = DynamoDbRateLimiter(client, name, POLICY, clock)
    assert all(limiter.check("alice").allowed for _ in range(5))  # remembers a TAT 3 s ahead
    client.delete_item(TableName=name, Key={"pk": {"S": "alice"}})  # e.g. expired by TTL
    calls = count_calls(client)
    decision = limiter.check("alice")
    assert decision.allowed and decision.remaining == 199 and len(calls) == 2  # busy guess failed, idle passed


def test_the_memory_answers_exactly_like_the_store(table: tuple[object, str]) -> None:
    client, name = table
    assert_follows_the_reference(
        DynamoDbRateLimiter(client, name, POLICY, clock := Clock()),
        clock,
        [0.0] * 230 + [0.1] * 30 + [0.25] * 40 + [5.0] + [0.0] * 20 + [61.0] + [0.0] * 3,
    )


def test_the_memory_is_bounded(table: tuple[object, str]) -> None:
    client, name = table
    limiter = DynamoDbRateLimiter(client, name, RatePolicy(rate_per_minute=1, burst=1), Clock())
    for i in range(MAX_KNOWN_CALLERS + 5):
        limiter._remember(f"k{i}", 0)
    assert len(limiter._known) == MAX_KNOWN_CALLERS and "k0" not in limiter._known


# ---- the header fields ----------------------------------------------------------------------------------
def test_the_fields_are_structured_fields_and_agree_with_retry_after(table: tuple[object, str]) -> None:
    client, name = table
    limiter = DynamoDbRateLimiter(client, name, POLICY, Clock())
    decisions = [limiter.check("alice") for _ in range(201)]
    for decision in (decisions[0], decisions[150], decisions[200]):
        headers = decision.headers(POLICY)
        [(policy_name, policy)] = http_sf.parse(headers["RateLimit-Policy"].encode(), tltype="list")
        [(limit_name, limit)] = http_sf.parse(headers["RateLimit"].encode(), tltype="list")
        assert policy_name == limit_name == "per-user"
        assert policy == {"q": 200, "w": 120, "qu": "request"}
        assert limit["r"] == decision.remaining and limit["t"] == decision.reset_s
    rejected = decisions[200].headers(POLICY)
    assert http_sf.parse(rejected["RateLimit"].encode(), tltype="list")[0][1] == {"r": 0, "t": 1}
    assert rejected["Retry-After"] == "1"
