"""make simulate-release: the acceptance table of issue 10 (prod settings), what dev does instead, that the
simulator notices a weaker canary, and the CloudWatch semantics it assumes."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from tools.release_simulator import __main__ as cli
from tools.release_simulator.cloudwatch import MetricStore, evaluate, in_alarm, weighted_p95
from tools.release_simulator.scenarios import SCENARIOS, TRAFFIC_LEVELS, at_level, scenario_named
from tools.release_simulator.simulate import ReleaseConfig, Result, Simulation, load_config

LINE = re.compile(
    r"scenario=(?P<scenario>[a-z0-9_]+) outcome=(?P<outcome>rolled_back|promoted) "
    r"max_share_pct=(?P<max_share>[0-9.]+) exposure_pct_min=(?P<exposure>[0-9.]+) decided_at_min=(?P<decided>[0-9.]+)"
)
PROMOTE = {"healthy", "errors_1_9pct", "p95_plus_29pct"}
CLEAR_FAILURES = {"crash", "errors_10pct", "no_metrics"}


@cache
def config(stage: str) -> ReleaseConfig:
    return load_config(stage)


def run(stage: str, scenario: str, level: str, lag: int = cli.DEFAULT_LAG_MIN) -> Result:
    _, rps = at_level(scenario_named(scenario), level)
    return Simulation(config(stage), scenario_named(scenario), rps, lag, cli.DEFAULT_LAMBDA_LAG_MIN).run()


def test_prints_one_parsable_line_per_scenario_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--stage", "prod", "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed, strict=True) if not match]
    names = [m["scenario"] for m in parsed if m]
    assert names == [at_level(s, level)[0] for s in SCENARIOS for level in TRAFFIC_LEVELS]
    for match in parsed:
        assert match is not None
        base = match["scenario"].rsplit("_", 1)[0]
        assert match["outcome"] == ("promoted" if base in PROMOTE else "rolled_back"), match.string
        if base in CLEAR_FAILURES:
            assert float(match["max_share"]) <= 10, match.string


def test_dev_ends_every_scenario_as_its_settings_promise(capsys: pytest.CaptureFixture[str]) -> None:
    """make simulate-release STAGE=dev: clear failures at 10 %, the sustained rule after the shift."""
    assert cli.main(["--stage", "dev", "--check"]) == 0
    assert "UNEXPECTED" not in capsys.readouterr().err


@pytest.mark.parametrize("level", TRAFFIC_LEVELS)
@pytest.mark.parametrize("scenario", ["errors_2_1pct_sustained", "p95_plus_31pct_sustained"])
def test_prod_stops_the_spec_rule_while_the_new_version_holds_10_percent(scenario: str, level: str) -> None:
    result = run("prod", scenario, level)
    assert (result.outcome, result.max_share_pct) == ("rolled_back", 10)
    assert result.reason.startswith("alarm ")


@pytest.mark.parametrize("scenario", ["zero_traffic", "low_traffic"])
def test_no_promotion_without_evidence_in_prod_but_dev_promotes(scenario: str) -> None:
    assert run("prod", scenario, "high").outcome == "rolled_back"
    assert run("dev", scenario, "high").outcome == "promoted"


def test_dev_keeps_the_design_card_canary_and_its_sustained_rule_acts_after_the_shift() -> None:
    assert config("dev").canary_interval_min == 5
    result = run("dev", "errors_2_1pct_sustained", "high")
    assert (result.outcome, result.max_share_pct) == ("rolled_back", 100)  # the price of a 5-minute canary
    assert run("dev", "errors_10pct", "high").max_share_pct == 10  # a clear failure still stops at 10 %


def test_without_the_fast_alarms_a_clear_failure_reaches_100_percent() -> None:
    """The simulator is sensitive to the canary's design: with the design card's 5-minute canary, the
    spec's two alarms alone let 10 % errors serve all traffic before the rollback."""
    dev = config("dev")
    spec_only = replace(dev, watched_alarms=dev.watched_alarms[:2])
    _, rps = at_level(scenario_named("errors_10pct"), "high")
    result = Simulation(spec_only, scenario_named("errors_10pct"), rps, 2, 1).run()
    assert result.outcome == "rolled_back"
    assert result.max_share_pct == 100


def test_a_longer_lag_delays_but_does_not_break_prod() -> None:
    fast = run("prod", "errors_10pct", "low", lag=2)
    slow = run("prod", "errors_10pct", "low", lag=3)
    assert slow.decided_at_min == fast.decided_at_min + 1
    assert slow.max_share_pct == 10


def test_what_passes_the_smoke_test_and_fails_under_traffic() -> None:
    crash = run("prod", "crash_after_smoke", "low")
    assert (crash.max_share_pct, crash.outcome) == (10, "rolled_back")
    assert "unhandled-errors" in crash.reason
    # a version that stops publishing metrics under traffic is seen by the verdict only (after the shift):
    # an alarm comparing AWS/Lambda invocations with request metrics would read two lags against each other
    silent = run("prod", "no_metrics_after_smoke", "low")
    assert (silent.max_share_pct, silent.outcome) == (100, "rolled_back")
    assert "published request metrics for 0" in silent.reason


@pytest.mark.parametrize("lambda_lag", [0, 1, 2])
@pytest.mark.parametrize("lag", [0, 1, 2, 3])
def test_prod_holds_for_every_lag_up_to_3_minutes(lag: int, lambda_lag: int) -> None:
    """Healthy releases promote and clear failures stop at 10 % whichever source arrives first."""
    for scenario in SCENARIOS:
        for level in TRAFFIC_LEVELS:
            _, rps = at_level(scenario, level)
            result = Simulation(config("prod"), scenario, rps, lag, lambda_lag).run()
            assert not cli.problems(scenario, result, config("prod")), (scenario.name, level, result)


# ---- the CloudWatch model -------------------------------------------------------------------------------------
def test_metric_math_subset() -> None:
    assert evaluate(
        "(FILL(errors, 0) + FILL(crashes, 0)) / (FILL(requests, 0) + FILL(crashes, 0))",
        {"errors": 3.0, "crashes": None, "requests": 100.0},
    ) == pytest.approx(0.03)
    assert evaluate("canary_p95 / stable_p95", {"canary_p95": 1.0, "stable_p95": None}) is None  # 1 / 0
    assert evaluate("errors / requests", {"errors": 0.0, "requests": 0.0}) is None  # division by zero
    assert evaluate("IF(errors >= 2, errors / requests, 0)", {"errors": 1.0, "requests": 10.0}) == 0
    assert evaluate("IF(errors >= 2, errors / requests, 0)", {"errors": 2.0, "requests": 10.0}) == 0.2
    assert evaluate("a - b", {"a": 1.0, "b": None}) == 1.0  # a missing value counts as 0 in arithmetic
    guarded = "IF(c4 >= 3 AND cr >= 20 AND sr >= 20, c4 / cr - s4 / sr, 0)"
    assert evaluate(guarded, {"c4": 3.0, "cr": 30.0, "s4": 2.0, "sr": 200.0}) == pytest.approx(0.09)
    assert evaluate(guarded, {"c4": 3.0, "cr": 30.0, "s4": None, "sr": None}) == 0  # no stable traffic
    with pytest.raises(ValueError, match="not modelled"):
        evaluate("RATE(errors)", {"errors": 1.0})


def _alarm(minutes: int, threshold: float = 0.5) -> dict[str, Any]:
    metric = {"Namespace": "N", "MetricName": "m", "Dimensions": []}
    return {
        "Metrics": [{"Id": "m", "ReturnData": True, "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}],
        "EvaluationPeriods": minutes,
        "DatapointsToAlarm": minutes,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }


def test_five_of_five_fires_only_when_five_breaching_minutes_are_visible() -> None:
    store = MetricStore({"N": 2})
    for minute in range(1, 6):
        store.add("N", "m", {}, minute, 1.0)
    # minute 5 ends at 6 and is visible 2 minutes later; from 10 on, the range holds only 4 of them (the
    # minutes after have no data, which is not breaching)
    assert [t for t in range(1, 12) if in_alarm(_alarm(5), store, t)] == [8, 9]


def test_a_good_minute_between_bad_ones_resets_the_count() -> None:
    store = MetricStore({"N": 0})
    for minute, value in enumerate([1.0, 1.0, 0.0, 1.0]):
        store.add("N", "m", {}, minute, value)
    assert not in_alarm(_alarm(2), store, 4)
    store.add("N", "m", {}, 4, 1.0)
    assert in_alarm(_alarm(2), store, 5)


def test_weighted_p95_follows_the_requests() -> None:
    assert weighted_p95([(100.0, 90.0), (300.0, 10.0)]) == 300.0  # 10 % of requests are slow: p95 is slow
    assert weighted_p95([(100.0, 97.0), (300.0, 3.0)]) == 100.0


# ---- sampling noise (the expected-value simulation's blind spot) -----------------------------------------------
def test_binomial_and_run_probabilities() -> None:
    from tools.release_simulator.noise import binomial_sf, p_run, rollback_probabilities

    assert binomial_sf(1, 10, 0.1) == pytest.approx(1 - 0.9**10)
    assert binomial_sf(0, 10, 0.1) == 1.0
    assert binomial_sf(11, 10, 0.1) == 0.0
    assert binomial_sf(130, 6000, 0.021) == pytest.approx(0.376, abs=0.01)  # normal approx.: mean 126, sd 11.1
    assert p_run(0.5, 2, 2) == pytest.approx(0.25)
    assert p_run(1.0, 5, 2) == pytest.approx(1.0)
    assert p_run(0.5, 1, 2) == 0.0
    rule = config("prod").post_settings.rule
    fast, sustained, verdict = rollback_probabilities(rule, 600, 0.10, 10)
    assert fast > 0.99 and sustained > 0.99 and verdict > 0.99
    assert max(rollback_probabilities(rule, 600, 0.001, 10)) < 0.001  # a healthy version is not rolled back
