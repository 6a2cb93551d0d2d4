"""POST /predict and POST /predict/batch: entry point only. The use cases are prediction.usecase (this
folder); the request path they share with GET /explain is the sentiment_api layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from prediction.cache import CachedEndpoint
from prediction.config import PredictSettings
from prediction.usecase import predict as predict_sentiment
from prediction.usecase import predict_batch
from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SageMakerEndpoint, SentimentEndpoint
from sentiment_api.http import create_resolver, handle, ok
from sentiment_api.observability import logger, metrics, tracer
from sentiment_api.ratelimit import DynamoDbRateLimiter

settings = PredictSettings.from_env()  # cold start: fails the init phase when configuration is missing
endpoint = CachedEndpoint.wrap(
    SageMakerEndpoint.from_settings(settings.endpoint), settings.endpoint.name, settings.cache
)
limiter = DynamoDbRateLimiter.from_settings(settings.api.rate_limit)
metrics.set_default_dimensions(Stage=settings.api.stage)
app = create_resolver(limiter, fail_open=settings.api.rate_limit.fail_open)


UseCase = Callable[[str | None, bool, str | None, str, SentimentEndpoint, Deadline], dict[str, Any]]


def answer(use_case: UseCase) -> Response:
    """The current request's body, encoding, content type, correlation id and deadline (the batch route's is
    BATCH_REQUEST_BUDGET_S, set in handle) through ``use_case``, and its 200."""
    event = app.current_event
    body = use_case(
        event.body,
        bool(event.is_base64_encoded),
        event.headers.get("content-type"),
        app.context["correlation_id"],
        endpoint,
        app.context["deadline"],
    )
    return ok(body, app)


@app.post("/predict")
def predict() -> Response:
    return answer(predict_sentiment)


@app.post("/predict/batch")
def predict_many() -> Response:
    return answer(predict_batch)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, settings.api.request_budget_s, {"/predict/batch": settings.batch_budget_s})
