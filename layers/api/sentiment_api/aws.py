"""AWS clients for the API functions, made with botocore directly: boto3 adds nothing these functions use
(no resources, no transfers), and importing it pulls in s3transfer, a sizeable part of every cold start
(bench/cold_import.py). botocore reads the same environment as boto3 (region, credentials, and the
AWS_ENDPOINT_URL_<SERVICE> overrides that the local stack sets)."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError


def client(service: str, config: Config) -> Any:
    return botocore.session.get_session().create_client(service, config=config)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call ("" when the answer had none). Code decides on this, never on
    the message, which is for people and may name resources."""
    return str(exc.response.get("Error", {}).get("Code", ""))
