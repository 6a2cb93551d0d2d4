"""The worst case of the POST /predict path (bench/latency_budget.py, docs/architecture.md) holds: within
the function's timeout with room to answer, and each figure matches what the code does."""

from __future__ import annotations

import pytest
from prediction.config import PredictSettings

from bench.latency_budget import budget, predict_settings
from tests.helpers import FUNCTION_ENV


def test_the_whole_path_ends_before_lambda_would_kill_it() -> None:
    b = budget()
    assert b.path_worst_s <= b.lambda_timeout_s - 1.0  # a second to spare: cold start, GC, a slow log flush
    assert [row.worst_s for row in b.rows] == [0.75, 1.5, 0.25]


def test_the_batch_path_ends_a_second_before_lambda_would_kill_it() -> None:
    b = budget(batch=True)
    assert b.path_worst_s == 2.5 + 0.25
    assert b.path_worst_s <= b.lambda_timeout_s - 1.0
    assert [row.worst_s for row in b.rows] == [0.75, 2.5, 0.25]  # a connect failure is retried inside 2.5 s


def test_the_template_sets_what_the_budget_assumes() -> None:
    settings = predict_settings()
    assert settings.api.request_budget_s == 1.5
    assert (settings.endpoint.connect_timeout_s, settings.endpoint.read_timeout_s) == (0.25, 0.5)
    assert settings.endpoint.max_attempts == 2


def test_a_bigger_budget_moves_the_worst_case_with_it() -> None:
    settings = PredictSettings.from_env({**FUNCTION_ENV, "REQUEST_BUDGET_S": "2.5", "SAGEMAKER_MAX_ATTEMPTS": "3"})
    b = budget(settings)
    assert b.path_worst_s == 2.5 + 0.25
    assert b.rows[1].worst_s == pytest.approx(3 * 0.75 + 2 * 0.05)  # all three attempts fit in 2.5 s
