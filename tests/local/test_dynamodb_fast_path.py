"""The local DynamoDB's fast path (local_stack.dynamodb_fast_path) answers as moto does.

Differential: one server with the fast path, one without, both on this process's moto backend (each on a
table of its own, so they never touch each other's items). Every step sends the same request to both over
HTTP with boto3 and requires the same outcome as botocore parses it: the same result, or the same error code,
message and ``Item``. The steps are randomized (seeded): both of the limiter's writes, every return-value
option, numbers at, below and above each bound, missing items, items moto wrote with a ``tat`` the fast path
cannot evaluate (a fraction) and other requests moto serves in between (PutItem, DeleteItem), so
the two paths interleave on one table as they do in the stack. The tables must end equal, item by item.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from local_stack import template
from local_stack.dynamodb import start_dynamodb
from local_stack.dynamodb_fast_path import SHAPES
from local_stack.lambda_context import REGION
from local_stack.servers import url_of
from sentiment_api.ratelimit import DynamoDbRateLimiter, RatePolicy

IDLE, BUSY = SHAPES  # the two (UpdateExpression, ConditionExpression) pairs
KEYS = [f"caller-{i}" for i in range(4)]


class Server:
    def __init__(self, fast: bool) -> None:
        self.answered_fast = 0
        self.server = start_dynamodb(fast=fast, on_fast_answer=self._count)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = url_of(self.server)
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1}),
        )

    def _count(self) -> None:
        self.answered_fast += 1

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server, str, str]]:
    moto_only, fast = Server(fast=False), Server(fast=True)
    suffix = f"{time.monotonic_ns()}"
    plain_table, fast_table = f"fastpath-moto-{suffix}", f"fastpath-fast-{suffix}"
    template.table("RateLimitTable").create(moto_only.client, plain_table)
    template.table("RateLimitTable").create(fast.client, fast_table)
    try:
        yield moto_only, fast, plain_table, fast_table
    finally:
        for server, table in ((moto_only, plain_table), (fast, fast_table)):
            server.client.delete_table(TableName=table)
            server.stop()


def outcome(client: Any, operation: str, table: str, **params: Any) -> Any:
    """What botocore makes of the answer: the result, or the error's code, message and item."""
    try:
        result = getattr(client, operation)(TableName=table, **params)
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"], exc.response["Error"]["Message"], exc.response.get("Item"))
    result.pop("ResponseMetadata")
    if "ConsumedCapacity" in result:
        result["ConsumedCapacity"]["TableName"] = "<table>"
    return ("ok", result)


def number(rng: random.Random, around: int) -> str:
    return str(around + rng.choice([-601, -600, -1, 0, 1, 599, 600, 12_000, rng.randint(-20_000, 20_000)]))


def limiter_write(rng: random.Random, now: int) -> dict[str, Any]:
    update, condition = IDLE if rng.random() < 0.4 else BUSY
    if (update, condition) == IDLE:
        values = {":fresh": number(rng, now + 600), ":now": number(rng, now), ":exp": number(rng, now // 1000)}
    else:
        values = {":t": "600", ":now": number(rng, now), ":limit": number(rng, now + 119_400), ":exp": str(now)}
    params: dict[str, Any] = {
        "Key": {"pk": {"S": rng.choice(KEYS)}},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": {name: {"N": value} for name, value in values.items()},
    }
    if rng.random() < 0.7:
        params["ReturnValues"] = rng.choice(["NONE", "UPDATED_NEW"])
    if rng.random() < 0.7:
        params["ReturnValuesOnConditionCheckFailure"] = rng.choice(["NONE", "ALL_OLD"])
    return params


def other_request(rng: random.Random, now: int) -> tuple[str, dict[str, Any]]:
    """What moto serves on the same table in between: items the fast path must read, or must leave to moto."""
    key = {"pk": {"S": rng.choice(KEYS)}}
    tat = rng.choice([{"N": str(now)}, {"N": f"{now}.5"}, None])  # (moto fails on an S tat with a 500)
    if tat is None or rng.random() < 0.2:
        return "delete_item", {"Key": key}
    return "put_item", {"Item": {**key, "tat": tat, "note": {"S": "kept"}}}


def test_the_fast_path_answers_as_moto_does(servers: tuple[Server, Server, str, str]) -> None:
    moto_only, fast, plain_table, fast_table = servers
    rng = random.Random(20261203)
    now = 1_800_000_000_000
    for _ in range(1500):
        now += rng.choice([0, 1, 300, 600, 5_000])
        if rng.random() < 0.1:
            operation, params = other_request(rng, now)
        else:
            operation, params = "update_item", limiter_write(rng, now)
        expected = outcome(moto_only.client, operation, plain_table, **params)
        assert outcome(fast.client, operation, fast_table, **params) == expected, params
    assert moto_only.answered_fast == 0
    assert 1000 < fast.answered_fast < 1500  # most writes were the fast path's; the unreadable tats were moto's
    assert scan(moto_only.client, plain_table) == scan(fast.client, fast_table)


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=table)["Items"], key=lambda item: item["pk"]["S"])


@pytest.mark.parametrize(
    "change",
    [
        {"TableName": "no-such-table"},
        {"Key": {"pk": {"N": "1"}}},
        {"Key": {"pk": {"S": "a"}, "sk": {"S": "b"}}},
        {"Key": {"pk": {"S": ""}}},
        {"Key": {"pk": {"S": "x" * 3000}}},
        {"ExpressionAttributeValues": {":t": {"N": "600"}, ":now": {"N": "1"}, ":limit": {"N": "2"}}},
        {"ExpressionAttributeValues": {":t": {"S": "x"}, ":now": {"N": "1"}, ":limit": {"N": "2"}, ":exp": {"N": "1"}}},
        {"ReturnValues": "ALL_NEW"},
        {"ReturnValues": "BOGUS"},
        {"ReturnValuesOnConditionCheckFailure": "BOGUS"},
        {"ConditionExpression": "tat > :now AND tat <= :limit AND tat > :t"},
        {"ExpressionAttributeNames": {"#t": "tat"}},
    ],
)
def test_requests_it_does_not_know_are_moto_s(servers: tuple[Server, Server, str, str], change: dict[str, Any]) -> None:
    """Anything off the two shapes, an invalid one included, is answered by moto: same error, same result."""
    moto_only, fast, plain_table, fast_table = servers
    params = {
        "Key": {"pk": {"S": "caller"}},
        "UpdateExpression": BUSY[0],
        "ConditionExpression": BUSY[1],
        "ExpressionAttributeValues": {":t": {"N": "600"}, ":now": {"N": "1"}, ":limit": {"N": "2"}, ":exp": {"N": "1"}},
    }
    params.update(change)
    name = params.pop("TableName", None)
    expected = outcome(moto_only.client, "update_item", name or plain_table, **params)
    assert outcome(fast.client, "update_item", name or fast_table, **params) == expected
    assert fast.answered_fast == 0


def test_its_answers_carry_a_valid_checksum(servers: tuple[Server, Server, str, str]) -> None:
    """botocore checks DynamoDB's x-amz-crc32 against the body; the fast path's answers carry a right one."""
    _, fast, _, fast_table = servers
    captured: list[Any] = []
    fast.client.meta.events.register(
        "after-call.dynamodb.UpdateItem", lambda http_response, **_: captured.append(http_response)
    )
    for now in (1000, 1000):  # the first passes, the second fails its condition
        outcome(
            fast.client,
            "update_item",
            fast_table,
            Key={"pk": {"S": "checksum"}},
            UpdateExpression=IDLE[0],
            ConditionExpression=IDLE[1],
            ExpressionAttributeValues={":fresh": {"N": "1600"}, ":now": {"N": str(now)}, ":exp": {"N": "61"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert fast.answered_fast == 2
    assert [r.status_code for r in captured] == [200, 400]
    for response in captured:
        assert int(response.headers["x-amz-crc32"]) == zlib.crc32(response.content)


def test_the_limiter_s_writes_all_take_the_fast_path(servers: tuple[Server, Server, str, str]) -> None:
    """The limiter's real code against the stack's DynamoDB: every write it makes is one of the fast path's
    shapes (a change to its expressions would silently fall back to moto, slower; this catches it)."""
    _, fast, _, fast_table = servers
    writes: list[str] = []
    fast.client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes.append("write"))
    clock = [1_800_000_000.0]
    limiter = DynamoDbRateLimiter(fast.client, fast_table, RatePolicy(100, 200), clock=lambda: clock[0])
    allowed = Counter[bool]()
    for step in range(900):
        clock[0] += 0.01
        allowed[limiter.check(f"user-{step % 3}").allowed] += 1
    clock[0] += 600  # every bucket full again: the idle path
    allowed[limiter.check("user-0").allowed] += 1
    assert allowed[False] > 0 and allowed[True] > 600  # both outcomes, both writes
    assert len(writes) == fast.answered_fast
