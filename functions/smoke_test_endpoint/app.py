"""Retraining step (statemachines/retrain.asl.json, state SmokeTestEndpoint): before a new endpoint may be
released, it must answer one clear text per label, in the wire format the predict function reads
(sentiment_common.endpoint: the same request encoding and the same parser), with the expected label.

Raises SmokeTestFailed (a wrong label, or an answer the predict function could not read) and lets
ModelUnavailable / ModelTimeout through, which the state machine retries with backoff (an endpoint that
just turned InService may still be warming up).
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from sentiment_common.endpoint import SageMakerEndpoint
from sentiment_common.errors import ModelError

#: One unambiguous text per label (the local stack's end-to-end tests use the same ones).
PROBES: dict[str, str] = {
    "positive": "I absolutely love this! It is wonderful, and it works perfectly.",
    "negative": "This is terrible. It broke after one day, and I hate it. Awful, worst purchase ever.",
    "neutral": "The meeting is scheduled for Tuesday at the main office.",
}

logger = Logger(service="sentiment-api-retraining")


class SmokeTestFailed(Exception):
    """The new endpoint answered, but not what the API needs."""


def smoke_test(endpoint_name: str, client: Any) -> dict[str, Any]:
    endpoint = SageMakerEndpoint(client, endpoint_name)
    results, failures = [], []
    for expected, text in PROBES.items():
        try:
            answer = endpoint.classify(text, correlation_id=f"smoke-test-{endpoint_name}-{expected}")
        except ModelError:
            raise SmokeTestFailed(f"{endpoint_name}: the answer to the {expected!r} probe is not in the format "
                                  "the predict function reads (docs/architecture.md)") from None
        results.append({"expected": expected, "got": answer.label, "scores": answer.scores,
                        "model_version": answer.model_version})
        if answer.label != expected:
            failures.append(f"{expected} probe answered {answer.label}")
    if failures:
        raise SmokeTestFailed(f"{endpoint_name}: {'; '.join(failures)}")
    logger.info("smoke test passed", extra={"endpoint": endpoint_name})
    return {"endpoint_name": endpoint_name, "probes": results}


runtime = boto3.client("sagemaker-runtime", config=Config(connect_timeout=2, read_timeout=10,
                                                         retries={"mode": "standard", "total_max_attempts": 2}))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return smoke_test(str(event["endpoint_name"]), runtime)
