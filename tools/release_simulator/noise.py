"""What the expected-value simulation does not show: sampling noise. With errors drawn per request
(binomial), how likely each per-minute error alarm is to fire at some point during the canary phase, for a
version whose true error rate is r. `python -m tools.release_simulator --noise` prints the table.

The alarms are read from the hooks' own rule (canary.settings.CanaryRule): the fast alarm breaches in a
minute with at least max(fast_min_errors, fast_error_rate * n + 1) errors of n requests, the sustained one
with more than max_error_rate * n; each needs its minutes in a row."""

from __future__ import annotations

import math

from canary.settings import CanaryRule


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)

    def pmf(i: int) -> float:  # in log space: the binomial coefficients of a 6,000-request window overflow
        return math.exp(log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)

    return min(1.0, math.fsum(pmf(i) for i in range(k, n + 1)))


def p_run(p: float, minutes: int, run: int) -> float:
    """P(at least `run` breaching minutes in a row among `minutes`), each breaching with probability p."""
    state = [1.0] + [0.0] * (run - 1)  # probability of the current run length
    hit = 0.0
    for _ in range(minutes):
        new = [0.0] * run
        for length, probability in enumerate(state):
            new[0] += probability * (1 - p)
            if length + 1 >= run:
                hit += probability * p
            else:
                new[length + 1] += probability * p
        state = new
    return hit


def rollback_probabilities(
    rule: CanaryRule, requests_per_minute: int, error_rate: float, minutes: int
) -> tuple[float, float, float]:
    """(fast alarm, sustained error alarm, PostTraffic error verdict) rolling back a version with this true
    error rate during a canary phase of `minutes` (each alone; the verdict on the whole window)."""
    n = requests_per_minute
    fast_k = max(rule.fast_min_errors, math.floor(rule.fast_error_rate * n) + 1)
    sustained_k = math.floor(rule.max_error_rate * n) + 1
    window = n * minutes
    verdict_k = math.floor(rule.max_error_rate * max(window, rule.min_requests)) + 1
    fast = p_run(binomial_sf(fast_k, n, error_rate), minutes, rule.fast_minutes)
    sustained = p_run(binomial_sf(sustained_k, n, error_rate), minutes, rule.sustained_minutes)
    return fast, sustained, binomial_sf(verdict_k, window, error_rate)
