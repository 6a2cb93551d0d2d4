"""The DynamoDB limiter under concurrency: 8 threads, each with its own boto3 client (= 8 Lambda instances),
against the local stack's DynamoDB server over HTTP, and the RateLimited metric of the handler.

Exactness needs the store to apply a conditional UpdateItem atomically. moto's server does not on its own
(its update_item checks and writes in separate steps, and werkzeug serves requests in parallel threads);
local_stack's start_dynamodb() serializes the backend, and these tests pin that it does. The server runs in
this process, so ``hammer`` shortens the interpreter's thread switch interval to force interleavings: without
the lock, 204 to 214 of 240 requests at one instant were allowed (burst 200) in every round measured; with it,
exactly 200.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from local_stack.api import RATE_LIMIT_TABLE
from local_stack.dynamodb import create_rate_limit_table, start_dynamodb
from local_stack.servers import url_of
from moto import mock_aws
from sentiment_api.ratelimit import Decision, DynamoDbRateLimiter, RatePolicy

from tests.helpers import FUNCTION_ENV, FakeContext, load_function
from tests.helpers import create_rate_limit_table as create_table_in_moto

POLICY = RatePolicy(rate_per_minute=100, burst=200)
WORKERS = 8


class SharedClock:
    """One controlled clock for every thread (a frozen instant until the test moves it)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dynamodb_url() -> Iterator[str]:
    server = start_dynamodb()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        create_rate_limit_table(url_of(server))
        yield url_of(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def instance_client(url: str) -> Any:
    """What one Lambda instance has: its own session, client and connection pool; no retries, so every
    decision is one attempt's."""
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    return session.client(
        "dynamodb", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}, max_pool_connections=2)
    )


def hammer(limiters: list[DynamoDbRateLimiter], key: str, per_worker: int) -> list[Decision]:
    """Every limiter checks `key` `per_worker` times, all threads released at once by a barrier."""
    decisions: list[Decision] = []
    lock, barrier = threading.Lock(), threading.Barrier(len(limiters))
    errors: list[BaseException] = []

    def work(limiter: DynamoDbRateLimiter) -> None:
        try:
            barrier.wait()
            mine = [limiter.check(key) for _ in range(per_worker)]
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
            return
        with lock:
            decisions.extend(mine)

    threads = [threading.Thread(target=work, args=(limiter,)) for limiter in limiters]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads (clients and server) as often as possible: races show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(previous)
    assert not errors, errors
    assert len(decisions) == len(limiters) * per_worker
    return decisions


def limiters_for(url: str, clock: Callable[[], float]) -> list[DynamoDbRateLimiter]:
    return [DynamoDbRateLimiter(instance_client(url), RATE_LIMIT_TABLE, POLICY, clock) for _ in range(WORKERS)]


def test_exactly_burst_at_one_instant_then_exactly_the_refill(dynamodb_url: str) -> None:
    clock = SharedClock()
    limiters = limiters_for(dynamodb_url, clock)
    key = f"concurrent-{uuid.uuid4()}"

    burst = hammer(limiters, key, per_worker=30)  # 240 at one instant
    assert sum(d.allowed for d in burst) == POLICY.burst == 200
    rejected = [d for d in burst if not d.allowed]
    assert len(rejected) == 40
    assert all(d.remaining == 0 and d.retry_after_s == 1 for d in rejected)
    # Every allowed decision saw a different state: remaining counts 199 … 0 exactly once each.
    assert sorted(d.remaining for d in burst if d.allowed) == list(range(200))

    clock.now += 60.0  # 60 s later: exactly 100 more (100 per minute), however many instances ask
    refill = hammer(limiters, key, per_worker=25)  # 200 at the next instant
    assert sum(d.allowed for d in refill) == 100

    clock.now += 0.6  # one emission interval: exactly one more
    assert sum(d.allowed for d in hammer(limiters, key, per_worker=2)) == 1

    item = instance_client(dynamodb_url).get_item(TableName=RATE_LIMIT_TABLE, Key={"pk": {"S": key}})["Item"]
    start_ms = round(SharedClock().now * 1000)
    assert int(item["tat"]["N"]) == start_ms + (200 + 100 + 1) * POLICY.interval_ms


def test_real_clock_bounds_under_concurrency(dynamodb_url: str) -> None:
    limiters = limiters_for(dynamodb_url, time.time)
    key = f"concurrent-real-{uuid.uuid4()}"

    started = time.monotonic()
    decisions = hammer(limiters, key, per_worker=32)  # 256
    elapsed = time.monotonic() - started

    allowed = sum(d.allowed for d in decisions)
    assert 200 <= allowed <= 200 + math.floor(elapsed / 0.6), (allowed, elapsed)


def test_other_users_are_independent_under_concurrency(dynamodb_url: str) -> None:
    clock = SharedClock(1_900_000_000.0)
    limiters = limiters_for(dynamodb_url, clock)
    greedy = f"greedy-{uuid.uuid4()}"
    assert sum(d.allowed for d in hammer(limiters, greedy, per_worker=26)) == 200
    other = hammer(limiters[:2], f"quiet-{uuid.uuid4()}", per_worker=5)
    assert all(d.allowed for d in other)


# ---- the rejection metric -------------------------------------------------------------------------
def emf_blobs(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if '"_aws"' in line]


def metric_values(blobs: list[dict[str, Any]], name: str) -> list[float]:
    values: list[float] = []
    for blob in blobs:
        declared = {m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if name in declared:
            value = blob[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


@pytest.fixture(scope="module")
def small_limit_function() -> Iterator[Any]:
    """The predict function with a limit of 1 per minute, burst 2, on moto. Loaded by a module fixture, before
    any capsys starts: the layer's logger keeps the stdout it is created with."""
    with mock_aws():
        create_table_in_moto(boto3.client("dynamodb", region_name="us-east-1"), FUNCTION_ENV["RATE_LIMIT_TABLE_NAME"])
        yield load_function("predict", {"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_BURST": "2"})


def test_each_rejection_emits_one_rate_limited_count(
    small_limit_function: Any, event: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """RateLimited (Count, unit 1 per 429) summed per minute is the rejections-per-minute metric; it is
    emitted only for rejections."""
    e = event("predict-invalid-json")  # cheap: no model call, still limited
    e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = f"metric-{uuid.uuid4()}"
    capsys.readouterr()
    statuses = [small_limit_function.lambda_handler(e, FakeContext())["statusCode"] for _ in range(5)]
    blobs = emf_blobs(capsys.readouterr().out)

    assert statuses == [400, 400, 429, 429, 429]
    assert metric_values(blobs, "RateLimited") == [1.0, 1.0, 1.0]
    declared = [
        m for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"] if m["Name"] == "RateLimited"
    ]
    assert {m["Unit"] for m in declared} == {"Count"}
    assert all(b.get("Stage") == "test" for b in blobs if "RateLimited" in b)
