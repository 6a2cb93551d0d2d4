"""Configuration every API function shares, read once at cold start (the pattern: sentiment_core.settings).
Each function adds its own settings beside these (functions/predict, functions/explain)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_core.settings import env_choice, env_float, env_int, env_str, required

#: powertools reads the two POWERTOOLS_* itself; they are required so that no metric goes to a default namespace.
REQUIRED = ("STAGE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "RATE_LIMIT_TABLE_NAME")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    table: str
    per_minute: int
    burst: int
    fail_open: bool


@dataclass(frozen=True, slots=True)
class ApiSettings:
    stage: str
    rate_limit: RateLimitSettings
    request_budget_s: float  # per request, for every dependency call together (sentiment_api.deadline)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        required(env, REQUIRED)
        return cls(
            stage=env_str(env, "STAGE"),
            request_budget_s=env_float(env, "REQUEST_BUDGET_S", 1.5, 0.1, 30.0),
            rate_limit=RateLimitSettings(
                table=env_str(env, "RATE_LIMIT_TABLE_NAME"),
                per_minute=env_int(env, "RATE_LIMIT_PER_MINUTE", 100, 1, 60_000),
                burst=env_int(env, "RATE_LIMIT_BURST", 200, 1, 100_000),
                fail_open=env_choice(env, "RATE_LIMIT_FAIL_MODE", "open", ("open", "closed")) == "open",
            ),
        )
