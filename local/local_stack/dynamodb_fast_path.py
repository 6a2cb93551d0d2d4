"""The rate limiter's two conditional writes, answered on moto's own table state without moto's expression
engine: the local DynamoDB's hot path.

Every request to the local API makes one conditional ``UpdateItem`` (bench/throughput.py). moto answers it
in about 4.4 ms of CPU, three quarters of it in code that rebuilds the same result for every request: the
update and condition expressions parsed and validated again, the item deep-copied twice, the answer
serialized through botocore's output model (py-spy). That made moto the second largest cost of the local
request path, after the model itself; this path answers in about 0.9 ms.

``fast_path(app)`` wraps moto's WSGI app. It answers a request itself only when every detail moto would act
on is one it reproduces: the request is exactly one of the two writes in :data:`SHAPES`, sent as botocore
sends it (``POST /``, no query, ``application/x-amz-json-1.0``, UTF-8, no encoding, SigV4), with integer
numbers, on a table moto holds whose items look like the limiter's (a string key, ``tat`` and
``expires_at`` numbers, nothing else, no index or stream that types or records them). Anything else goes to
moto unchanged, and so does any request that raises while it is examined: nothing is changed before the
examination ends (``_plan`` only reads). The state is moto's: the fast path reads and writes the items of
moto's own table, so a ``GetItem``, ``Scan`` or any request served by moto sees exactly what it wrote.

Fidelity is checked against moto itself, not against this code's idea of DynamoDB:
tests/local/test_dynamodb_fast_path.py sends the same randomized requests (both shapes, every return-value
option, missing items, items moto wrote that the fast path must leave to it, values at, below and above each
bound) to a moto server with and without the fast path and requires the same status, headers, parsed body
and final table; and it sends the requests an adversarial review found moto treats differently (paths,
queries, content types, encodings, key names, item sizes) and requires moto's answer. Written by hand
because no library evaluates DynamoDB expressions faster than moto; it is kept to two fixed expressions so
that its semantics fit in :meth:`_Plan.apply`.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import string
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TARGET = "DynamoDB_20120810.UpdateItem"
CONTENT_TYPE = "application/x-amz-json-1.0"
CONDITION_FAILED = "ConditionalCheckFailedException"
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,37})")  # what DynamoDB's N holds exactly, without a fraction
_MAX_KEY_BYTES = 1024  # DynamoDB allows 2,048 for a partition key; longer ones are left to moto's checks
_WRITTEN = ("tat", "expires_at")  # the attributes both shapes set
_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Shape:
    """One conditional write: ``SET tat = <new>, expires_at = :exp`` if ``<condition>``."""

    values: frozenset[str]  # the expression attribute values it uses, exactly
    increment: bool  # True: tat = tat + :t, if :now < tat <= :limit; False: tat = :fresh, if no tat or tat <= :now


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
        if not _sent_as_botocore_sends_it(environ):
            return app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        try:
            plan = _plan(environ, body)
        except Exception:  # noqa: BLE001 - nothing is changed yet: moto answers it, as it would have
            environ["wsgi.input"] = io.BytesIO(body)
            return app(environ, start_response)
        passed, answer = plan.apply()
        payload = json.dumps(answer).encode()
        start_response(*_response_head(passed, payload))
        if served is not None:
            served()
        return [payload]

    return application


def _sent_as_botocore_sends_it(environ: WSGIEnvironment) -> bool:
    """The request's HTTP details are those moto's own answer would not depend on (moto reads the path, the
    query, the content type and encoding, an Origin, its account and auth settings): anything else is moto's."""
    from moto import settings

    return (
        environ.get("REQUEST_METHOD") == "POST"
        and environ.get("HTTP_X_AMZ_TARGET") == TARGET
        and environ.get("PATH_INFO") == "/"
        and not environ.get("QUERY_STRING")
        and environ.get("CONTENT_TYPE") == CONTENT_TYPE
        and str(environ.get("CONTENT_LENGTH") or "").isdigit()
        and "HTTP_CONTENT_ENCODING" not in environ
        and "HTTP_ORIGIN" not in environ
        and "HTTP_X_MOTO_ACCOUNT_ID" not in environ
        and "amazonaws.com" not in environ.get("HTTP_HOST", "")
        and "AWS4" in environ.get("HTTP_AUTHORIZATION", "")
        and "MOTO_ACCOUNT_ID" not in os.environ
        and settings.INITIAL_NO_AUTH_ACTION_COUNT == float("inf")
    )


def _response_head(passed: bool, payload: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The status and headers moto's server sends with the same answer."""
    headers = [
        ("Access-Control-Allow-Origin", "*"),
        ("Content-Length", str(len(payload))),
        ("Server", "amazon.com"),  # (waitress adds Via, as it does to moto's)
        ("X-Amz-Crc32", str(zlib.crc32(payload))),
        ("X-Amzn-RequestId", "".join(secrets.choice(_REQUEST_ID_ALPHABET) for _ in range(52))),
    ]
    if passed:
        return "200 OK", [("Content-Type", CONTENT_TYPE), *headers]
    failed = [("Content-Type", "application/json"), ("Status", "400"), ("X-Amzn-ErrorType", CONDITION_FAILED)]
    return "400 Bad Request", [*failed, *headers]


@dataclass(frozen=True)
class _Plan:
    """One examined request: everything ``apply`` needs, read from moto's state without changing it."""

    table: Any  # moto's Table
    key: Any  # the item's key, a moto DynamoType
    item: Any  # moto's Item, or None
    tat: int | None  # the item's tat
    shape: Shape
    raw: dict[str, str]  # the expression attribute values as sent (moto stores :fresh and :exp so)
    return_values: str
    on_failure: str

    def apply(self) -> tuple[bool, dict[str, Any]]:
        """DynamoDB's semantics for the two shapes, answered as moto answers them: (passed, body)."""
        from moto.dynamodb.models.dynamo_type import DynamoType, Item

        now, tat = int(self.raw[":now"]), self.tat
        if self.shape.increment:
            passed = tat is not None and now < tat <= int(self.raw[":limit"])
        else:
            passed = tat is None or tat <= now
        if not passed:
            failure: dict[str, Any] = {
                "__type": f"com.amazonaws.dynamodb.v20120810#{CONDITION_FAILED}",
                "message": "The conditional request failed",
            }
            if self.on_failure == "ALL_OLD" and self.item is not None:
                failure["Item"] = self.item.to_json()["Attributes"]
            return False, failure
        # moto adds two integers and formats the sum; a value it only copies it keeps as sent ("-0" too)
        new_tat = f"{tat + int(self.raw[':t'])}" if self.shape.increment else self.raw[":fresh"]  # type: ignore[operator]
        item, table = self.item, self.table
        old = {} if item is None else item.to_json()["Attributes"]
        if item is None:
            table.items[self.key] = item = Item(self.key, None, {table.hash_key_attr: {"S": self.key.value}})
        item.attrs["tat"] = DynamoType({"N": new_tat})
        item.attrs["expires_at"] = DynamoType({"N": self.raw[":exp"]})
        answer: dict[str, Any] = {"ConsumedCapacity": {"TableName": table.name, "CapacityUnits": 0.5}}
        if self.return_values == "UPDATED_NEW":  # as moto: the attributes whose value changed (a new item's key too)
            new = item.to_json()["Attributes"]
            answer["Attributes"] = {name: value for name, value in new.items() if old.get(name) != value}
        return True, answer


def _plan(environ: WSGIEnvironment, body: bytes) -> _Plan:
    """Reads the request and moto's state; raises (and changes nothing) when moto must answer it."""
    if b"&" in body:  # moto parses a body without a query as a query string: an "&Action=..." would count
        raise _NotMine
    request = json.loads(body.decode("utf-8"))  # strict UTF-8, as moto decodes (a BOM fails: moto's)
    if not isinstance(request, dict) or not _FIELDS.issuperset(request):
        raise _NotMine
    update, condition = request.get("UpdateExpression"), request.get("ConditionExpression")
    return_values = request.get("ReturnValues", "NONE")
    on_failure = request.get("ReturnValuesOnConditionCheckFailure", "NONE")
    if not (isinstance(update, str) and isinstance(condition, str)):
        raise _NotMine
    if not (isinstance(return_values, str) and isinstance(on_failure, str)):
        raise _NotMine
    shape = SHAPES.get((update, condition))
    if shape is None or return_values not in _RETURN_VALUES or on_failure not in _ON_FAILURE:
        raise _NotMine
    raw = _integers(request.get("ExpressionAttributeValues"), shape.values)
    table = _table(environ, request.get("TableName"))
    key = _key(table, request.get("Key"))
    item = table.items.get(key)
    return _Plan(table, key, item, _stored_tat(table, item), shape, raw, return_values, on_failure)


def _integers(raw: Any, names: frozenset[str]) -> dict[str, str]:
    """The expression attribute values as sent, each an integer N."""
    if not isinstance(raw, dict) or raw.keys() != names:
        raise _NotMine
    values = {}
    for name, value in raw.items():
        number = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(number, str) or not _INTEGER.fullmatch(number):
            raise _NotMine
        values[name] = number
    return values


def _table(environ: WSGIEnvironment, name: Any) -> Any:
    """moto's table for this request's account and region, found as moto finds them (BaseResponse:
    get_region_from_url, get_current_account), if it is one the fast path can write as moto would."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.models import dynamodb_backends
    from moto.iam.models import get_account_id_from

    if not isinstance(name, str):
        raise _NotMine
    authorization = environ["HTTP_AUTHORIZATION"]
    agent = BaseResponse.region_from_useragent_regex.search(environ.get("HTTP_USER_AGENT", ""))
    region = agent.group(1) if agent else authorization.split(",")[0].split("/")[2]
    access_key = BaseResponse.access_key_regex.search(authorization)
    account = get_account_id_from(access_key.group(1) if access_key else "AKIAEXAMPLE")
    table = dynamodb_backends[account][region].tables[name]
    if (
        table.range_key_attr is not None
        or table.hash_key_type != "S"
        or table.hash_key_attr in _WRITTEN
        or table.global_indexes  # an index may type or project tat or expires_at: moto judges
        or table.indexes
        or table.stream_shard is not None  # moto records stream events
    ):
        raise _NotMine
    return table


def _key(table: Any, raw: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not isinstance(raw, dict) or raw.keys() != {table.hash_key_attr}:
        raise _NotMine
    value = raw[table.hash_key_attr]
    if not isinstance(value, dict) or value.keys() != {"S"} or not isinstance(value["S"], str):
        raise _NotMine
    if not 0 < len(value["S"].encode()) <= _MAX_KEY_BYTES:  # a lone surrogate raises: moto's
        raise _NotMine
    return DynamoType(value)


def _stored_tat(table: Any, item: Any) -> int | None:
    """The item's ``tat``; raises when the item is not one the limiter writes (other attributes, which could
    make it too large or hold binary values, or a tat or expires_at that is not an integer N)."""
    if item is None:
        return None
    attrs = item.attrs
    if not {table.hash_key_attr, *_WRITTEN}.issuperset(attrs):
        raise _NotMine
    if "expires_at" in attrs and attrs["expires_at"].type != "N":
        raise _NotMine
    tat = attrs.get("tat")
    if tat is None:
        return None
    if tat.type != "N" or not isinstance(tat.value, str) or not _INTEGER.fullmatch(tat.value):
        raise _NotMine
    return int(tat.value)
