"""The SageMaker endpoint behind a small interface: one InvokeEndpoint in the wire format
(sentiment_core.wire), and botocore failures mapped to domain errors. Wire format: docs/architecture.md."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from sentiment_api.errors import ModelError, ModelTimeout, ModelUnavailable
from sentiment_core import wire
from sentiment_core.wire import Prediction

from .config import EndpointSettings

MAX_MODEL_VERSION_CHARS = 128  # predict_response.json: model_version maxLength


class SentimentEndpoint(Protocol):
    def classify(self, text: str, correlation_id: str) -> Prediction: ...


def read_answer(body: bytes, content_type: str | None, custom_attributes: str | None = None) -> Prediction:
    """The one prediction of an answer, scores rounded to 6 digits; anything unusable is a ModelError (502).
    A model_version in the answer wins over the one in CustomAttributes; either is cut to the schema's 128
    characters (an over-long version is no reason to refuse a good prediction)."""
    try:
        prediction = wire.parse_answer(body, content_type)
    except wire.WireError:
        raise ModelError() from None
    version = prediction.model_version
    if version is None:
        version = wire.custom_attribute(custom_attributes, "model_version")
    if version is not None and len(version) > MAX_MODEL_VERSION_CHARS:
        version = version[:MAX_MODEL_VERSION_CHARS]  # the documented shape; the label and scores are still good
    return replace(prediction.rounded(), model_version=version)


def map_client_error(exc: Exception) -> Exception:
    """botocore failure -> domain error. Never matches on message text, only on types and error codes."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in wire.RETRY_LATER_SECONDS:  # busy or not ready: 503 + Retry-After
            return ModelUnavailable(retry_after_s=wire.RETRY_LATER_SECONDS[code])
        return ModelError()
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return ModelTimeout()
    if isinstance(exc, EndpointConnectionError):
        return ModelUnavailable(retry_after_s=2)
    if isinstance(exc, ConnectionClosedError | ResponseStreamingError | IncompleteReadError):
        return ModelError()  # the connection broke while the answer was on its way
    return exc


class SageMakerEndpoint:
    """InvokeEndpoint with explicit timeouts and bounded retries (botocore standard mode)."""

    def __init__(self, client: Any, endpoint_name: str) -> None:
        self._client = client
        self._endpoint_name = endpoint_name

    @classmethod
    def from_settings(cls, settings: EndpointSettings) -> SageMakerEndpoint:
        config = Config(
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
            tcp_keepalive=True,
        )
        return cls(boto3.client("sagemaker-runtime", config=config), settings.name)

    def classify(self, text: str, correlation_id: str) -> Prediction:
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self._endpoint_name,
                ContentType=wire.REQUEST_CONTENT_TYPE,
                Accept=wire.ACCEPT,
                Body=wire.encode_texts([text]),
                CustomAttributes=wire.custom_attributes(correlation_id=correlation_id),
            )
            body = response["Body"].read()
        except (
            ClientError,
            ReadTimeoutError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ConnectionClosedError,
            ResponseStreamingError,
            IncompleteReadError,
        ) as exc:
            raise map_client_error(exc) from exc
        return read_answer(body, response.get("ContentType"), response.get("CustomAttributes"))
