"""The SageMaker endpoint behind a small interface: what we send, how we read both answer formats,
and how botocore failures become domain errors. Wire format: docs/architecture.md."""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from . import LABELS
from .config import Settings
from .errors import ModelError, ModelTimeout, ModelUnavailable

REQUEST_CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"

# SageMaker runtime error codes that mean "busy or not ready, try again shortly" -> 503 + Retry-After.
_RETRY_LATER = {
    "ThrottlingException": 1,
    "ServiceUnavailable": 2,
    "ModelNotReadyException": 5,
}


@dataclass(frozen=True, slots=True)
class EndpointAnswer:
    label: str
    scores: dict[str, float] | None = None
    model_version: str | None = None


class SentimentEndpoint(Protocol):
    def classify(self, text: str, correlation_id: str) -> EndpointAnswer: ...


# ---- request ------------------------------------------------------------------------------------
def encode_request(text: str) -> bytes:
    """One RFC 4180 CSV record holding the text, as the Autopilot text container expects."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow([text])
    return buffer.getvalue().encode("utf-8")


# ---- response -----------------------------------------------------------------------------------
def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())  # Autopilot CSV answers carry "['a', 'b']" strings
        except (ValueError, SyntaxError):
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _scores(labels: Any, probabilities: Any) -> dict[str, float] | None:
    names, values = _as_list(labels), _as_list(probabilities)
    if names is None or values is None or len(names) != len(values):
        return None
    try:
        scores = {str(n).strip().lower(): float(v) for n, v in zip(names, values, strict=True)}
    except (TypeError, ValueError):
        return None
    if set(scores) != set(LABELS) or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()):
        return None
    return {label: round(scores[label], 6) for label in LABELS}


def _answer(fields: Mapping[str, Any], model_version: str | None) -> EndpointAnswer:
    label = fields.get("predicted_label")
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        raise ModelError()
    version = fields.get("model_version") if isinstance(fields.get("model_version"), str) else model_version
    return EndpointAnswer(
        label=label.strip().lower(),
        scores=_scores(fields.get("labels"), fields.get("probabilities")),
        model_version=version,
    )


def parse_answer(body: bytes, content_type: str | None, custom_attributes: str | None = None) -> EndpointAnswer:
    """Reads the local model server's / Autopilot container's answer (JSON object, {"predictions": [..]}
    or one CSV row predicted_label,probability,probabilities,labels). Anything else is a ModelError."""
    model_version = _version_from_attributes(custom_attributes)
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError() from None
    if media_type == "text/csv":
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        if len(rows) != 1:
            raise ModelError()
        keys = ("predicted_label", "probability", "probabilities", "labels")
        return _answer(dict(zip(keys, rows[0], strict=False)), model_version)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ModelError() from None
    if isinstance(document, dict) and isinstance(document.get("predictions"), list):
        predictions = document["predictions"]
        document = predictions[0] if len(predictions) == 1 else None
    if not isinstance(document, dict):
        raise ModelError()
    return _answer(document, model_version)


def _version_from_attributes(custom_attributes: str | None) -> str | None:
    for part in (custom_attributes or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "model_version" and value:
            return value[:128]
    return None


# ---- the client ---------------------------------------------------------------------------------
def map_client_error(exc: Exception) -> Exception:
    """botocore failure -> domain error. Never matches on message text, only on types and error codes."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _RETRY_LATER:
            return ModelUnavailable(retry_after_s=_RETRY_LATER[code])
        return ModelError()
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return ModelTimeout()
    if isinstance(exc, EndpointConnectionError):
        return ModelUnavailable(retry_after_s=2)
    if isinstance(exc, ConnectionClosedError):
        return ModelError()
    return exc


class SageMakerEndpoint:
    """InvokeEndpoint with explicit timeouts and bounded retries (botocore standard mode)."""

    def __init__(self, client: Any, endpoint_name: str) -> None:
        self._client = client
        self._endpoint_name = endpoint_name

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerEndpoint:
        config = Config(
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
            tcp_keepalive=True,
        )
        return cls(boto3.client("sagemaker-runtime", config=config), settings.endpoint_name)

    def classify(self, text: str, correlation_id: str) -> EndpointAnswer:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self._endpoint_name,
                ContentType=REQUEST_CONTENT_TYPE,
                Accept=ACCEPT,
                Body=encode_request(text),
                CustomAttributes=f"correlation_id={correlation_id}",
            )
            body = response["Body"].read()
        except (ClientError, ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError,
                ConnectionClosedError) as exc:
            raise map_client_error(exc) from exc
        return parse_answer(body, response.get("ContentType"), response.get("CustomAttributes"))
