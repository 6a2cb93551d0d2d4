"""The predict use case: a validated request in, the model's answer out, with its business metrics. Plain
functions that know nothing of API Gateway."""

from __future__ import annotations

from typing import Any

from sentiment_api.deadline import Deadline
from sentiment_api.observability import count, timed
from sentiment_api.schemas import compile_schema, validate_output
from sentiment_core.wire import Prediction

from .endpoint import SentimentEndpoint
from .request import SCHEMAS, parse_predict_request

_PREDICT_RESPONSE = compile_schema(SCHEMAS / "predict_response.json")


def predict(
    body: str | None,
    is_base64_encoded: bool,
    content_type: str | None,
    correlation_id: str,
    endpoint: SentimentEndpoint,
    deadline: Deadline,
) -> dict[str, Any]:
    """The 200 body for one POST /predict body; raises the domain errors of the request and the endpoint."""
    request = parse_predict_request(body, is_base64_encoded, content_type)
    with timed("ModelLatency"):
        answer = endpoint.classify(request.text, correlation_id, deadline)
    count("Predictions", "Label", answer.label)
    # the label mix per model version: drift and canary comparisons of models (the artefact's version)
    count("PredictionsByModel", "ModelVersion", answer.model_version or "unknown", Label=answer.label)
    return response_body(answer)


def response_body(answer: Prediction) -> dict[str, Any]:
    """The 200 body, validated against the output schema before it leaves."""
    body: dict[str, Any] = {"sentiment": answer.label}
    if answer.scores is not None:
        body["scores"] = answer.scores
    if answer.model_version is not None:
        body["model_version"] = answer.model_version
    return validate_output(_PREDICT_RESPONSE, body, "response")
