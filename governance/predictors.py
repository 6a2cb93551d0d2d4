"""Where predictions come from: a SageMaker(-compatible) endpoint, or a local model artefact.

The endpoint wire format (requests, every answer shape) is sentiment_core.wire, the module the predict
function uses; the processing job gets a copy of it beside this package (make governance-bundle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sentiment_core import wire

from .importance import Prediction, as_prediction

BATCH_SIZE = 64
MAX_BODY_BYTES = 5 * 1024 * 1024  # below the 6 MB InvokeEndpoint limit


def encode_batch(texts: Sequence[str]) -> bytes:
    return wire.encode_texts(texts)


def parse_batch(
    body: bytes, content_type: str | None, expected: int, custom_attributes: str | None = None
) -> tuple[list[Prediction], str | None]:
    """The predictions of one batch answer, in request order, and the model version if the answer has one
    (sentiment_core.wire.parse_answers: every documented answer shape, exactly one prediction per text)."""
    answers = wire.parse_answers(body, content_type, expected)
    version = wire.model_version_of(answers) or wire.custom_attribute(custom_attributes, "model_version")
    return [as_prediction(a.label, a.scores) for a in answers], version


def batches(texts: Sequence[str], size: int = BATCH_SIZE) -> Iterator[list[str]]:
    """Consecutive batches of at most ``size`` texts and at most MAX_BODY_BYTES of CSV."""
    batch: list[str] = []
    batch_bytes = 0
    for text in texts:
        row_bytes = len(encode_batch([text]))
        if batch and (len(batch) >= size or batch_bytes + row_bytes > MAX_BODY_BYTES):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(text)
        batch_bytes += row_bytes
    if batch:
        yield batch


class EndpointPredictor:
    """Batched InvokeEndpoint calls (the local model server speaks the same API)."""

    def __init__(self, client: Any, endpoint_name: str, batch_size: int = BATCH_SIZE) -> None:
        self._client = client
        self.endpoint_name = endpoint_name
        self._batch_size = batch_size
        self.model_version: str | None = None
        self.calls = 0

    @classmethod
    def create(
        cls, endpoint_name: str, endpoint_url: str | None = None, region: str | None = None
    ) -> EndpointPredictor:
        import boto3  # only this predictor needs the SDK
        from botocore.config import Config

        config = Config(read_timeout=60, connect_timeout=5, retries={"mode": "standard", "total_max_attempts": 5})
        kwargs: dict[str, Any] = {"config": config}
        if region:
            kwargs["region_name"] = region
        if endpoint_url:  # the local model server: no AWS account behind it
            kwargs.update(
                endpoint_url=endpoint_url,
                region_name=region or "us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - dummy
            )
        return cls(boto3.client("sagemaker-runtime", **kwargs), endpoint_name)

    def __call__(self, texts: Sequence[str]) -> list[Prediction]:
        predictions: list[Prediction] = []
        for batch in batches(texts, self._batch_size):
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType=wire.REQUEST_CONTENT_TYPE,
                Accept=wire.ACCEPT,
                Body=encode_batch(batch),
            )
            self.calls += 1
            parsed, version = parse_batch(
                response["Body"].read(), response.get("ContentType"), len(batch), response.get("CustomAttributes")
            )
            self.model_version = version or self.model_version
            predictions.extend(parsed)
        return predictions


class ArtefactPredictor:
    """A model artefact loaded in-process with ``sentiment_model.runtime`` (local runs only)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.model_version: str | None = str(model.version)
        self.endpoint_name: str | None = None

    @classmethod
    def load(cls, model_dir: Path) -> ArtefactPredictor:
        from sentiment_model.runtime import load_model  # local only: not shipped to the processing job

        return cls(load_model(model_dir))

    def __call__(self, texts: Sequence[str]) -> list[Prediction]:
        labels = tuple(self._model.labels)
        out: list[Prediction] = []
        for batch in batches(texts, 512):
            for row in self._model.predict_proba(batch):
                probabilities = {label: float(p) for label, p in zip(labels, row)}  # noqa: B905
                out.append(as_prediction(max(probabilities, key=lambda k: probabilities[k]), probabilities))
        return out


Predictor = Callable[[Sequence[str]], list[Prediction]]
