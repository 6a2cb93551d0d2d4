"""The predict function's configuration, read once at cold start (pattern: sentiment_core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_api import config as api_config
from sentiment_api.endpoint import EndpointSettings
from sentiment_core.settings import ConfigurationError, env_choice, env_float, env_int, env_str, required


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The in-memory answer cache of each execution environment (prediction.cache)."""

    enabled: bool
    max_entries: int
    max_bytes: int
    ttl_s: float


@dataclass(frozen=True, slots=True)
class PredictSettings:
    api: api_config.ApiSettings
    endpoint: EndpointSettings
    batch_budget_s: float  # POST /predict/batch: the request's deadline (one endpoint call of up to 25 texts)
    cache: CacheSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PredictSettings:
        env = os.environ if env is None else env
        required(env, ("SAGEMAKER_ENDPOINT_NAME", *api_config.REQUIRED))
        settings = cls(
            api=api_config.ApiSettings.from_env(env),
            endpoint=EndpointSettings(
                name=env_str(env, "SAGEMAKER_ENDPOINT_NAME"),
                connect_timeout_s=env_float(env, "SAGEMAKER_CONNECT_TIMEOUT_S", 0.25, 0.01, 5.0),
                read_timeout_s=env_float(env, "SAGEMAKER_READ_TIMEOUT_S", 0.5, 0.01, 10.0),
                max_attempts=env_int(env, "SAGEMAKER_MAX_ATTEMPTS", 2, 1, 5),
                batch_read_timeout_s=env_float(env, "SAGEMAKER_BATCH_READ_TIMEOUT_S", 1.5, 0.01, 20.0),
            ),
            batch_budget_s=env_float(env, "BATCH_REQUEST_BUDGET_S", 2.5, 0.1, 30.0),
            cache=CacheSettings(
                enabled=env_choice(env, "PREDICTION_CACHE", "on", ("on", "off")) == "on",
                max_entries=env_int(env, "PREDICTION_CACHE_MAX_ENTRIES", 10_000, 1, 1_000_000),
                max_bytes=env_int(env, "PREDICTION_CACHE_MAX_BYTES", 4 * 1024 * 1024, 1024, 512 * 1024 * 1024),
                ttl_s=env_float(env, "PREDICTION_CACHE_TTL_S", 300.0, 1.0, 86_400.0),
            ),
        )
        for name, budget, attempt in (
            ("REQUEST_BUDGET_S", settings.api.request_budget_s, settings.endpoint.attempt_s),
            ("BATCH_REQUEST_BUDGET_S", settings.batch_budget_s, settings.endpoint.batch_attempt_s),
        ):
            if budget < attempt:
                raise ConfigurationError(
                    f"{name}={budget} cannot hold one SageMaker attempt (connect + read timeout = {attempt} s)"
                )
        return settings
