"""The retraining tasks of statemachines/retrain.asl.json: entry points only (one CodeUri, two functions).
The logic is in the retraining package beside this file. The release task has its own CodeUri and no shared
layer (functions/release_model/)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from retraining.config import RetrainingSettings
from retraining.dataset import validate
from retraining.observability import logger
from retraining.smoke import CLIENT_CONFIG, smoke_test

# Cold start: a malformed setting fails the init phase; a task whose own section is absent raises
# ConfigurationError at its first call (retraining/config.py).
settings = RetrainingSettings.from_env()


@cache
def client(service: str) -> Any:
    """One client per service and execution environment, created by the first task that needs it."""
    return boto3.client(service, config=CLIENT_CONFIG) if service == "sagemaker-runtime" else boto3.client(service)


@logger.inject_lambda_context
def validate_dataset(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return validate(event, settings.dataset, client("s3"))


@logger.inject_lambda_context
def smoke_test_endpoint(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return smoke_test(str(event["endpoint_name"]), client("sagemaker-runtime"))
