"""The predict use case: plain functions that know nothing of API Gateway."""

from __future__ import annotations

from typing import Any

from .endpoint import EndpointAnswer, SentimentEndpoint
from .validation import validate_predict_response


def predict_sentiment(text: str, correlation_id: str, endpoint: SentimentEndpoint) -> EndpointAnswer:
    return endpoint.classify(text, correlation_id)


def response_body(answer: EndpointAnswer) -> dict[str, Any]:
    """The 200 body, validated against the output schema before it leaves."""
    body: dict[str, Any] = {"sentiment": answer.label}
    if answer.scores is not None:
        body["scores"] = answer.scores
    if answer.model_version is not None:
        body["model_version"] = answer.model_version
    return validate_predict_response(body)
