"""The hooks' configuration, read once at cold start (pattern: sentiment_core.settings), and the canary rule.

The rule (spec section 6): roll back when the new version's p95 latency exceeds the stable version's by
more than 30 %, or its error rate exceeds 2 %, sustained for 5 minutes. Beside it, what stops a clear
failure while the new version holds only the canary share (deploy/README.md, "What a release looks like"):
a 5xx rate over 5 % with at least 2 errors in 2 minutes in a row, the same for unhandled errors and timeouts
(AWS/Lambda), a 4xx rate 5 points above the stable version's, and (in the verdict) invocations that publish
no request metrics. Its defaults are DEFAULT_RULE; template.yaml sets
each one explicitly. `make simulate-release` shows what these numbers do over time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_core.settings import env_choice, env_float, env_int, env_str, required

PROMOTE, ROLLBACK, INCONCLUSIVE = "promote", "rollback", "inconclusive"


@dataclass(frozen=True, slots=True)
class CanaryRule:
    max_latency_ratio: float  # canary p95 / stable p95
    max_error_rate: float  # canary (5xx + unhandled errors) / requests
    window_minutes: int  # the canary phase (template parameter CanaryIntervalMinutes): what PostTraffic judges
    min_requests: int  # per side, to judge at all
    low_traffic_verdict: str  # PROMOTE | ROLLBACK when there is too little traffic to judge
    sustained_minutes: int = 5  # "sustained for 5 minutes": datapoints of the two rule alarms
    fast_error_rate: float = 0.05  # a clear failure: above this ...
    fast_min_errors: int = 2  # ... with at least this many errors in a minute ...
    fast_minutes: int = 2  # ... this many minutes in a row
    max_4xx_increase: float = 0.05  # canary 4xx rate - stable 4xx rate (absolute), fast_minutes in a row
    min_4xx: int = 3  # canary 4xx in a minute (alarm) or the window (verdict) before the increase counts
    min_requests_per_minute: int = 20  # of each version, before a minute's 4xx rates are compared
    min_metric_coverage: float = 0.5  # requests published / invocations of the canary through the alias


DEFAULT_RULE = CanaryRule(
    max_latency_ratio=1.3, max_error_rate=0.02, window_minutes=5, min_requests=50, low_traffic_verdict=PROMOTE
)
DEFAULT_METRIC_LAG_S = 180


@dataclass(frozen=True, slots=True)
class HookSettings:
    function_name: str  # the predict function (physical name); a deployment of anything else is refused
    alias: str
    stage: str
    namespace: str
    latency_alarm: str
    error_alarm: str
    fast_error_alarm: str
    client_error_alarm: str
    unhandled_errors_alarm: str
    alarm_topic_arn: str
    rule: CanaryRule
    metric_lag_s: int

    @property
    def alarm_names(self) -> tuple[str, ...]:
        """Every rollback alarm the hooks arm and disarm (template.yaml lists the same in the deployment
        group, which is what CodeDeploy watches)."""
        return (
            self.latency_alarm,
            self.error_alarm,
            self.fast_error_alarm,
            self.client_error_alarm,
            self.unhandled_errors_alarm,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HookSettings:
        env = os.environ if env is None else env
        required(
            env,
            (
                "PREDICT_FUNCTION_NAME",
                "PREDICT_ALIAS",
                "STAGE",
                "POWERTOOLS_METRICS_NAMESPACE",
                "POWERTOOLS_SERVICE_NAME",
                "CANARY_LATENCY_ALARM",
                "CANARY_ERROR_ALARM",
                "CANARY_FAST_ERROR_ALARM",
                "CANARY_CLIENT_ERROR_ALARM",
                "CANARY_UNHANDLED_ERRORS_ALARM",
                "ALARM_TOPIC_ARN",
            ),
        )
        d = DEFAULT_RULE
        rule = CanaryRule(
            max_latency_ratio=env_float(env, "CANARY_MAX_LATENCY_RATIO", d.max_latency_ratio, 1.0, 10.0),
            max_error_rate=env_float(env, "CANARY_MAX_ERROR_RATE", d.max_error_rate, 0.0, 1.0),
            window_minutes=env_int(env, "CANARY_WINDOW_MINUTES", d.window_minutes, 1, 60),
            min_requests=env_int(env, "CANARY_MIN_REQUESTS", d.min_requests, 1, 1_000_000),
            low_traffic_verdict=env_choice(
                env, "CANARY_LOW_TRAFFIC_VERDICT", d.low_traffic_verdict, (PROMOTE, ROLLBACK)
            ),
            sustained_minutes=env_int(env, "CANARY_SUSTAINED_MINUTES", d.sustained_minutes, 1, 60),
            fast_error_rate=env_float(env, "CANARY_FAST_ERROR_RATE", d.fast_error_rate, 0.0, 1.0),
            fast_min_errors=env_int(env, "CANARY_FAST_MIN_ERRORS", d.fast_min_errors, 1, 1_000_000),
            fast_minutes=env_int(env, "CANARY_FAST_MINUTES", d.fast_minutes, 1, 10),
            max_4xx_increase=env_float(env, "CANARY_MAX_4XX_INCREASE", d.max_4xx_increase, 0.0, 1.0),
            min_4xx=env_int(env, "CANARY_MIN_4XX", d.min_4xx, 1, 1_000_000),
            min_requests_per_minute=env_int(
                env, "CANARY_MIN_REQUESTS_PER_MINUTE", d.min_requests_per_minute, 1, 1_000_000
            ),
        )
        return cls(
            function_name=env_str(env, "PREDICT_FUNCTION_NAME"),
            alias=env_str(env, "PREDICT_ALIAS"),
            stage=env_str(env, "STAGE"),
            namespace=env_str(env, "POWERTOOLS_METRICS_NAMESPACE"),
            latency_alarm=env_str(env, "CANARY_LATENCY_ALARM"),
            error_alarm=env_str(env, "CANARY_ERROR_ALARM"),
            fast_error_alarm=env_str(env, "CANARY_FAST_ERROR_ALARM"),
            client_error_alarm=env_str(env, "CANARY_CLIENT_ERROR_ALARM"),
            unhandled_errors_alarm=env_str(env, "CANARY_UNHANDLED_ERRORS_ALARM"),
            alarm_topic_arn=env_str(env, "ALARM_TOPIC_ARN"),
            rule=rule,
            metric_lag_s=env_int(env, "CANARY_METRIC_LAG_S", DEFAULT_METRIC_LAG_S, 0, 600),
        )
