"""AWS clients for the API functions, made with botocore directly: boto3 adds nothing these functions use
(no resources, no transfers), and importing it pulls in s3transfer, a sizeable part of every cold start
(bench/cold_import.py). botocore reads the same environment as boto3 (region, credentials, and the
AWS_ENDPOINT_URL_<SERVICE> overrides that the local stack sets).

In Lambda the endpoint overrides and proxy variables are ignored: whoever may change a function's environment
without changing its code (the model-release role may: docs/security.md, "Trust boundary of a model release")
must not be able to send callers' text to another host. Lambda is told apart by AWS_LAMBDA_FUNCTION_VERSION,
which the runtime sets and a function's configuration cannot (a reserved variable)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

IN_LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_VERSION"  # reserved: set by the runtime only
LAMBDA_ONLY = Config(ignore_configured_endpoint_urls=True, proxies={})


def client(service: str, config: Config, env: Mapping[str, str] | None = None) -> Any:
    env = os.environ if env is None else env
    if env.get(IN_LAMBDA_ENV):
        config = config.merge(LAMBDA_ONLY)
    return botocore.session.get_session().create_client(service, config=config)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call ("" when the answer had none). Code decides on this, never on
    the message, which is for people and may name resources."""
    return str(exc.response.get("Error", {}).get("Code", ""))
