"""The jobs state machine's tasks (statemachines/jobs.asl.json): entry point only. The event names the step
(``prepare``, ``score``, ``finish``, ``fail``) and the job (``owner``, ``job_id``); the steps are bulk.steps."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from bulk.config import WorkerSettings
from bulk.objects import Bucket
from bulk.steps import AwsCallFailed, Worker
from sentiment_api import aws
from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SageMakerEndpoint, SentimentEndpoint
from sentiment_api.observability import logger
from sentiment_jobs.store import JobStore

settings = WorkerSettings.from_env()  # cold start: fails the init phase when configuration is missing
#: What a score invocation may spend on the endpoint: its remaining time less the answer reserve.
SCORE_BUDGET_S = 900.0


@cache
def endpoint_for(name: str) -> SentimentEndpoint:
    return SageMakerEndpoint.from_settings(settings.endpoint(name))


def _log(message: str, **fields: Any) -> None:
    logger.info(message, extra=fields)


worker = Worker(
    settings,
    JobStore.from_table(settings.table),
    Bucket(aws.client("s3", Config(retries={"total_max_attempts": 3, "mode": "standard"})), settings.bucket),
    endpoint_for,
    log=_log,
)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step")
    logger.append_keys(job_id=str(event.get("job_id")), step=str(step))
    try:
        return run_step(step, event, context)
    except ClientError as exc:
        raise AwsCallFailed(aws.error_code(exc) or "ClientError") from exc
    except BotoCoreError as exc:
        raise AwsCallFailed(type(exc).__name__) from exc


def run_step(step: Any, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if step == "prepare":
        return worker.prepare(event)
    if step == "score":
        return worker.score(event, Deadline.for_invocation(SCORE_BUDGET_S, context))
    if step == "finish":
        return worker.finish(event)
    if step == "fail":
        return worker.fail(event)
    raise ValueError(f"unknown step {str(step)[:32]!r}")
