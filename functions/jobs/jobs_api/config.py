"""The jobs API function's configuration, read once at cold start (pattern: sentiment_core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_api import config as api_config
from sentiment_core.settings import env_float, env_int, env_str, required

#: create_job_request.json says the same (size_bytes maximum).
MAX_INPUT_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class JobsSettings:
    api: api_config.ApiSettings
    table: str
    bucket: str
    state_machine_arn: str
    endpoint_name: str  # the endpoint serving now: a job started now uses it to its end
    max_input_bytes: int
    retention_days: int  # the job record's TTL; the bucket's lifecycle rule expires the objects alike
    upload_url_ttl_s: int
    result_url_ttl_s: int
    budget_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobsSettings:
        env = os.environ if env is None else env
        names = ("JOBS_TABLE_NAME", "JOBS_BUCKET_NAME", "JOBS_STATE_MACHINE_ARN", "SAGEMAKER_ENDPOINT_NAME")
        required(env, (*names, *api_config.REQUIRED))
        return cls(
            api=api_config.ApiSettings.from_env(env),
            table=env_str(env, "JOBS_TABLE_NAME"),
            bucket=env_str(env, "JOBS_BUCKET_NAME"),
            state_machine_arn=env_str(env, "JOBS_STATE_MACHINE_ARN"),
            endpoint_name=env_str(env, "SAGEMAKER_ENDPOINT_NAME"),
            max_input_bytes=env_int(env, "JOB_MAX_INPUT_BYTES", MAX_INPUT_BYTES, 1024, MAX_INPUT_BYTES),
            retention_days=env_int(env, "JOB_RETENTION_DAYS", 7, 1, 365),
            upload_url_ttl_s=env_int(env, "JOB_UPLOAD_URL_TTL_S", 900, 60, 3600),
            result_url_ttl_s=env_int(env, "JOB_RESULT_URL_TTL_S", 3600, 60, 12 * 3600),
            budget_s=env_float(env, "JOBS_REQUEST_BUDGET_S", 5.0, 0.5, 30.0),
        )
