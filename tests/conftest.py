"""Shared fixtures; the helpers they use live in tests/helpers.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.helpers import FakeContext, load_event


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
