"""AfterAllowTraffic: judge the finished canary window from CloudWatch and disarm the rollback alarms.

The alarms stop a release while CodeDeploy runs it; this hook runs after the last traffic shift, waits for
the metric lag, judges the whole canary window from GetMetricData (what the alarms may not have seen yet:
the window's last minutes, a rule broken only on the whole window, too little evidence) and fails the
deployment, which rolls it back. Then it sets the alarms idle again (alarms.idle_alarms), so they never
block the next release."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Protocol

from .alarms import _metric, disarm_alarms, lambda_error_dimensions, version_dimensions
from .observability import count_verdict, logger
from .release import Release
from .settings import INCONCLUSIVE, PROMOTE, ROLLBACK, HookSettings
from .verdict import Window, WindowStats, canary_window, judge


def window_queries(settings: HookSettings, release: Release, window: Window) -> list[dict[str, Any]]:
    """GetMetricData queries: one datapoint per query covering the whole window."""
    period = window.seconds
    canary = version_dimensions(settings, release.target_version)
    stable = version_dimensions(settings, release.current_version)
    ns = settings.namespace
    return [
        {"Id": "canary_requests", "MetricStat": _metric(ns, "Requests", canary, "Sum", period)},
        {"Id": "canary_5xx", "MetricStat": _metric(ns, "5xx", canary, "Sum", period)},
        {
            "Id": "canary_crashes",
            "MetricStat": _metric(
                "AWS/Lambda", "Errors", lambda_error_dimensions(settings, release.target_version), "Sum", period
            ),
        },
        {
            "Id": "canary_invocations",
            "MetricStat": _metric(
                "AWS/Lambda", "Invocations", lambda_error_dimensions(settings, release.target_version), "Sum", period
            ),
        },
        {"Id": "canary_p95", "MetricStat": _metric(ns, "Latency", canary, "p95", period)},
        {"Id": "canary_4xx", "MetricStat": _metric(ns, "4xx", canary, "Sum", period)},
        {"Id": "stable_requests", "MetricStat": _metric(ns, "Requests", stable, "Sum", period)},
        {"Id": "stable_p95", "MetricStat": _metric(ns, "Latency", stable, "p95", period)},
        {"Id": "stable_4xx", "MetricStat": _metric(ns, "4xx", stable, "Sum", period)},
    ]


def _values(results: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for result in results:
        values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
    return values


def stats_from_results(results: Sequence[Mapping[str, Any]]) -> WindowStats:
    values = _values(results)

    def total(query_id: str) -> float:
        return math.fsum(values.get(query_id, []))

    def p95(query_id: str) -> float | None:
        # One datapoint for the window; should alignment split it, the worse one counts (p95s do not add).
        found = values.get(query_id, [])
        return max(found) if found else None

    crashes = total("canary_crashes")
    return WindowStats(
        canary_requests=total("canary_requests") + crashes,
        canary_errors=total("canary_5xx") + crashes,
        canary_p95_ms=p95("canary_p95"),
        stable_requests=total("stable_requests"),
        stable_p95_ms=p95("stable_p95"),
        canary_4xx=total("canary_4xx"),
        stable_4xx=total("stable_4xx"),
        canary_invocations=total("canary_invocations"),
        canary_published=total("canary_requests"),
    )


class CloudWatchMetrics:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, queries: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": window.start, "EndTime": window.end}
        while True:
            page = self._client.get_metric_data(**kwargs)
            results.extend(page.get("MetricDataResults", []))
            token = page.get("NextToken")
            if not token:
                return results
            kwargs["NextToken"] = token


class MetricSource(Protocol):
    def get(self, queries: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]: ...


def post_traffic_check(
    release: Release,
    settings: HookSettings,
    source: MetricSource,
    started: datetime,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    put_metric_alarm: Callable[..., Any],
) -> bool:
    window = canary_window(started, settings.rule.window_minutes)
    ready_at = window.end + timedelta(seconds=settings.metric_lag_s)
    wait_s = (ready_at - now()).total_seconds()
    if wait_s > 0:
        logger.info("waiting for the metric lag", extra={"wait_s": round(wait_s, 1)})
        sleep(wait_s)
    stats = stats_from_results(source.get(window_queries(settings, release, window), window))
    verdict = judge(stats, settings.rule)
    count_verdict(INCONCLUSIVE if verdict.inconclusive else verdict.decision)
    log = logger.warning if verdict.decision == ROLLBACK or verdict.inconclusive else logger.info
    log(
        "canary verdict",
        extra={
            "decision": verdict.decision,
            "reason": verdict.reason,
            "inconclusive": verdict.inconclusive,
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "stats": asdict(stats),
        },
    )
    disarm_alarms(settings, put_metric_alarm)
    return verdict.decision == PROMOTE
