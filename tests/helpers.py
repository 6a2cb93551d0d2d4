"""Test helpers shared by every test package.

Function entry points are loaded by file path (each lives in its own folder as app.py, as Lambda sees
them); the layer, local stack and model packages come from pyproject's pythonpath."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

# The configuration a deployed function gets from template.yaml (tests/template checks the names match).
FUNCTION_ENV = {
    "SAGEMAKER_ENDPOINT_NAME": "sentiment-test",
    "STAGE": "test",
    "POWERTOOLS_SERVICE_NAME": "sentiment-api",
    "POWERTOOLS_METRICS_NAMESPACE": "SentimentApi",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "RATE_LIMIT_TABLE_NAME": "sentiment-test-rate-limits",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def load_function(name: str, env: dict[str, str] | None = None) -> ModuleType:
    """Imports functions/<name>/app.py under a unique module name, with the function's environment."""
    path = ROOT / "functions" / name / "app.py"
    saved = {k: os.environ.get(k) for k in FUNCTION_ENV | (env or {})}
    os.environ.update(FUNCTION_ENV | (env or {}))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_app_under_test", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text("utf-8"))


class FakeContext:
    function_name = "sentiment-api-PredictFunction"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sentiment-api-PredictFunction:live"
    memory_limit_in_mb = 512
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    log_group_name = "/aws/lambda/sentiment-api-PredictFunction"
    log_stream_name = "2026/11/26/[1]abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 3000


def create_rate_limit_table(client: Any, name: str) -> None:
    """The rate-limit table as template.yaml defines it (key schema checked by tests/template)."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
