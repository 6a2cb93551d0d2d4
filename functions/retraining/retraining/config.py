"""The retraining tasks' one configuration, read once at cold start (pattern: sentiment_core.settings).
template.yaml gives the three task functions the same variables, so each function fails its init phase the
same way when one is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_core.settings import env_int, env_str, required


@dataclass(frozen=True, slots=True)
class DatasetSettings:
    data_bucket: str
    training_prefix: str  # the only prefix the SageMaker execution role reads
    max_bytes: int
    job_name_scope: str  # the state machine's IAM policy covers resource names starting with this


@dataclass(frozen=True, slots=True)
class ReleaseSettings:
    stack_name: str
    role_arn: str | None  # the stack's deployment role; None: the release is manual
    config_env: str  # samconfig.toml environment of the manual `sam deploy`


@dataclass(frozen=True, slots=True)
class RetrainingSettings:
    dataset: DatasetSettings
    release: ReleaseSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainingSettings:
        env = os.environ if env is None else env
        required(env, ("DATA_BUCKET", "STACK_NAME"))
        return cls(
            dataset=DatasetSettings(
                data_bucket=env_str(env, "DATA_BUCKET"),
                training_prefix=env_str(env, "TRAINING_PREFIX", "training/"),
                max_bytes=env_int(env, "MAX_DATASET_BYTES", 512 << 20, 1, 10 << 30),
                job_name_scope=env.get("JOB_NAME_PREFIX_SCOPE", ""),
            ),
            release=ReleaseSettings(
                stack_name=env_str(env, "STACK_NAME"),
                role_arn=env.get("CLOUDFORMATION_ROLE_ARN") or None,
                config_env=env_str(env, "STAGE", "dev"),
            ),
        )
