"""Fixtures shared by the unit tests that run the predict function in-process."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from tests.helpers import FUNCTION_ENV, create_rate_limit_table, load_function


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    """One moto account for the module: the rate-limit table exists, SageMaker answers are scripted."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_limit_table(dynamodb, FUNCTION_ENV["RATE_LIMIT_TABLE_NAME"])
        yield


@pytest.fixture(scope="module")
def predict(aws: None) -> ModuleType:
    """functions/predict/app.py, loaded inside the module's moto account."""
    return load_function("predict")
