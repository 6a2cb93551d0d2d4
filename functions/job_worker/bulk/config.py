"""The jobs worker's configuration, read once at cold start (pattern: sentiment_core.settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_api.endpoint import EndpointSettings
from sentiment_core.settings import env_float, env_int, env_str, required

REQUIRED = ("STAGE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "JOBS_TABLE_NAME", "JOBS_BUCKET_NAME")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    stage: str
    table: str
    bucket: str
    max_rows: int  # rows of one job's file
    max_input_bytes: int  # bytes of one job's file (the start checks it too)
    chunk_rows: int  # rows per chunk: one Map iteration, one scored object
    batch_texts: int  # texts per InvokeEndpoint call (the API's batch size)
    batch_attempts: int  # attempts per call for a busy or unreachable endpoint, with backoff
    backoff_s: float  # first backoff; doubles per attempt
    endpoint_connect_timeout_s: float
    endpoint_read_timeout_s: float

    def endpoint(self, name: str) -> EndpointSettings:
        """The endpoint the job was pinned to at start, with the worker's timeouts (one attempt per call:
        the worker retries, with backoff, in bulk.steps)."""
        return EndpointSettings(
            name=name,
            connect_timeout_s=self.endpoint_connect_timeout_s,
            read_timeout_s=self.endpoint_read_timeout_s,
            max_attempts=1,
            batch_read_timeout_s=self.endpoint_read_timeout_s,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        required(env, REQUIRED)
        return cls(
            stage=env_str(env, "STAGE"),
            table=env_str(env, "JOBS_TABLE_NAME"),
            bucket=env_str(env, "JOBS_BUCKET_NAME"),
            max_rows=env_int(env, "JOB_MAX_ROWS", 1_000_000, 1, 10_000_000),
            max_input_bytes=env_int(env, "JOB_MAX_INPUT_BYTES", 100 * 1024 * 1024, 1024, 100 * 1024 * 1024),
            chunk_rows=env_int(env, "JOB_CHUNK_ROWS", 1_000, 25, 100_000),
            batch_texts=env_int(env, "JOB_BATCH_TEXTS", 25, 1, 25),
            batch_attempts=env_int(env, "JOB_BATCH_ATTEMPTS", 4, 1, 10),
            backoff_s=env_float(env, "JOB_BACKOFF_S", 1.0, 0.0, 60.0),
            endpoint_connect_timeout_s=env_float(env, "JOB_ENDPOINT_CONNECT_TIMEOUT_S", 1.0, 0.05, 10.0),
            endpoint_read_timeout_s=env_float(env, "JOB_ENDPOINT_READ_TIMEOUT_S", 10.0, 0.1, 60.0),
        )
