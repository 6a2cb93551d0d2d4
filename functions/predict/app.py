"""POST /predict: entry point only. The logic lives in the shared layer (sentiment_common)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentiment_common.api import create_resolver, handle, ok
from sentiment_common.config import load_settings
from sentiment_common.endpoint import SageMakerEndpoint
from sentiment_common.observability import count, logger, metrics, timed, tracer
from sentiment_common.predict import predict_sentiment, response_body
from sentiment_common.ratelimit import DynamoDbRateLimiter
from sentiment_common.request import parse_predict_request

settings = load_settings()  # cold start: fails the init phase when configuration is missing
endpoint = SageMakerEndpoint.from_settings(settings)
limiter = DynamoDbRateLimiter.from_settings(settings)
metrics.set_default_dimensions(Stage=settings.stage)
app = create_resolver(limiter, fail_open=settings.rate_limit_fail_open)


@app.post("/predict")
def predict() -> Response:
    event = app.current_event
    request = parse_predict_request(event.body, bool(event.is_base64_encoded), event.headers.get("content-type"))
    with timed("ModelLatency"):
        answer = predict_sentiment(request.text, app.context["correlation_id"], endpoint)
    count("Predictions", "Label", answer.label)
    # the label mix per model version: drift and canary comparisons of models (the artefact's version)
    count("PredictionsByModel", "ModelVersion", answer.model_version or "unknown", Label=answer.label)
    return ok(response_body(answer), app)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context)
