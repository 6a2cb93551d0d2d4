"""Configuration, read once at cold start into a frozen, typed object. Missing or malformed settings
fail the init phase loudly, never a request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Settings:
    endpoint_name: str
    stage: str
    service_name: str
    metrics_namespace: str
    rate_limit_table: str
    connect_timeout_s: float = 0.25
    read_timeout_s: float = 0.5
    max_attempts: int = 2
    rate_limit_per_minute: int = 100
    rate_limit_burst: int = 200
    rate_limit_fail_open: bool = True


def _number(env: Mapping[str, str], name: str, parse: type[int] | type[float], default: float,
            low: float, high: float) -> float:
    raw = env.get(name, "")
    try:
        value = parse(raw) if raw else default
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise ConfigurationError(f"{name}={raw!r} is not {kind}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} must be between {low} and {high}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """An optional numeric setting within [low, high]; malformed or out-of-range values fail at init."""
    return float(_number(env, name, float, default, low, high))


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An optional integer setting within [low, high]; malformed or out-of-range values fail at init."""
    return int(_number(env, name, int, default, low, high))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    required = ("SAGEMAKER_ENDPOINT_NAME", "STAGE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
                "RATE_LIMIT_TABLE_NAME")
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing required environment variables: {', '.join(missing)}")
    return Settings(
        endpoint_name=env["SAGEMAKER_ENDPOINT_NAME"],
        stage=env["STAGE"],
        service_name=env["POWERTOOLS_SERVICE_NAME"],
        metrics_namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
        connect_timeout_s=env_float(env, "SAGEMAKER_CONNECT_TIMEOUT_S", 0.25, 0.01, 5.0),
        read_timeout_s=env_float(env, "SAGEMAKER_READ_TIMEOUT_S", 0.5, 0.01, 10.0),
        max_attempts=env_int(env, "SAGEMAKER_MAX_ATTEMPTS", 2, 1, 5),
        rate_limit_table=env["RATE_LIMIT_TABLE_NAME"],
        rate_limit_per_minute=env_int(env, "RATE_LIMIT_PER_MINUTE", 100, 1, 60_000),
        rate_limit_burst=env_int(env, "RATE_LIMIT_BURST", 200, 1, 100_000),
        rate_limit_fail_open=_fail_mode(env.get("RATE_LIMIT_FAIL_MODE", "open")),
    )


def _fail_mode(raw: str) -> bool:
    if raw not in ("open", "closed"):
        raise ConfigurationError(f"RATE_LIMIT_FAIL_MODE={raw!r} must be 'open' or 'closed'")
    return raw == "open"
