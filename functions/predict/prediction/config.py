"""The predict function's configuration, read once at cold start (pattern: sentiment_core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_api import config as api_config
from sentiment_core.settings import ConfigurationError, env_float, env_int, env_str, required


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    name: str
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int  # total attempts, each further one only inside the request's deadline (endpoint.py)

    @property
    def attempt_s(self) -> float:
        """The worst case of one attempt: connect and read timeouts."""
        return self.connect_timeout_s + self.read_timeout_s


@dataclass(frozen=True, slots=True)
class PredictSettings:
    api: api_config.ApiSettings
    endpoint: EndpointSettings

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
            ),
        )
        if settings.api.request_budget_s < settings.endpoint.attempt_s:
            raise ConfigurationError(
                f"REQUEST_BUDGET_S={settings.api.request_budget_s} cannot hold one SageMaker attempt "
                f"(connect + read timeout = {settings.endpoint.attempt_s} s)"
            )
        return settings
