"""The worst case of the POST /predict and POST /predict/batch paths, from the code's own settings (not from
a run): each call, its timeouts, its attempts, its worst case, and the whole path against the function's
timeout in template.yaml.
Printed by `make bench`; tests/unit/predict/test_latency_budget.py holds the code to it.

The SageMaker call retries only failures that happen before the model (connection, throttling) and only
when a whole further attempt fits before the request's deadline (sentiment_api.deadline), so its worst
case is the larger of one full attempt after the limiter and the request budget."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("layers/core", "layers/api", "functions/predict", "local"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))

from local_stack import template  # noqa: E402
from prediction.config import PredictSettings  # noqa: E402
from sentiment_api import ratelimit  # noqa: E402
from sentiment_api.deadline import ANSWER_RESERVE_S  # noqa: E402
from sentiment_api.endpoint import RETRY_BACKOFF_S  # noqa: E402


@dataclass(frozen=True)
class Row:
    call: str
    timeouts: str
    attempts: str
    worst_s: float


@dataclass(frozen=True)
class Budget:
    rows: list[Row]
    path_worst_s: float
    lambda_timeout_s: float


def predict_settings() -> PredictSettings:
    """The predict function's settings from the template's environment (defaults where it sets none)."""
    function = template.functions({"Stage": "prod", "SageMakerEndpointName": "e", "RateLimitTable": "t"})[
        "PredictFunction"
    ]
    env = function.resolved_environment({"Stage": "prod", "SageMakerEndpointName": "e", "RateLimitTable": "t"})
    return PredictSettings.from_env(env)


def budget(settings: PredictSettings | None = None, batch: bool = False) -> Budget:
    """The worst case of POST /predict, or of POST /predict/batch (its own budget and read timeout)."""
    settings = settings or predict_settings()
    endpoint = settings.endpoint
    budget_s = settings.batch_budget_s if batch else settings.api.request_budget_s
    read_s = endpoint.batch_read_timeout_s if batch else endpoint.read_timeout_s
    limiter_call = ratelimit.CONNECT_TIMEOUT_S + ratelimit.READ_TIMEOUT_S
    limiter_worst = ratelimit.MAX_CALLS_PER_CHECK * limiter_call
    attempt = endpoint.connect_timeout_s + read_s
    # alone: every attempt it may make, but a further one only starts when it fits the deadline
    model_worst = max(
        attempt, min(budget_s, endpoint.max_attempts * attempt + (endpoint.max_attempts - 1) * RETRY_BACKOFF_S)
    )
    rows = [
        Row(
            "DynamoDB UpdateItem (rate limiter)",
            f"{ratelimit.CONNECT_TIMEOUT_S} s connect + {ratelimit.READ_TIMEOUT_S} s read",
            f"1 per call, at most {ratelimit.MAX_CALLS_PER_CHECK} calls",
            limiter_worst,
        ),
        Row(
            "SageMaker InvokeEndpoint" + (" (up to 25 texts)" if batch else ""),
            f"{endpoint.connect_timeout_s} s connect + {read_s} s read",
            f"up to {endpoint.max_attempts}; a retry only before the model (connection, throttling), after "
            f"{RETRY_BACKOFF_S} s, and only if it fits the {budget_s} s deadline; never after a read timeout",
            model_worst,
        ),
        Row("answer (validate, log, return)", f"reserve {ANSWER_RESERVE_S} s", "-", ANSWER_RESERVE_S),
    ]
    path = max(limiter_worst + attempt, budget_s) + ANSWER_RESERVE_S
    timeout = float(template.functions({})["PredictFunction"].timeout_s)
    return Budget(rows, path, timeout)


def main() -> int:
    ok = True
    for route, batch in (("POST /predict", False), ("POST /predict/batch", True)):
        b = budget(batch=batch)
        print(f"latency budget of {route} (worst case, from the code's settings)")
        print("| call | timeouts | attempts | worst case |\n|---|---|---|---|")
        for row in b.rows:
            print(f"| {row.call} | {row.timeouts} | {row.attempts} | {row.worst_s:.2f} s |")
        print(
            f"| whole path | the deadline covers the limiter and the model together | | {b.path_worst_s:.2f} s "
            f"(Lambda timeout {b.lambda_timeout_s:.0f} s) |\n"
        )
        ok = ok and b.path_worst_s <= b.lambda_timeout_s
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
