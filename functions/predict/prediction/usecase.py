"""The predict use case: a validated request in, the model's answer out, with its business metrics. Plain
functions that know nothing of API Gateway."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SentimentEndpoint
from sentiment_api.observability import MetricUnit, count, metrics, timed
from sentiment_api.schemas import compile_schema, validate_output
from sentiment_core.wire import Prediction, model_version_of

from .request import SCHEMAS, parse_batch_request, parse_predict_request

_PREDICT_RESPONSE = compile_schema(SCHEMAS / "predict_response.json")
_BATCH_RESPONSE = compile_schema(SCHEMAS / "predict_batch_response.json")


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
    count_prediction(answer)
    return response_body(answer)


def predict_batch(
    body: str | None,
    is_base64_encoded: bool,
    content_type: str | None,
    correlation_id: str,
    endpoint: SentimentEndpoint,
    deadline: Deadline,
) -> dict[str, Any]:
    """The 200 body for one POST /predict/batch body: one endpoint call for the items that can be scored
    (none when no item can), the others in ``errors``."""
    request = parse_batch_request(body, is_base64_encoded, content_type)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=request.size)
    for code, n in Counter(error.code for error in request.errors).items():
        count("BatchItemErrors", "ErrorCode", code, n)
    indexes = sorted(request.texts)
    answers: list[Prediction] = []
    if indexes:
        with timed("ModelLatency"):
            answers = endpoint.classify_batch([request.texts[i] for i in indexes], correlation_id, deadline)
    results = [{"index": index, **result_fields(answer)} for index, answer in zip(indexes, answers, strict=True)]
    # one blob per label and per (model, label), not per item: at most 6 log lines for 25 texts
    for (model, label), n in Counter((a.model_version or "unknown", a.label) for a in answers).items():
        count("PredictionsByModel", "ModelVersion", model, n, Label=label)
    for label, n in Counter(a.label for a in answers).items():
        count("Predictions", "Label", label, n)
    body_out: dict[str, Any] = {
        "results": results,
        "errors": [{"index": e.index, "code": e.code, "message": e.message} for e in request.errors],
    }
    version = model_version_of(answers)
    if version is not None:
        body_out["model_version"] = version
    return validate_output(_BATCH_RESPONSE, body_out, "batch response")


def count_prediction(answer: Prediction) -> None:
    count("Predictions", "Label", answer.label)
    # the label mix per model version: drift and canary comparisons of models (the artefact's version)
    count("PredictionsByModel", "ModelVersion", answer.model_version or "unknown", Label=answer.label)


def result_fields(answer: Prediction) -> dict[str, Any]:
    fields: dict[str, Any] = {"sentiment": answer.label}
    if answer.scores is not None:
        fields["scores"] = answer.scores
    return fields


def response_body(answer: Prediction) -> dict[str, Any]:
    """The 200 body, validated against the output schema before it leaves."""
    body = result_fields(answer)
    if answer.model_version is not None:
        body["model_version"] = answer.model_version
    return validate_output(_PREDICT_RESPONSE, body, "response")
