"""The rate limiter's two conditional writes, answered on moto's own table state without moto's expression
engine: the local DynamoDB's hot path.

Every request to the local API makes one conditional ``UpdateItem`` (bench/throughput.py). moto answers it
in about 4.4 ms of CPU, three quarters of it in code that rebuilds the same result for every request: the
update and condition expressions parsed and validated again, the item deep-copied twice, the answer
serialized through botocore's output model (py-spy, this module's commit). That made moto the second
largest cost of the local request path, after the model itself.

``fast_path(app)`` wraps moto's WSGI app. It answers a request itself only when the request is exactly one
of the two writes below (:data:`SHAPES`), on a table moto already holds, with values it can evaluate
exactly (integer numbers, a string key); anything else, including any request that would make moto answer
an error other than ``ConditionalCheckFailedException``, goes to moto unchanged. The state is moto's: the
fast path reads and writes the items of moto's own table (``Table.items``), so a ``GetItem``, ``Scan`` or
any other request served by moto sees exactly what the fast path wrote, and the two can interleave freely.

Fidelity is checked against moto itself, not against this code's idea of DynamoDB:
tests/unit/test_dynamodb_fast_path.py sends the same randomized requests (both shapes, every return-value
option, missing items, items without ``tat``, values at, below and above each bound) to a moto server with
and without the fast path and requires the same status, the same parsed body and a valid ``x-amz-crc32``.
Written by hand because there is no smaller library that evaluates DynamoDB expressions; it is kept to two
fixed expressions so that its semantics fit in :func:`_evaluate`.
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TARGET = "DynamoDB_20120810.UpdateItem"
CONDITION_FAILED = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,37})")  # what DynamoDB's N holds exactly, without a fraction
_MAX_KEY_BYTES = 1024  # DynamoDB allows 2,048 for a partition key; longer ones are left to moto's checks


@dataclass(frozen=True)
class Shape:
    """One conditional write: ``SET tat = <new>, expires_at = :exp`` if ``<condition>``."""

    values: frozenset[str]  # the expression attribute values it uses, exactly
    increment: bool  # True: tat = tat + :t; False: tat = :fresh


#: (UpdateExpression, ConditionExpression) -> shape: the per-user limiter's writes
#: (layers/api/sentiment_api/ratelimit.py, DynamoDbRateLimiter._idle and _busy).
SHAPES: dict[tuple[str, str], Shape] = {
    ("SET tat = :fresh, expires_at = :exp", "attribute_not_exists(tat) OR tat <= :now"): Shape(
        frozenset({":fresh", ":now", ":exp"}), increment=False
    ),
    ("SET tat = tat + :t, expires_at = :exp", "tat > :now AND tat <= :limit"): Shape(
        frozenset({":t", ":now", ":limit", ":exp"}), increment=True
    ),
}
_FIELDS = frozenset(
    {
        "TableName",
        "Key",
        "UpdateExpression",
        "ConditionExpression",
        "ExpressionAttributeValues",
        "ReturnValues",
        "ReturnValuesOnConditionCheckFailure",
    }
)
_RETURN_VALUES = frozenset({"NONE", "UPDATED_NEW"})
_ON_FAILURE = frozenset({"NONE", "ALL_OLD"})


class _NotMine(Exception):
    """The request is not one the fast path answers: moto does."""


def fast_path(app: WSGIApplication, served: Callable[[], None] | None = None) -> WSGIApplication:
    """``app`` (moto's DynamoDB) with the limiter's writes answered here (see the module docstring).
    ``served`` is called after each request the fast path answered (tests count them)."""

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("HTTP_X_AMZ_TARGET") != TARGET
            or not length.isdigit()
        ):
            return app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        try:
            status, answer = _answer(environ, body)
        except _NotMine:
            environ["wsgi.input"] = io.BytesIO(body)
            return app(environ, start_response)
        payload = json.dumps(answer).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(payload))),
                ("x-amz-crc32", str(zlib.crc32(payload))),
            ],
        )
        if served is not None:
            served()
        return [payload]

    return application


def _answer(environ: WSGIEnvironment, body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        request = json.loads(body)
    except ValueError:
        raise _NotMine from None
    if not isinstance(request, dict) or not _FIELDS.issuperset(request):
        raise _NotMine
    shape = SHAPES.get((request.get("UpdateExpression"), request.get("ConditionExpression")))  # type: ignore[arg-type]
    return_values = request.get("ReturnValues", "NONE")
    on_failure = request.get("ReturnValuesOnConditionCheckFailure", "NONE")
    if shape is None or return_values not in _RETURN_VALUES or on_failure not in _ON_FAILURE:
        raise _NotMine
    values = _integers(request.get("ExpressionAttributeValues"), shape.values)
    table = _table(environ, request.get("TableName"))
    key = _key(table, request.get("Key"))
    item = table.items.get(key)
    if item is not None and _stored_tat(item) is _UNREADABLE:
        raise _NotMine
    return _evaluate(table, key, item, shape, values, return_values, on_failure)


_UNREADABLE = object()


def _stored_tat(item: Any) -> Any:
    """The item's ``tat`` as an int, None when it has none, _UNREADABLE when moto must judge it."""
    tat = item.attrs.get("tat")
    if tat is None:
        return None
    if tat.type != "N" or not isinstance(tat.value, str) or not _INTEGER.fullmatch(tat.value):
        return _UNREADABLE
    return int(tat.value)


def _evaluate(
    table: Any, key: Any, item: Any, shape: Shape, values: dict[str, int], return_values: str, on_failure: str
) -> tuple[str, dict[str, Any]]:
    """DynamoDB's semantics for the two shapes, answered as moto answers them (the differential test)."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    tat = None if item is None else _stored_tat(item)
    now = values[":now"]
    if shape.increment:  # tat > :now AND tat <= :limit
        passed = tat is not None and now < tat <= values[":limit"]
    else:  # attribute_not_exists(tat) OR tat <= :now
        passed = tat is None or tat <= now
    if not passed:
        failure: dict[str, Any] = {"__type": CONDITION_FAILED, "message": "The conditional request failed"}
        if on_failure == "ALL_OLD" and item is not None:
            failure["Item"] = item.to_json()["Attributes"]
        return "400 Bad Request", failure
    new_tat = tat + values[":t"] if shape.increment else values[":fresh"]  # type: ignore[operator]
    updates = {"tat": {"N": str(new_tat)}, "expires_at": {"N": str(values[":exp"])}}
    old = {} if item is None else item.to_json()["Attributes"]
    if item is None:
        table.items[key] = item = Item(key, None, {table.hash_key_attr: {"S": key.value}})
    for name, value in updates.items():
        item.attrs[name] = DynamoType(value)
    answer: dict[str, Any] = {"ConsumedCapacity": {"TableName": table.name, "CapacityUnits": 0.5}}
    if return_values == "UPDATED_NEW":  # as moto: the attributes whose value changed (a new item's key too)
        new = item.to_json()["Attributes"]
        answer["Attributes"] = {name: value for name, value in new.items() if old.get(name) != value}
    return "200 OK", answer


def _integers(raw: Any, names: frozenset[str]) -> dict[str, int]:
    if not isinstance(raw, dict) or raw.keys() != names:
        raise _NotMine
    values = {}
    for name, value in raw.items():
        number = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(number, str) or not _INTEGER.fullmatch(number):
            raise _NotMine
        values[name] = int(number)
    return values


def _table(environ: WSGIEnvironment, name: Any) -> Any:
    """moto's table for this request's account and region, found as moto finds them (BaseResponse:
    get_region_from_url, get_current_account); a case this does not follow goes to moto."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.models import dynamodb_backends
    from moto.iam.models import get_account_id_from

    host = environ.get("HTTP_HOST", "")
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if (
        not isinstance(name, str)
        or "amazonaws.com" in host
        or "MOTO_ACCOUNT_ID" in os.environ
        or "HTTP_X_MOTO_ACCOUNT_ID" in environ
        or "AWS4" not in authorization
    ):
        raise _NotMine
    agent = BaseResponse.region_from_useragent_regex.search(environ.get("HTTP_USER_AGENT", ""))
    try:
        region = agent.group(1) if agent else authorization.split(",")[0].split("/")[2]
    except IndexError:
        raise _NotMine from None
    access_key = BaseResponse.access_key_regex.search(authorization)
    account = get_account_id_from(access_key.group(1) if access_key else "AKIAEXAMPLE")
    backend = dynamodb_backends[account][region]
    table = backend.tables.get(name)
    if table is None or table.range_key_attr is not None or table.hash_key_type != "S":
        raise _NotMine
    if getattr(table, "stream_shard", None) is not None:  # moto records stream events: leave it to moto
        raise _NotMine
    return table


def _key(table: Any, raw: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not isinstance(raw, dict) or raw.keys() != {table.hash_key_attr}:
        raise _NotMine
    value = raw[table.hash_key_attr]
    if not isinstance(value, dict) or value.keys() != {"S"} or not isinstance(value["S"], str):
        raise _NotMine
    try:
        size = len(value["S"].encode())
    except UnicodeEncodeError:  # a lone surrogate: moto's (and DynamoDB's) validation answers it
        raise _NotMine from None
    if not 0 < size <= _MAX_KEY_BYTES:
        raise _NotMine
    return DynamoType(value)
