"""The explain function's configuration, read once at cold start (pattern: sentiment_core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_api import config as api_config
from sentiment_core.settings import env_float, env_str, required


@dataclass(frozen=True, slots=True)
class ExplainSettings:
    api: api_config.ApiSettings
    reports_uri: str  # s3://bucket/prefix/ in the cloud, a folder locally
    live_endpoint: str  # the summary says whether the report is about the model serving now
    budget_s: float = 5.0  # the request's deadline: S3 calls start only inside it (explanation.reports)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExplainSettings:
        env = os.environ if env is None else env
        reports_uri = env.get("REPORTS_URI", "").strip()  # blank is missing, as an empty value is
        required({**env, "REPORTS_URI": reports_uri}, ("REPORTS_URI", "SAGEMAKER_ENDPOINT_NAME", *api_config.REQUIRED))
        return cls(
            api=api_config.ApiSettings.from_env(env),
            reports_uri=reports_uri,
            live_endpoint=env_str(env, "SAGEMAKER_ENDPOINT_NAME"),
            # its own name: the local stack gives every API function one environment, and /predict's budget
            # (REQUEST_BUDGET_S) is sized to the latency objective, this one to the 6 s timeout
            budget_s=env_float(env, "EXPLAIN_REQUEST_BUDGET_S", 5.0, 0.5, 30.0),
        )
