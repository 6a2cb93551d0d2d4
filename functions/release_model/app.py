"""The release function of statemachines/retrain.asl.json: entry point only (start, follow and guard a
model release; the logic is in the model_release package beside this file).

No shared layer: the standard library and the Lambda runtime's boto3 only (model_release/__init__.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from model_release.config import ReleaseSettings
from model_release.release import handle

settings = ReleaseSettings.from_env()  # cold start: a missing or malformed setting fails the init phase


@cache
def cloudformation() -> Any:
    """One client per execution environment, created by the first invocation."""
    return boto3.client("cloudformation")


def release_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, settings, cloudformation())
