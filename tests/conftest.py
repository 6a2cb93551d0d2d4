"""Shared fixtures; the helpers they use live in tests/helpers.py.

powertools reads POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE once, when a module creates its
Logger or Metrics: the test process gets the values template.yaml's Globals give every function before any
test module imports one (like a Lambda execution environment, which has them before the code loads)."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from tests.helpers import FUNCTION_ENV, FakeContext, load_event

for _name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED"):
    os.environ.setdefault(_name, FUNCTION_ENV[_name])


@pytest.fixture
def event() -> Any:
    """event("predict-positive", body=..., headers={...}) -> a fresh copy of events/<name>.json, varied."""

    def make(name: str = "predict-positive", **changes: Any) -> dict[str, Any]:
        data = copy.deepcopy(load_event(name))
        headers = changes.pop("headers", None)
        if headers is not None:
            data["headers"].update(headers)
            data["headers"] = {k: v for k, v in data["headers"].items() if v is not None}
        data.update(changes)
        return data

    return make


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()
