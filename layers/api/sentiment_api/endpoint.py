"""The SageMaker endpoint behind a small interface: one InvokeEndpoint in the wire format (sentiment_core.wire),
and botocore failures mapped to domain errors. Used by POST /predict, POST /predict/batch and the bulk jobs'
worker. Wire format: docs/architecture.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from sentiment_core import wire
from sentiment_core.wire import Prediction

from . import aws
from .deadline import Deadline
from .errors import ModelError, ModelTimeout, ModelUnavailable


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    name: str
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int  # total attempts, each further one only inside the request's deadline (endpoint.py)
    batch_read_timeout_s: float = 1.5  # POST /predict/batch: up to MAX_BATCH_TEXTS texts in one call

    @property
    def attempt_s(self) -> float:
        """The worst case of one attempt: connect and read timeouts."""
        return self.connect_timeout_s + self.read_timeout_s

    @property
    def batch_attempt_s(self) -> float:
        return self.connect_timeout_s + self.batch_read_timeout_s


MAX_MODEL_VERSION_CHARS = 128  # predict_response.json: model_version maxLength


class SentimentEndpoint(Protocol):
    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction: ...

    def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
        """One prediction per text, in order, from one call to the endpoint."""
        ...


def read_answers(
    body: bytes, content_type: str | None, custom_attributes: str | None = None, expected: int = 1
) -> list[Prediction]:
    """The ``expected`` predictions of an answer, scores rounded to 6 digits; anything unusable (another
    number of predictions included) is a ModelError (502). A model_version in the answer wins over the one in
    CustomAttributes; either is cut to the schema's 128 characters (an over-long version is no reason to
    refuse a good prediction)."""
    try:
        predictions = wire.parse_answers(body, content_type, expected, custom_attributes)
    except wire.WireError:
        raise ModelError() from None
    return [_within_schema(p.rounded()) for p in predictions]


def _within_schema(prediction: Prediction) -> Prediction:
    version = prediction.model_version
    if version is not None and len(version) > MAX_MODEL_VERSION_CHARS:
        return replace(prediction, model_version=version[:MAX_MODEL_VERSION_CHARS])  # label and scores are good
    return prediction


def read_answer(body: bytes, content_type: str | None, custom_attributes: str | None = None) -> Prediction:
    """The one prediction of an answer to one text (read_answers)."""
    (prediction,) = read_answers(body, content_type, custom_attributes)
    return prediction


def map_client_error(exc: Exception) -> Exception:
    """botocore failure -> domain error. Never matches on message text, only on types and error codes."""
    if isinstance(exc, ClientError):
        code = aws.error_code(exc)
        if code in wire.RETRY_LATER_SECONDS:  # busy or not ready: 503 + Retry-After
            return ModelUnavailable(retry_after_s=wire.RETRY_LATER_SECONDS[code])
        return ModelError()
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return ModelTimeout()
    if isinstance(exc, BotocoreConnectionError):  # refused, unreachable, TLS or proxy failure
        return ModelUnavailable(retry_after_s=2)
    if isinstance(exc, HTTPClientError | ResponseStreamingError | IncompleteReadError):
        return ModelError()  # the connection broke while the answer was on its way
    return exc


#: Failures after which the request did not reach the model (no connection), or the SageMaker front end
#: refused it or asked for a retry (throttling, 503, 500 InternalFailure): worth one more attempt inside
#: the deadline. A read timeout is not among them: the model may still be working on the request, and a
#: second one would double the load on an endpoint that is already slow, and could not finish inside the
#: latency objective anyway.
RETRYABLE_CODES = frozenset({"ThrottlingException", "ServiceUnavailable", "InternalFailure"})
RETRY_BACKOFF_S = 0.05


def retryable(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        return aws.error_code(exc) in RETRYABLE_CODES
    return isinstance(exc, BotocoreConnectionError)  # ConnectTimeoutError and EndpointConnectionError too


_CLIENT_FAILURES = (ClientError, HTTPClientError, BotocoreConnectionError, ResponseStreamingError, IncompleteReadError)


class SageMakerEndpoint:
    """InvokeEndpoint with explicit timeouts, and retries decided here, inside the request's deadline:
    botocore makes one attempt per call (its retry mode and backoff differ between botocore versions, and
    the Lambda runtime's botocore is not the one the tests pin). A batch goes through a second client whose
    read timeout allows for the texts it carries (``batch_client``; botocore takes timeouts per client, not
    per call)."""

    def __init__(
        self,
        client: Any,
        endpoint_name: str,
        max_attempts: int = 1,
        attempt_s: float = 0.75,
        sleep: Callable[[float], None] = time.sleep,
        batch_client: Callable[[], Any] | None = None,
        batch_attempt_s: float | None = None,
    ) -> None:
        self._client = client
        self._endpoint_name = endpoint_name
        self._max_attempts = max_attempts
        self._attempt_s = attempt_s  # the worst case of one attempt: connect + read timeout
        self._sleep = sleep
        self._make_batch_client = batch_client or (lambda: client)
        self._batch_client: Any = None
        self._batch_attempt_s = attempt_s if batch_attempt_s is None else batch_attempt_s

    @classmethod
    def from_settings(cls, settings: EndpointSettings) -> SageMakerEndpoint:
        def client(read_timeout_s: float) -> Any:
            config = Config(
                connect_timeout=settings.connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
                tcp_keepalive=True,
            )
            return aws.client("sagemaker-runtime", config)

        return cls(
            client(settings.read_timeout_s),
            settings.name,
            max_attempts=settings.max_attempts,
            attempt_s=settings.attempt_s,
            batch_client=lambda: client(settings.batch_read_timeout_s),  # built on the first batch only
            batch_attempt_s=settings.batch_attempt_s,
        )

    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
        (prediction,) = self._call(self._client, self._attempt_s, [text], correlation_id, deadline)
        return prediction

    def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
        if self._batch_client is None:
            self._batch_client = self._make_batch_client()
        return self._call(self._batch_client, self._batch_attempt_s, texts, correlation_id, deadline)

    def _call(
        self, client: Any, attempt_s: float, texts: Sequence[str], correlation_id: str, deadline: Deadline
    ) -> list[Prediction]:
        if not deadline.allows(attempt_s):
            # not even one attempt fits (the invocation is almost out of time): a 504 of ours now, rather than
            # Lambda's timeout, which API Gateway answers with a bare 500
            raise ModelTimeout()
        attempt = 1
        while True:
            try:
                return self._invoke(client, texts, correlation_id)
            except _CLIENT_FAILURES as exc:
                again = attempt < self._max_attempts and retryable(exc)
                if not again or not deadline.allows(RETRY_BACKOFF_S + attempt_s):
                    raise map_client_error(exc) from exc
            self._sleep(RETRY_BACKOFF_S)
            attempt += 1

    def _invoke(self, client: Any, texts: Sequence[str], correlation_id: str) -> list[Prediction]:
        response = client.invoke_endpoint(
            EndpointName=self._endpoint_name,
            ContentType=wire.REQUEST_CONTENT_TYPE,
            Accept=wire.ACCEPT,
            Body=wire.encode_texts(texts),
            CustomAttributes=wire.custom_attributes(correlation_id=correlation_id),
        )
        body = response["Body"].read()
        return read_answers(body, response.get("ContentType"), response.get("CustomAttributes"), len(texts))
