"""The local DynamoDB's fast path (local_stack.dynamodb_fast_path) answers as moto does.

Differential: one server with the fast path, one without, both on this process's moto backend (each on a
table of its own, so they never touch each other's items). Every step sends the same request to both over
HTTP with boto3 and requires the same outcome as botocore parses it: the same result, or the same error code,
message and ``Item``, and the same headers. The steps are randomized (seeded): both of the limiter's writes,
every return-value option, numbers at, below and above each bound, missing items, items moto wrote that the
fast path must leave to moto (a fractional or zero-padded ``tat``, binary or extra attributes) and other
requests moto serves in between (PutItem, DeleteItem), so the two paths interleave on one table as they do
in the stack. The tables must end equal, item by item. Then, over raw HTTP, each request an adversarial
review found moto treats differently from the plain one (RAW_CASES) must get moto's answer, and the fast
path must not answer it.
"""

from __future__ import annotations

import gc
import http.client
import json
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
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


AUTHORIZATION = (  # what moto reads of a SigV4 header (it checks no signature): the key, the region
    "AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
)


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
        self.responses: list[Any] = []
        self.client.meta.events.register(
            "after-call.dynamodb", lambda http_response, **_: self.responses.append(http_response)
        )

    def _count(self) -> None:
        self.answered_fast += 1

    def raw(self, body: bytes, headers: dict[str, str], method: str = "POST", path: str = "/") -> tuple[int, Any]:
        """One request as sent, not as botocore would send it: (status, parsed body or its first bytes)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.server_port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            parsed = json.loads(data)
        except ValueError:
            return response.status, data[:100]
        return response.status, anonymous(parsed)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[Server, Server]]:
    # earlier tests' servers finalised by a later gc could close a descriptor number these servers were given
    # since (tests/local/test_dynamodb_standin.py): collect first, and start two servers for the module
    gc.collect()
    moto_only, fast = Server(fast=False), Server(fast=True)
    try:
        yield moto_only, fast
    finally:
        moto_only.stop()
        fast.stop()


@pytest.fixture
def servers(both: tuple[Server, Server]) -> Iterator[tuple[Server, Server, str, str]]:
    """The two servers, each with a table of its own (moto's backend is this process's: one state)."""
    moto_only, fast = both
    moto_only.answered_fast = fast.answered_fast = 0
    suffix = f"{time.monotonic_ns()}"
    plain_table, fast_table = f"fastpath-moto-{suffix}", f"fastpath-fast-{suffix}"
    template.table("RateLimitTable").create(moto_only.client, plain_table)
    template.table("RateLimitTable").create(fast.client, fast_table)
    moto_only.responses.clear()
    fast.responses.clear()
    try:
        yield moto_only, fast, plain_table, fast_table
    finally:
        moto_only.client.delete_table(TableName=plain_table)
        fast.client.delete_table(TableName=fast_table)


def outcome(client: Any, operation: str, table: str, **params: Any) -> Any:
    """What botocore makes of the answer: the result, or the error's code, message and item."""
    try:
        result = getattr(client, operation)(TableName=table, **params)
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"], exc.response["Error"]["Message"], exc.response.get("Item"))
    result.pop("ResponseMetadata")
    return ("ok", anonymous(result))


def anonymous(answer: Any) -> Any:
    """``answer`` without the table's name (each server has its own table)."""
    if isinstance(answer, dict) and "ConsumedCapacity" in answer:
        answer["ConsumedCapacity"]["TableName"] = "<table>"
    return answer


def number(rng: random.Random, around: int) -> str:
    return str(around + rng.choice([-601, -600, -1, 0, 1, 599, 600, 12_000, rng.randint(-20_000, 20_000)]))


def limiter_write(rng: random.Random, now: int) -> dict[str, Any]:
    update, condition = IDLE if rng.random() < 0.4 else BUSY
    if (update, condition) == IDLE:
        values = {":fresh": number(rng, now + 600), ":now": number(rng, now), ":exp": number(rng, now // 1000)}
    else:
        values = {":t": "600", ":now": number(rng, now), ":limit": number(rng, now + 119_400), ":exp": str(now)}
    if rng.random() < 0.05:  # moto stores a value it copies as sent: "-0" stays "-0"
        values[":exp" if rng.random() < 0.5 else next(iter(values))] = "-0"
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
    tat = rng.choice(
        [{"N": str(now)}, {"N": f"{now}.5"}, {"N": f"0{now}"}, {"N": "1e3"}, None]
    )  # (an S tat: moto 500s)
    if tat is None or rng.random() < 0.2:
        return "delete_item", {"Key": key}
    extra = rng.choice([{}, {"note": {"S": "kept"}}, {"blob": {"B": b"\x00\xffhello"}}, {"expires_at": {"S": "x"}}])
    return "put_item", {"Item": {**key, "tat": tat, **extra}}


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
        assert head(fast.responses[-1]) == head(moto_only.responses[-1]), params
    assert moto_only.answered_fast == 0
    assert 600 < fast.answered_fast < 1350  # both paths well exercised: items moto wrote are often moto's to judge
    assert scan(moto_only.client, plain_table) == scan(fast.client, fast_table)


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    return sorted(
        client.scan(TableName=table)["Items"], key=lambda item: json.dumps(item, sort_keys=True, default=repr)
    )


#: headers whose value is the answer's own (a date, a request id, a checksum of a body naming its own table)
PER_ANSWER = {"date", "x-amzn-requestid", "x-amz-crc32", "content-length"}


def head(response: Any) -> tuple[int, dict[str, str], list[int]]:
    """The status, the headers (per-answer values left out) and the request id's length."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    fixed = {name: value for name, value in headers.items() if name not in PER_ANSWER}
    return response.status_code, fixed | {"names": ",".join(sorted(headers))}, [len(headers["x-amzn-requestid"])]


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


def idle_body(table: str, key: str = "k", **extra: Any) -> dict[str, Any]:
    values = {":fresh": {"N": "1600"}, ":now": {"N": "1000"}, ":exp": {"N": "61"}}
    body = {"TableName": table, "Key": {"pk": {"S": key}}, "UpdateExpression": IDLE[0]}
    return body | {"ConditionExpression": IDLE[1], "ExpressionAttributeValues": values} | extra


BOTOCORE_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
    "Authorization": AUTHORIZATION,
    "User-Agent": "test",
}


def key_named(attribute: str) -> Callable[[Any, str], None]:
    def create(client: Any, table: str) -> None:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": attribute, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    return create


def index_typing_tat_as_string(client: Any, table: str) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "tat", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-tat",
                "KeySchema": [{"AttributeName": "tat", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def with_item(**attributes: Any) -> Callable[[Any, str], None]:
    def put(client: Any, table: str) -> None:
        client.put_item(TableName=table, Item={"pk": {"S": "k"}, **attributes})

    return put


# What an adversarial review found moto treats differently from the plain request (each case: the request's
# change, or the table or item it meets). Moto's answer, whatever it is, must be the answer, and the fast path
# must not answer any of them.
RAW_CASES: dict[str, dict[str, Any]] = {
    "another path": {"path": "/x"},
    "an Action in the query": {"path": "/?Action=GetItem"},
    "a region in the query": {"path": "/?r=.eu-west-1.amazonaws.com"},
    "an Action in the body read as a query": {"body": lambda t: idle_body(t, key="a&Action=DeleteItem&b")},
    "rest-json": {"headers": {"Content-Type": "application/json"}},
    "a form": {"headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    "a charset": {"headers": {"Content-Type": "application/x-amz-json-1.0; charset=utf-8"}},
    "no content type": {"headers": {"Content-Type": None}},
    "gzip declared, plain body": {"headers": {"Content-Encoding": "gzip"}},
    "an Origin": {"headers": {"Origin": "https://example.com"}},
    "a UTF-8 BOM": {"encode": lambda text: b"\xef\xbb\xbf" + text.encode()},
    "UTF-16": {"encode": lambda text: text.encode("utf-16")},
    "ReturnValues a list": {"body": lambda t: idle_body(t, ReturnValues=["NONE"])},
    "ReturnValuesOnConditionCheckFailure a map": {
        "body": lambda t: idle_body(t, ReturnValuesOnConditionCheckFailure={"a": 1})
    },
    "UpdateExpression a list": {"body": lambda t: idle_body(t, UpdateExpression=[IDLE[0]])},
    "a region that does not exist": {"headers": {"Authorization": AUTHORIZATION.replace("us-east-1", "zz-bogus-9")}},
    "a key attribute named tat": {
        "create": key_named("tat"),
        "body": lambda t: idle_body(t) | {"Key": {"tat": {"S": "k"}}},
    },
    "a key attribute named expires_at": {
        "create": key_named("expires_at"),
        "body": lambda t: idle_body(t) | {"Key": {"expires_at": {"S": "k"}}},
    },
    "an index typing tat as a string": {"create": index_typing_tat_as_string},
    "an item near the size limit": {"setup": with_item(tat={"N": "5"}, d={"S": "x" * 404_980})},
    "an item with a binary value, ALL_OLD": {
        "setup": with_item(tat={"N": "999999"}, blob={"B": b"\x00\xffhello"}),
        "body": lambda t: idle_body(t, ReturnValuesOnConditionCheckFailure="ALL_OLD"),
    },
    "nesting json cannot parse": {"raw": lambda t: b'{"TableName": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    "not a POST": {"method": "PUT"},
}


@pytest.mark.parametrize("case", RAW_CASES, ids=list(RAW_CASES))
def test_what_moto_treats_differently_is_moto_s(both: tuple[Server, Server], case: str) -> None:
    spec = RAW_CASES[case]
    moto_only, fast = both
    fast.answered_fast = 0
    suffix = f"{time.monotonic_ns()}"
    answers, tables = [], []
    for server, table in ((moto_only, f"raw-moto-{suffix}"), (fast, f"raw-fast-{suffix}")):
        spec.get("create", template.table("RateLimitTable").create)(server.client, table)
        if "setup" in spec:
            spec["setup"](server.client, table)
        if "raw" in spec:
            body = spec["raw"](table)
        else:
            body = spec.get("encode", str.encode)(json.dumps(spec.get("body", idle_body)(table)))
        headers = {name: value for name, value in (BOTOCORE_HEADERS | spec.get("headers", {})).items() if value}
        answers.append(server.raw(body, headers, spec.get("method", "POST"), spec.get("path", "/")))
        tables.append(scan(server.client, table))
        server.client.delete_table(TableName=table)
    assert answers[1] == answers[0]
    assert tables[1] == tables[0]
    assert fast.answered_fast == 0


def test_a_plain_request_is_the_fast_path_s(both: tuple[Server, Server]) -> None:
    """The raw cases' control: the same request without the change is answered by the fast path, as moto would."""
    moto_only, fast = both
    fast.answered_fast = 0
    suffix = f"{time.monotonic_ns()}"
    answers = []
    for server, table in ((moto_only, f"raw-moto-{suffix}"), (fast, f"raw-fast-{suffix}")):
        template.table("RateLimitTable").create(server.client, table)
        answers.append(server.raw(json.dumps(idle_body(table)).encode(), BOTOCORE_HEADERS))
        server.client.delete_table(TableName=table)
    assert answers[1] == answers[0] == (200, {"ConsumedCapacity": {"TableName": "<table>", "CapacityUnits": 0.5}})
    assert fast.answered_fast == 1


def test_its_answers_carry_a_valid_checksum(servers: tuple[Server, Server, str, str]) -> None:
    """botocore checks DynamoDB's x-amz-crc32 against the body; the fast path's answers carry a right one."""
    _, fast, _, fast_table = servers
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
    assert [r.status_code for r in fast.responses] == [200, 400]
    for response in fast.responses:
        assert int(response.headers["x-amz-crc32"]) == zlib.crc32(response.content)


def test_the_limiter_s_writes_all_take_the_fast_path(servers: tuple[Server, Server, str, str]) -> None:
    """The limiter's real code against the stack's DynamoDB: every write it makes is one of the fast path's
    shapes (a change to its expressions would silently fall back to moto, slower; this catches it)."""
    _, fast, _, fast_table = servers
    clock = [1_800_000_000.0]
    limiter = DynamoDbRateLimiter(fast.client, fast_table, RatePolicy(100, 200), clock=lambda: clock[0])
    allowed = Counter[bool]()
    for step in range(900):
        clock[0] += 0.01
        allowed[limiter.check(f"user-{step % 3}").allowed] += 1
    clock[0] += 600  # every bucket full again: the idle path
    allowed[limiter.check("user-0").allowed] += 1
    assert allowed[False] > 0 and allowed[True] > 600  # both outcomes, both writes
    assert len(fast.responses) == fast.answered_fast  # every answer the limiter got (only writes since the table)
