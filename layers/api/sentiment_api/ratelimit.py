"""Per-user rate limiting: GCRA (the generic cell rate algorithm), exact under concurrency because the
state is one DynamoDB item per user, changed only by atomic conditional writes.

Policy: a token bucket of capacity `burst` (200) refilled at `rate_per_minute` (100/min), i.e. GCRA with
emission interval T = 60 / rate (0.6 s) and burst tolerance tau = burst * T (120 s). The only state is the
theoretical arrival time (TAT) of the next request, in integer epoch milliseconds. A request at time `now`
is allowed when max(TAT, now) + T - now <= tau, and then TAT becomes max(TAT, now) + T.

DynamoDB, without a read and with at most two conditional UpdateItem calls:
  1. idle path:  SET tat = now + T            IF attribute_not_exists(tat) OR tat <= now
  2. busy path:  SET tat = tat + T            IF tat <= now + tau - T
If (2) fails too, the request is rejected; the failed condition returns the stored TAT (ALL_OLD), which
gives Retry-After. TTL (expires_at) lets DynamoDB drop idle users; an expired item is equivalent to none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import RateLimitSettings


@dataclass(frozen=True, slots=True)
class RatePolicy:
    rate_per_minute: int
    burst: int

    # Integer milliseconds: exact arithmetic, and exactly what DynamoDB stores.
    @property
    def interval_ms(self) -> int:
        return 60_000 // self.rate_per_minute

    @property
    def tolerance_ms(self) -> int:
        return self.burst * self.interval_ms

    @property
    def header(self) -> str:
        return f"{self.burst};w={math.ceil(self.tolerance_ms / 1000)};rate={self.rate_per_minute}/min"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int | None = None

    def headers(self, policy: RatePolicy) -> dict[str, str]:
        """IETF draft RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), on every response."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": policy.header,
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def _ceil_s(ms: int) -> int:
    return max(0, -(-ms // 1000))


def allowed_decision(policy: RatePolicy, new_tat: int, now: int) -> Decision:
    remaining = (now + policy.tolerance_ms - new_tat) // policy.interval_ms
    return Decision(True, policy.burst, max(0, remaining), _ceil_s(new_tat - now))


def rejected_decision(policy: RatePolicy, stored_tat: int, now: int) -> Decision:
    wait = stored_tat + policy.interval_ms - policy.tolerance_ms - now
    return Decision(False, policy.burst, 0, _ceil_s(stored_tat - now), max(1, _ceil_s(wait)))


class RateLimiter(Protocol):
    policy: RatePolicy

    def check(self, key: str) -> Decision: ...


class RateLimiterUnavailable(Exception):
    """The limiter's store failed (throttled, unreachable, timed out)."""


class DynamoDbRateLimiter:
    def __init__(
        self, client: Any, table_name: str, policy: RatePolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self.policy = policy
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> DynamoDbRateLimiter:
        # Tight timeouts: the limiter must never eat the request's latency budget (fail mode decides).
        config = Config(
            connect_timeout=0.1,
            read_timeout=0.15,
            retries={"total_max_attempts": 2, "mode": "standard"},
            tcp_keepalive=True,
        )
        policy = RatePolicy(settings.per_minute, settings.burst)
        return cls(boto3.client("dynamodb", config=config), settings.table, policy)

    @staticmethod
    def _expires_at(tat_ms: int) -> dict[str, str]:
        return {"N": str(tat_ms // 1000 + 60)}  # epoch seconds, as DynamoDB TTL wants

    def check(self, key: str) -> Decision:
        now = round(self._clock() * 1000)
        p = self.policy
        try:
            fresh = now + p.interval_ms
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET tat = :fresh, expires_at = :exp",
                    ConditionExpression="attribute_not_exists(tat) OR tat <= :now",
                    ExpressionAttributeValues={":fresh": _n(fresh), ":now": _n(now), ":exp": self._expires_at(fresh)},
                )
                return allowed_decision(p, fresh, now)
            except self._client.exceptions.ConditionalCheckFailedException:
                pass
            try:
                result = self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET tat = tat + :t, expires_at = :exp",
                    ConditionExpression="tat <= :limit",
                    ExpressionAttributeValues={
                        ":t": _n(p.interval_ms),
                        ":limit": _n(now + p.tolerance_ms - p.interval_ms),
                        ":exp": self._expires_at(now + p.tolerance_ms),
                    },
                    ReturnValues="UPDATED_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return allowed_decision(p, int(result["Attributes"]["tat"]["N"]), now)
            except self._client.exceptions.ConditionalCheckFailedException as exc:
                stored = int(exc.response.get("Item", {}).get("tat", {}).get("N", now + p.tolerance_ms))
                return rejected_decision(p, stored, now)
        except (ClientError, BotoCoreError) as exc:
            raise RateLimiterUnavailable(type(exc).__name__) from exc


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}
