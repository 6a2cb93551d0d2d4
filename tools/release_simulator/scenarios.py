"""The release scenarios: what the new version does, minute by minute, at a traffic level.

Expected values, not samples: a minute with 30 canary requests at 2.1 % errors publishes 0.63 errors. This
shows what the alarms and hooks do with the rule's numbers in time; it does not show sampling noise, which
at low traffic makes 1.9 % and 2.1 % indistinguishable in practice (deploy/README.md says how much)."""

from __future__ import annotations

from dataclasses import dataclass

STABLE_P95_MS = 100.0
BASELINE_4XX_RATE = 0.01  # bad requests and 429s, spread over both versions by the alias' weighted routing

# Requests per second of the whole stage (both versions). low: 5 req/s gives the canary 30 a minute, 300
# in a 10-minute canary; high: 100 req/s.
TRAFFIC_LEVELS = {"low": 5.0, "high": 100.0}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """The new version in one minute."""

    error_rate: float = 0.0  # handled 5xx answers
    p95_factor: float = 1.0  # its p95 / the stable version's
    client_error_rate: float = BASELINE_4XX_RATE
    crashes: bool = False  # every invocation an unhandled error (no answer, no metrics)
    publishes_metrics: bool = True


HEALTHY = Behaviour()


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    traffic_factor: float  # of the level's req/s
    bad: Behaviour  # during the first bad_minutes of the canary (None: all the time)
    bad_minutes: int | None = None
    smoke_sees_healthy: bool = False  # the version misbehaves only under real traffic, not in the smoke test
    expect_promote: bool = False
    clear_failure: bool = False  # must start rolling back while the new version holds at most the canary share
    sustained: bool = False  # the spec's sustained rule: within the canary share when the canary is long enough
    note: str = ""

    def behaviour(self, minute_of_canary: int | None) -> Behaviour:
        """minute_of_canary: minutes since the first traffic shift (None: the smoke test, before it)."""
        if minute_of_canary is None and self.smoke_sees_healthy:
            return HEALTHY
        if self.bad_minutes is None:
            return self.bad
        if minute_of_canary is not None and minute_of_canary < self.bad_minutes:
            return self.bad
        return HEALTHY


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("healthy", 1.0, HEALTHY, expect_promote=True, note="same as the stable version"),
    Scenario("crash", 1.0, Behaviour(crashes=True), clear_failure=True, note="every invocation fails"),
    Scenario("errors_10pct", 1.0, Behaviour(error_rate=0.10), clear_failure=True, note="10 % 5xx"),
    Scenario("errors_2_1pct_sustained", 1.0, Behaviour(error_rate=0.021), sustained=True, note="2.1 % 5xx, all along"),
    Scenario("errors_1_9pct", 1.0, Behaviour(error_rate=0.019), expect_promote=True, note="1.9 % 5xx"),
    Scenario("p95_plus_31pct_sustained", 1.0, Behaviour(p95_factor=1.31), sustained=True, note="p95 1.31 x, all along"),
    Scenario("p95_plus_29pct", 1.0, Behaviour(p95_factor=1.29), expect_promote=True, note="p95 1.29 x stable"),
    Scenario(
        "no_metrics", 1.0, Behaviour(publishes_metrics=False), clear_failure=True, note="answers, emits no metrics"
    ),
    Scenario("zero_traffic", 0.0, HEALTHY, note="healthy, but no request at all during the canary"),
    Scenario("low_traffic", 1 / 200, HEALTHY, note="healthy, at 1/200 of the level: too little evidence"),
    Scenario(
        "slow_start",
        1.0,
        Behaviour(error_rate=0.10, p95_factor=2.5),
        bad_minutes=2,
        clear_failure=True,
        note="10 % 5xx and p95 2.5 x for the first 2 minutes of the canary, then healthy",
    ),
    Scenario(
        "no_metrics_after_smoke",
        1.0,
        Behaviour(publishes_metrics=False),
        smoke_sees_healthy=True,
        note="passes the smoke test, then publishes no metrics under real traffic (the verdict sees it)",
    ),
    Scenario(
        "crash_after_smoke",
        1.0,
        Behaviour(crashes=True),
        smoke_sees_healthy=True,
        clear_failure=True,
        note="passes the smoke test, then every invocation through the alias fails",
    ),
    Scenario(
        "client_errors_plus_10pct",
        1.0,
        Behaviour(client_error_rate=BASELINE_4XX_RATE + 0.10),
        clear_failure=True,
        note="4xx rate 10 points above the stable version's",
    ),
)


def at_level(scenario: Scenario, level: str) -> tuple[str, float]:
    """The scenario's printed name and its stage-wide req/s at a traffic level."""
    return f"{scenario.name}_{level}", TRAFFIC_LEVELS[level] * scenario.traffic_factor


def scenario_named(name: str) -> Scenario:
    (found,) = [s for s in SCENARIOS if s.name == name]
    return found
