"""Correlation ids: a well-formed incoming x-correlation-id is kept, anything else is replaced by the
API Gateway request id, so a client cannot inject log noise or oversized values."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from sentiment_core.contract import CORRELATION_HEADER as HEADER

_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def is_well_formed(value: str) -> bool:
    return _WELL_FORMED.fullmatch(value) is not None


def correlation_id_from_event(event: Mapping[str, Any]) -> str:
    headers = event.get("headers") or {}
    incoming = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == HEADER), None)
    if isinstance(incoming, str) and is_well_formed(incoming):
        return incoming
    request_id = (event.get("requestContext") or {}).get("requestId")
    if isinstance(request_id, str) and request_id:
        return request_id
    return str(uuid.uuid4())
