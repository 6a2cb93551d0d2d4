"""The retraining tasks' one configuration, read once at cold start (pattern: sentiment_core.settings).

The two task functions share a CodeUri but not their variables: template.yaml gives each only what its task
reads (ValidateDataset the data bucket, SmokeTestEndpoint nothing). A section whose key variable is absent is
None; a task whose section is missing raises ConfigurationError before it does anything (tests/template
checks that each function gets its section's variables). The release function has its own settings
(functions/release_model/model_release/config.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sentiment_core.settings import ConfigurationError, env_int, env_str


@dataclass(frozen=True, slots=True)
class DatasetSettings:
    data_bucket: str
    training_prefix: str  # the only prefix the SageMaker execution role reads
    max_bytes: int  # at most 5 GiB: the validated object is copied by one CopyObject
    job_name_scope: str  # the state machine's IAM policy covers resource names starting with this

    @property
    def runs_prefix(self) -> str:
        """Where each run's copy of its validated data lives (only ValidateDataset may write there)."""
        return f"{self.training_prefix}runs/"


@dataclass(frozen=True, slots=True)
class RetrainingSettings:
    dataset_settings: DatasetSettings | None  # None: no DATA_BUCKET (not the ValidateDataset function)

    @property
    def dataset(self) -> DatasetSettings:
        return _configured(self.dataset_settings, "DATA_BUCKET")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetrainingSettings:
        env = os.environ if env is None else env
        dataset = None
        if "DATA_BUCKET" in env:
            dataset = DatasetSettings(
                data_bucket=env_str(env, "DATA_BUCKET"),
                training_prefix=env_str(env, "TRAINING_PREFIX", "training/"),
                max_bytes=env_int(env, "MAX_DATASET_BYTES", 512 << 20, 1, 5 << 30),
                job_name_scope=env_str(env, "JOB_NAME_PREFIX_SCOPE", ""),
            )
        return cls(dataset)


def _configured[T](section: T | None, variable: str) -> T:
    if section is None:
        raise ConfigurationError(f"missing required environment variables: {variable}")
    return section
