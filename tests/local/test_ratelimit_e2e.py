"""The issue's acceptance test for the per-user limit, in real time, through the local HTTP API and the
DynamoDB-backed limiter (moto's server, serialized like DynamoDB's per-item atomicity: see
local_stack.dynamodb.start_dynamodb): 250 requests at once from one user with 8 concurrent workers, then
60 s idle, then 100 more. The exact arithmetic is pinned with a controlled clock in tests/unit.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
import requests

from tests.helpers import rate_limit_fields
from tests.local.conftest import failed_open

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

WORKERS = 8
TIMEOUT_S = 30
BURST, RATE_PER_MINUTE = 200, 100
INTERVAL_S = 60 / RATE_PER_MINUTE  # 0.6


def send(stack: RunningStack, token: str, count: int) -> list[requests.Response]:
    """`count` POST /predict at once from 8 workers, each with its own connection pool."""
    sessions: dict[int, requests.Session] = {}

    def one(i: int) -> requests.Response:
        session = sessions.setdefault(i % WORKERS, requests.Session())
        return session.post(
            f"{stack.api_url}/predict",
            data=b'{"text": "Works as expected."}',
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        responses = list(pool.map(one, range(count)))
    for session in sessions.values():
        session.close()
    return responses


def assert_rate_limited(response: requests.Response) -> None:
    policy, limit = rate_limit_fields(response.headers)
    assert policy == {"q": BURST, "w": 120, "qu": "request"}
    assert limit["r"] == 0 and limit["t"] == int(response.headers["retry-after"]) >= 1  # they agree
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["correlation_id"] == response.headers["x-correlation-id"]


def test_burst_of_250_then_60_s_idle_then_100_more(local_stack: RunningStack, token: Callable[..., str]) -> None:
    user = token(sub=f"burst-{uuid.uuid4()}")

    started = time.monotonic()
    burst = send(local_stack, user, 250)
    elapsed = time.monotonic() - started

    statuses = [r.status_code for r in burst]
    passed, limited = statuses.count(200), statuses.count(429)
    print(
        f"burst: {passed} passed, {limited} got 429, in {elapsed:.2f} s "
        f"(bound {BURST} + floor({elapsed:.2f}/0.6) = {BURST + math.floor(elapsed / INTERVAL_S)})"
    )
    assert passed + limited == 250, sorted(set(statuses))
    # A request the limiter failed open on (a stand-in call past its 0.15 s timeout on a busy machine; logged)
    # was served without being counted: a few at most, and the bound holds for the ones it decided.
    opened = [r for r in burst if failed_open(local_stack, r)]
    assert len(opened) <= 5, f"{len(opened)} of 250 requests failed open"
    assert BURST - len(opened) <= passed - len(opened) <= BURST + math.floor(elapsed / INTERVAL_S)
    for response in burst:
        if response in opened:
            assert response.json()["sentiment"] in {"positive", "neutral", "negative"}
            continue
        assert rate_limit_fields(response.headers)[0]["q"] == BURST
        if response.status_code == 429:
            assert_rate_limited(response)
        else:
            assert "retry-after" not in response.headers
            assert response.json()["sentiment"] in {"positive", "neutral", "negative"}

    # Another user is unaffected while this one is exhausted.
    other = send(local_stack, token(sub=f"bystander-{uuid.uuid4()}"), 1)[0]
    assert other.status_code == 200 and rate_limit_fields(other.headers)[1]["r"] == BURST - 1
    # Still exhausted: the bucket refills one request per 0.6 s, so of a few requests sent back to back
    # at most the refill of their own duration pass (a single request can land just after a refill).
    started = time.monotonic()
    again = [r.status_code for r in send(local_stack, user, 5)]
    refilled = 1 + math.floor((time.monotonic() - started) / INTERVAL_S)
    assert again.count(429) >= 1 and again.count(200) <= refilled, again

    time.sleep(60)  # idle: 100 requests' worth of refill (100 per minute)

    refill = send(local_stack, user, 100)
    assert [r.status_code for r in refill].count(200) == 100, [r.status_code for r in refill]
