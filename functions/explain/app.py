"""GET /explain: entry point only. The summary of the latest governance report comes from
explanation.reports (this folder); the report lives in S3 (REPORTS_URI=s3://...) or, locally, in a folder."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from explanation.config import ExplainSettings
from explanation.reports import explain_summary, store_from_uri
from sentiment_api.http import create_resolver, handle, ok
from sentiment_api.observability import logger, metrics, tracer
from sentiment_api.ratelimit import DynamoDbRateLimiter

settings = ExplainSettings.from_env()  # cold start: fails the init phase when configuration is missing
reports = store_from_uri(settings.reports_uri)
limiter = DynamoDbRateLimiter.from_settings(settings.api.rate_limit)
metrics.set_default_dimensions(Stage=settings.api.stage)
app = create_resolver(limiter, fail_open=settings.api.rate_limit.fail_open)

# Reports change weekly: clients and caches may keep an answer for a minute.
CACHE_HEADERS = {"Cache-Control": "private, max-age=60"}


@app.get("/explain")
def explain() -> Response:
    return ok(explain_summary(reports, settings.live_endpoint, app.context["deadline"]), app, CACHE_HEADERS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, settings.budget_s)
