"""The verdict on one canary window: the spec's rule applied to the window's figures (pure functions),
and the checks beside it (a 4xx regression, invocations that published no metrics).

Low traffic: with fewer than `min_requests` canary (or stable) requests in the window neither p95 nor a
2 % rate can be told apart from noise. The verdict is then `low_traffic_verdict` (template parameter
CanaryLowTrafficVerdict: "rollback" in prod (no promotion on zero evidence), "promote" in dev, where the
smoke tests passed and the SLO burn-rate alarms keep watching; a CanaryVerdicts{Verdict=inconclusive} metric
and its alarm tell a human). Errors are never
ignored: the error rate is bounded below by errors / max(requests, min_requests), so a handful of failed
canary requests rolls back even at low traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .settings import PROMOTE, ROLLBACK, CanaryRule


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def canary_window(hook_started: datetime, minutes: int) -> Window:
    """CodeDeploy runs AfterAllowTraffic as soon as the canary phase ends: the window is the `minutes`
    whole minutes before the hook started (CloudWatch stores 1-minute buckets)."""
    end = hook_started.astimezone(UTC).replace(second=0, microsecond=0)
    return Window(end - timedelta(minutes=minutes), end)


@dataclass(frozen=True, slots=True)
class WindowStats:
    canary_requests: float  # request metrics + unhandled errors
    canary_errors: float  # 5xx answers + unhandled errors
    canary_p95_ms: float | None
    stable_requests: float
    stable_p95_ms: float | None
    canary_4xx: float = 0.0
    stable_4xx: float = 0.0
    canary_invocations: float | None = None  # AWS/Lambda Invocations through the alias (None: not read)
    canary_published: float | None = None  # the canary's request metrics alone (None: not read)


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: str  # PROMOTE | ROLLBACK
    reason: str
    inconclusive: bool = False


def _missing_metrics(stats: WindowStats, rule: CanaryRule) -> Verdict | None:
    """A version that served but published (almost) no request metrics: nothing else can be judged."""
    invocations, published = stats.canary_invocations, stats.canary_published
    if invocations is None or published is None or invocations < rule.min_requests:
        return None
    if published < rule.min_metric_coverage * invocations:
        return Verdict(
            ROLLBACK,
            f"canary published request metrics for {published:g} of its {invocations:g} invocations "
            f"(< {rule.min_metric_coverage:.0%}): its behaviour cannot be judged",
        )
    return None


def _client_errors(stats: WindowStats, rule: CanaryRule) -> Verdict | None:
    """A 4xx regression: the canary rejects requests the stable version accepts."""
    canary_rate = stats.canary_4xx / stats.canary_requests
    stable_rate = stats.stable_4xx / stats.stable_requests
    if stats.canary_4xx >= rule.min_4xx and canary_rate - stable_rate > rule.max_4xx_increase:
        return Verdict(
            ROLLBACK,
            f"canary 4xx rate {canary_rate:.2%} > stable 4xx rate {stable_rate:.2%} + {rule.max_4xx_increase:.0%}",
        )
    return None


def judge(stats: WindowStats, rule: CanaryRule) -> Verdict:
    """The spec's rule on one canary window, and the checks beside it. Errors and missing metrics first:
    they are decisive even at low traffic."""
    canary_total = stats.canary_requests
    error_rate_bound = stats.canary_errors / max(canary_total, rule.min_requests)
    if error_rate_bound > rule.max_error_rate:
        return Verdict(
            ROLLBACK,
            f"canary error rate {stats.canary_errors:g}/{canary_total:g} "
            f"> {rule.max_error_rate:.1%} (counting at least {rule.min_requests} requests)",
        )
    missing = _missing_metrics(stats, rule)
    if missing is not None:
        return missing
    if canary_total < rule.min_requests or stats.stable_requests < rule.min_requests:
        return Verdict(
            rule.low_traffic_verdict,
            f"too little traffic to judge: canary {canary_total:g}, stable {stats.stable_requests:g} "
            f"requests (< {rule.min_requests}); low-traffic verdict: {rule.low_traffic_verdict}",
            inconclusive=True,
        )
    if stats.canary_p95_ms is None or stats.stable_p95_ms is None or stats.stable_p95_ms <= 0:
        return Verdict(rule.low_traffic_verdict, "no p95 latency for one of the versions", inconclusive=True)
    ratio = stats.canary_p95_ms / stats.stable_p95_ms
    if ratio > rule.max_latency_ratio:
        return Verdict(
            ROLLBACK,
            f"canary p95 {stats.canary_p95_ms:.0f} ms = {ratio:.3f} x stable p95 "
            f"{stats.stable_p95_ms:.0f} ms > {rule.max_latency_ratio}",
        )
    client_errors = _client_errors(stats, rule)
    if client_errors is not None:
        return client_errors
    rate = stats.canary_errors / canary_total
    return Verdict(PROMOTE, f"canary p95 {ratio:.3f} x stable, error rate {rate:.2%}: within the rule")
