"""Per-user rate limiting: GCRA (the generic cell rate algorithm), exact under concurrency because the
state is one DynamoDB item per caller, changed only by atomic conditional writes.

Policy: a token bucket of capacity `burst` (200) refilled at `rate_per_minute` (100/min), i.e. GCRA with
emission interval T = 60 / rate (0.6 s) and burst tolerance tau = burst * T (120 s). The only state is the
theoretical arrival time (TAT) of the next request, in integer epoch milliseconds. A request at time `now`
is allowed when max(TAT, now) + T - now <= tau, and then TAT becomes max(TAT, now) + T.

DynamoDB, without a read, with conditional UpdateItem calls of one attempt each:
  idle path:  SET tat = now + T            IF attribute_not_exists(tat) OR tat <= now
  busy path:  SET tat = tat + T            IF now < tat <= now + tau - T
If the busy path fails on a TAT beyond the limit, the request is rejected; the failed condition returns the
stored TAT (ALL_OLD), which gives Retry-After. TTL (expires_at) lets DynamoDB drop idle callers; an expired
item is equivalent to none.

Each execution environment remembers the last TAT it saw per caller (bounded in number, oldest dropped
first). The stored TAT only grows, so that value is a lower bound, and it is used twice:
  - when even the lower bound rejects, the request is rejected with no DynamoDB call at all, exactly as the
    store would answer until the time the next request can pass: a caller hammering a closed bucket costs
    nothing after its first rejection;
  - the path it points to goes first (a TAT in the future: busy path), so a caller this environment knows
    costs one write per request instead of two; a wrong guess costs one more write, never a wrong answer,
    because each write's condition is evaluated by DynamoDB.

The key is a hash of the token's issuer and subject (``caller_key``): fixed length whatever the `sub`, and
two identity providers cannot share a bucket.

Response headers: RateLimit and RateLimit-Policy of draft-ietf-httpapi-ratelimit-headers-12 (HTTP
structured fields, RFC 9651), e.g. ``RateLimit-Policy: "per-user";q=200;w=120;qu="request"`` and
``RateLimit: "per-user";r=199;t=1``; on a 429 ``t`` equals Retry-After.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from . import aws
from .config import RateLimitSettings

#: The policy's name in the RateLimit fields (a structured-field String).
POLICY_NAME = "per-user"
#: DynamoDB errors worth failing open on: the store is busy or broken for a moment, not misconfigured.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
#: Any failure of the connection or of the HTTP exchange (timeouts, refused, reset, TLS, proxy): not the
#: request's fault, and gone in a moment. botocore's other errors (a parameter it refuses, no credentials)
#: are ours, and fail closed.
_TRANSIENT_TRANSPORT_ERRORS = (HTTPClientError, BotocoreConnectionError)
#: Per UpdateItem, one attempt each; a check makes one or two calls, three when another instance moves the
#: caller's TAT between them (docs/architecture.md, latency budget).
CONNECT_TIMEOUT_S, READ_TIMEOUT_S, MAX_CALLS_PER_CHECK = 0.1, 0.15, 3
#: Callers whose last TAT an execution environment remembers (a few hundred bytes each; the oldest go first).
MAX_KNOWN_CALLERS = 10_000


def caller_key(issuer: str, subject: str) -> str:
    """The limiter's key for one caller: SHA-256 of (issuer, subject), 64 hex characters for any `sub`."""
    identity = json.dumps([issuer, subject], ensure_ascii=False, separators=(",", ":"))
    return "caller#" + hashlib.sha256(identity.encode("utf-8", errors="surrogatepass")).hexdigest()


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
        """RateLimit-Policy: the bucket holds `burst` requests and refills completely in w seconds."""
        return f'"{POLICY_NAME}";q={self.burst};w={math.ceil(self.tolerance_ms / 1000)};qu="request"'


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    reset_s: int  # allowed: seconds until the bucket is full again; rejected: until the next request passes
    retry_after_s: int | None = None

    def headers(self, policy: RatePolicy) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": policy.header,
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_s}',
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def _ceil_s(ms: int) -> int:
    return max(0, -(-ms // 1000))


def allowed_decision(policy: RatePolicy, new_tat: int, now: int) -> Decision:
    remaining = (now + policy.tolerance_ms - new_tat) // policy.interval_ms
    return Decision(True, max(0, remaining), _ceil_s(new_tat - now))


def next_allowed_at(policy: RatePolicy, stored_tat: int) -> int:
    """The first instant (epoch ms) at which a request passes, given the stored TAT."""
    return stored_tat + policy.interval_ms - policy.tolerance_ms


def rejected_decision(policy: RatePolicy, stored_tat: int, now: int) -> Decision:
    wait = max(1, _ceil_s(next_allowed_at(policy, stored_tat) - now))
    return Decision(False, 0, wait, wait)


class RateLimiter(Protocol):
    policy: RatePolicy

    def check(self, key: str) -> Decision: ...


class RateLimiterUnavailable(Exception):
    """The limiter's store failed. ``transient``: throttled, timed out or a 5xx (the fail mode decides);
    otherwise the limiter is misconfigured or refused the request, and the service fails closed."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def unavailable(exc: ClientError | BotoCoreError) -> RateLimiterUnavailable:
    if isinstance(exc, ClientError):
        code = aws.error_code(exc) or "ClientError"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return RateLimiterUnavailable(code, transient=code in TRANSIENT_ERROR_CODES or status >= 500)
    return RateLimiterUnavailable(type(exc).__name__, transient=isinstance(exc, _TRANSIENT_TRANSPORT_ERRORS))


class DynamoDbRateLimiter:
    def __init__(
        self, client: Any, table_name: str, policy: RatePolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table_name
        self.policy = policy
        self._clock = clock
        self._known: OrderedDict[str, int] = OrderedDict()  # key -> the last TAT this instance saw for it

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> DynamoDbRateLimiter:
        # One attempt with tight timeouts: the limiter must never eat the request's latency budget, and a
        # retry would only double the load on a store that is already throttling (fail mode decides).
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"total_max_attempts": 1, "mode": "standard"},
            tcp_keepalive=True,
        )
        policy = RatePolicy(settings.per_minute, settings.burst)
        return cls(aws.client("dynamodb", config), settings.table, policy)

    @staticmethod
    def _expires_at(tat_ms: int) -> dict[str, str]:
        return {"N": str(tat_ms // 1000 + 60)}  # epoch seconds, as DynamoDB TTL wants

    def check(self, key: str) -> Decision:
        now = round(self._clock() * 1000)
        known = self._known.get(key)
        if known is not None and now < next_allowed_at(self.policy, known):
            # the stored TAT is at least `known` (it only grows): rejected for certain, no DynamoDB call
            return rejected_decision(self.policy, known, now)
        try:
            decision, tat = self._check_store(key, now, busy_first=known is not None and known > now)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        self._remember(key, tat)
        return decision

    def _remember(self, key: str, tat: int) -> None:
        self._known[key] = tat
        self._known.move_to_end(key)
        while len(self._known) > MAX_KNOWN_CALLERS:
            self._known.popitem(last=False)

    def _check_store(self, key: str, now: int, busy_first: bool) -> tuple[Decision, int]:
        """The decision and the TAT it leaves (allowed: the new one; rejected: the stored one). The path
        this instance last saw goes first, so a caller it knows costs one write; a guess that turns out
        wrong costs one more. At most three writes, when another instance moves the TAT in between."""
        p = self.policy
        if busy_first:
            decision = self._busy(key, now)
            if decision is not None:
                return decision
        if self._idle(key, now):
            return allowed_decision(p, now + p.interval_ms, now), now + p.interval_ms
        decision = self._busy(key, now)
        if decision is not None:
            return decision
        raise RateLimiterUnavailable("Contention", transient=True)  # the TAT moved back under us: TTL expiry

    def _idle(self, key: str, now: int) -> bool:
        """SET tat = now + T IF there is none or it is in the past; False when the condition failed."""
        fresh = now + self.policy.interval_ms
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET tat = :fresh, expires_at = :exp",
                ConditionExpression="attribute_not_exists(tat) OR tat <= :now",
                ExpressionAttributeValues={":fresh": _n(fresh), ":now": _n(now), ":exp": self._expires_at(fresh)},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _busy(self, key: str, now: int) -> tuple[Decision, int] | None:
        """SET tat = tat + T IF now < tat <= now + tau - T: allowed, or rejected (the stored TAT is beyond
        the limit), or None when there is no TAT in the future (the idle path applies)."""
        p = self.policy
        try:
            result = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET tat = tat + :t, expires_at = :exp",
                ConditionExpression="tat > :now AND tat <= :limit",
                ExpressionAttributeValues={
                    ":t": _n(p.interval_ms),
                    ":now": _n(now),
                    ":limit": _n(now + p.tolerance_ms - p.interval_ms),
                    ":exp": self._expires_at(now + p.tolerance_ms),
                },
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            stored = exc.response.get("Item", {}).get("tat", {}).get("N")
            if stored is None or int(stored) <= now:
                return None
            return rejected_decision(p, int(stored), now), int(stored)
        new_tat = int(result["Attributes"]["tat"]["N"])
        return allowed_decision(p, new_tat, now), new_tat


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}
