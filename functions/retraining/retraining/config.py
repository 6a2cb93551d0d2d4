"""The retraining tasks' one configuration, read once at cold start (pattern: sentiment_core.settings).

The three task functions share a CodeUri but not their variables: template.yaml gives each only what its
task reads (ValidateDataset the data bucket, ReleaseModel the stack and its deployment role, SmokeTestEndpoint
nothing), so that the function parsing untrusted CSV never holds the deployment role's ARN. A section whose
key variable is absent is None; a task whose section is missing raises ConfigurationError before it does
anything (tests/template checks that each function gets its section's variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_core.settings import ConfigurationError, env_int, env_str


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
    dataset_settings: DatasetSettings | None  # None: no DATA_BUCKET (not the ValidateDataset function)
    release_settings: ReleaseSettings | None  # None: no STACK_NAME (not the ReleaseModel function)

    @property
    def dataset(self) -> DatasetSettings:
        return _configured(self.dataset_settings, "DATA_BUCKET")

    @property
    def release(self) -> ReleaseSettings:
        return _configured(self.release_settings, "STACK_NAME")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainingSettings:
        env = os.environ if env is None else env
        dataset = release = None
        if "DATA_BUCKET" in env:
            dataset = DatasetSettings(
                data_bucket=env_str(env, "DATA_BUCKET"),
                training_prefix=env_str(env, "TRAINING_PREFIX", "training/"),
                max_bytes=env_int(env, "MAX_DATASET_BYTES", 512 << 20, 1, 10 << 30),
                job_name_scope=env_str(env, "JOB_NAME_PREFIX_SCOPE", ""),
            )
        if "STACK_NAME" in env:
            release = ReleaseSettings(
                stack_name=env_str(env, "STACK_NAME"),
                role_arn=env.get("CLOUDFORMATION_ROLE_ARN") or None,
                config_env=env_str(env, "STAGE", "dev"),
            )
        return cls(dataset, release)


def _configured[T](section: T | None, variable: str) -> T:
    if section is None:
        raise ConfigurationError(f"missing required environment variables: {variable}")
    return section
