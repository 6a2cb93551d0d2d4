"""Prints one line per scenario and traffic level (stdout), the assumptions (stderr):

    scenario=<name>_<level> outcome=<rolled_back|promoted> max_share_pct=<..> exposure_pct_min=<..>
    decided_at_min=<..>

    python -m tools.release_simulator [--stage prod|dev] [--lag 2] [--lambda-lag 1] [--markdown] [--check]
    python -m tools.release_simulator --noise     # the per-minute alarms under sampling noise (noise.py)

--check exits 1 when a scenario does not end as the stage's settings promise (deploy/README.md)."""

from __future__ import annotations

import argparse
import sys
import time

from .noise import rollback_probabilities
from .scenarios import SCENARIOS, TRAFFIC_LEVELS, Scenario, at_level
from .simulate import CODEDEPLOY_ALARM_POLL_MIN, ReleaseConfig, Result, Simulation, load_config

DEFAULT_LAG_MIN = 2  # request metrics: EMF through CloudWatch Logs (the PostTraffic hook waits 3 minutes)
DEFAULT_LAMBDA_LAG_MIN = 1  # AWS/Lambda platform metrics


def expected(scenario: Scenario, config: ReleaseConfig) -> str:
    low_traffic_promotes = config.post_settings.rule.low_traffic_verdict == "promote"
    if scenario.expect_promote or (low_traffic_promotes and scenario.name in ("zero_traffic", "low_traffic")):
        return "promoted"
    return "rolled_back"


# The spec's sustained rules need 5 minutes of data + the lag + CodeDeploy's poll inside the canary phase.
SUSTAINED_FITS_FROM_MIN = 9


def within_canary(scenario: Scenario, config: ReleaseConfig) -> bool:
    """Whether the scenario must start rolling back while the new version holds only the canary share."""
    return scenario.clear_failure or (scenario.sustained and config.canary_interval_min >= SUSTAINED_FITS_FROM_MIN)


def problems(scenario: Scenario, result: Result, config: ReleaseConfig) -> list[str]:
    found = []
    if result.outcome != expected(scenario, config):
        found.append(f"{result.outcome}, expected {expected(scenario, config)}")
    if within_canary(scenario, config) and result.max_share_pct > config.canary_percent:
        found.append(f"held {result.max_share_pct:g} % before rolling back (at most {config.canary_percent:g})")
    return found


NOISE_ERROR_RATES = (0.001, 0.01, 0.019, 0.021, 0.05, 0.10)


def print_noise(config: ReleaseConfig) -> None:
    rule, minutes = config.post_settings.rule, config.canary_interval_min
    print(f"P(rollback) of a version by its true 5xx rate, errors drawn per request, {minutes}-minute canary")
    print("| canary requests/min | true 5xx rate | fast alarm | sustained alarm | PostTraffic verdict |")
    print("|---:|---:|---:|---:|---:|")
    for level, rps in TRAFFIC_LEVELS.items():
        n = round(rps * 60 * config.canary_percent / 100)
        for rate in NOISE_ERROR_RATES:
            fast, sustained, verdict = rollback_probabilities(rule, n, rate, minutes)
            print(f"| {n} ({level}) | {rate:.1%} | {fast:.1%} | {sustained:.1%} | {verdict:.1%} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release_simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="prod", help="samconfig.toml environment whose parameters apply")
    parser.add_argument("--lag", type=int, default=DEFAULT_LAG_MIN, help="request-metric lag, minutes")
    parser.add_argument("--lambda-lag", type=int, default=DEFAULT_LAMBDA_LAG_MIN, help="AWS/Lambda lag, minutes")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table instead of the lines")
    parser.add_argument("--check", action="store_true", help="exit 1 if a scenario breaks its expectation")
    parser.add_argument("--noise", action="store_true", help="the per-minute alarms under sampling noise instead")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    config = load_config(args.stage)
    if args.noise:
        print_noise(config)
        return 0
    print(
        f"# stage {config.stage}: canary {config.canary_percent:g} % for {config.canary_interval_min} min, "
        f"alarms watched: {len(config.watched_alarms)}, low-traffic verdict "
        f"{config.post_settings.rule.low_traffic_verdict}; request-metric lag {args.lag} min, AWS/Lambda lag "
        f"{args.lambda_lag} min, CodeDeploy sees an alarm within {CODEDEPLOY_ALARM_POLL_MIN} min; traffic "
        + ", ".join(f"{level} {rps:g} req/s" for level, rps in TRAFFIC_LEVELS.items()),
        file=sys.stderr,
    )
    if args.markdown:
        print("| scenario | outcome | max share % | exposure %·min | decided at min | why |")
        print("|---|---|---:|---:|---:|---|")
    failures = []
    for scenario in SCENARIOS:
        for level in TRAFFIC_LEVELS:
            name, rps = at_level(scenario, level)
            result = Simulation(config, scenario, rps, args.lag, args.lambda_lag).run()
            if args.markdown:
                print(
                    f"| {name} | {result.outcome} | {result.max_share_pct:g} | {result.exposure_pct_min:g} | "
                    f"{result.decided_at_min:g} | {result.reason} |"
                )
            else:
                print(result.line(name))
            failures += [f"{name}: {problem}" for problem in problems(scenario, result, config)]
    print(f"# {len(SCENARIOS) * len(TRAFFIC_LEVELS)} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for failure in failures:
        print(f"# UNEXPECTED {failure}", file=sys.stderr)
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
