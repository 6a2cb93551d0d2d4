"""POST /jobs, GET /jobs/{job_id}, POST /jobs/{job_id}/start: entry point only. The use cases are
jobs_api.usecase; the request path they share with the other routes is the sentiment_api layer."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from jobs_api.config import JobsSettings
from jobs_api.usecase import Jobs
from sentiment_api import aws
from sentiment_api.http import create_resolver, handle, json_response, require_caller
from sentiment_api.observability import logger, metrics, tracer
from sentiment_api.ratelimit import DynamoDbRateLimiter
from sentiment_jobs.store import JobStore

settings = JobsSettings.from_env()  # cold start: fails the init phase when configuration is missing
#: Every AWS call of a request: at most 2 attempts of 0.5 s + 1 s (the worst case is in template.yaml's Timeout).
_CALLS = Config(connect_timeout=0.5, read_timeout=1.0, retries={"total_max_attempts": 2, "mode": "standard"})
jobs = Jobs(
    settings,
    JobStore.from_table(settings.table),
    aws.client("s3", _CALLS.merge(Config(signature_version="s3v4"))),
    aws.client("stepfunctions", _CALLS),
)
limiter = DynamoDbRateLimiter.from_settings(settings.api.rate_limit)
metrics.set_default_dimensions(Stage=settings.api.stage)
app = create_resolver(limiter, fail_open=settings.api.rate_limit.fail_open)


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return json_response(status, body, app.context["correlation_id"], {"Cache-Control": "no-store", **(headers or {})})


@app.post("/jobs")
def create_job() -> Response:
    event = app.current_event
    body = jobs.create(
        require_caller(app), event.body, bool(event.is_base64_encoded), event.headers.get("content-type")
    )
    return _answer(201, body, {"Location": f"/jobs/{body['job_id']}"})


@app.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    return _answer(200, jobs.get(require_caller(app), job_id))


@app.post("/jobs/<job_id>/start")
def start_job(job_id: str) -> Response:
    status, body = jobs.start(require_caller(app), job_id)
    return _answer(status, body)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, settings.budget_s)
