"""Builds the API Gateway payload format 2.0 event for one HTTP request, with the keys and value types of
``sam local generate-event apigateway http-api-proxy`` (kept in ``tests/local/data/http-api-proxy.json``).

Like API Gateway, keys without a value are left out rather than sent empty: ``cookies``,
``queryStringParameters``, ``pathParameters`` (a route with path variables, such as ``/jobs/{job_id}``) and
``body`` appear only when the request has them, and ``stageVariables`` and ``requestContext.authentication``
(mTLS) never do (no stage variables, no mutual TLS). Header names are lower-cased and repeated headers
joined with ``,``; the ``Cookie`` header moves to ``cookies``. Authorizer claims are passed as strings, as API
Gateway does.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .authorizer import Authorized
from .lambda_context import ACCOUNT_ID

API_ID = "local"
STAGE = "$default"
_TEXT_MEDIA_TYPES = ("application/json",)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What arrived on the wire, independent of the WSGI server."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"


def build_event(
    request: HttpRequest,
    route_key: str,
    auth: Authorized | None,
    request_id: str,
    now: float,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    headers = _headers(request, now)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    cookies = _cookies(request.headers)
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["requestContext"] = _request_context(request, route_key, auth, request_id, headers, now)
    if request.body:
        event["body"], event["isBase64Encoded"] = encode_body(request.body, headers.get("content-type"))
    else:
        event["isBase64Encoded"] = False
    return event


def encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """Text (JSON or ``text/*``, valid UTF-8) is passed as-is; anything else is base64, flagged."""
    if is_textual(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or (media_type.startswith("application/") and media_type.endswith("+json"))
    )


def _headers(request: HttpRequest, now: float) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    joined.setdefault("x-forwarded-for", request.source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-amzn-trace-id", _trace_id(now))
    return joined


def _trace_id(now: float) -> str:
    return f"Root=1-{int(now):08x}-{os.urandom(12).hex()}"


def _cookies(headers: Sequence[tuple[str, str]]) -> list[str]:
    values = [value for name, value in headers if name.lower() == "cookie"]
    return [part.strip() for value in values for part in value.split(";") if part.strip()]


def _query_parameters(raw_query: str) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _request_context(
    request: HttpRequest,
    route_key: str,
    auth: Authorized | None,
    request_id: str,
    headers: Mapping[str, str],
    now: float,
) -> dict[str, Any]:
    domain = headers.get("host", "localhost").split(":", 1)[0]
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
    }
    if auth is not None:
        context["authorizer"] = {"jwt": {"claims": claims_as_strings(auth.claims), "scopes": list(auth.scopes)}}
    context |= {
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    return context


def claims_as_strings(claims: Mapping[str, Any]) -> dict[str, str]:
    """API Gateway hands claims to the function as strings: numbers as digits, lists as ``[a b]``."""
    return {name: _claim_string(value) for name, value in claims.items()}


def _claim_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, list):
        return "[" + " ".join(_claim_string(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def _clf_time(now: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``: the Common Log Format time API Gateway puts in ``time``."""
    moment = time.gmtime(now)
    month = _MONTHS[moment.tm_mon - 1]
    return time.strftime(f"%d/{month}/%Y:%H:%M:%S +0000", moment)
