"""POST /predict: entry point only. The use case is prediction.usecase (this folder); the request path it
shares with GET /explain is the sentiment_api layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from prediction.config import PredictSettings
from prediction.endpoint import SageMakerEndpoint
from prediction.usecase import predict as predict_sentiment
from sentiment_api.http import create_resolver, handle, ok
from sentiment_api.observability import logger, metrics, tracer
from sentiment_api.ratelimit import DynamoDbRateLimiter

settings = PredictSettings.from_env()  # cold start: fails the init phase when configuration is missing
endpoint = SageMakerEndpoint.from_settings(settings.endpoint)
limiter = DynamoDbRateLimiter.from_settings(settings.api.rate_limit)
metrics.set_default_dimensions(Stage=settings.api.stage)
app = create_resolver(limiter, fail_open=settings.api.rate_limit.fail_open)


@app.post("/predict")
def predict() -> Response:
    event = app.current_event
    body = predict_sentiment(
        event.body,
        bool(event.is_base64_encoded),
        event.headers.get("content-type"),
        app.context["correlation_id"],
        endpoint,
        app.context["deadline"],
    )
    return ok(body, app)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, settings.api.request_budget_s)
