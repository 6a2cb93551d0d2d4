"""Where predictions come from: a SageMaker(-compatible) endpoint, or a local model artefact.

Endpoint wire format (docs/architecture.md): ``text/csv`` request, one RFC 4180 record per text; answers as
``application/json`` (``{"predictions": [...]}``, a list, or one object), JSON lines, or CSV rows
``predicted_label[,probability[,"[p...]","['l'...]"]]``. Each prediction carries ``predicted_label`` and,
when the model was created with ``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability,probabilities,
labels``, ``probabilities`` + ``labels``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import LABELS
from .importance import Prediction, as_prediction

BATCH_SIZE = 64
MAX_BODY_BYTES = 5 * 1024 * 1024  # below the 6 MB InvokeEndpoint limit


class PredictionError(RuntimeError):
    """The model's answer cannot be read as one prediction per text."""


def encode_batch(texts: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for text in texts:
        writer.writerow([text])
    return buffer.getvalue().encode("utf-8")


def _list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _prediction(item: Any) -> tuple[Prediction, str | None]:
    if not isinstance(item, dict):
        raise PredictionError(f"a prediction must be an object, got {type(item).__name__}")
    label = str(item.get("predicted_label", "")).strip().lower()
    if label not in LABELS:
        raise PredictionError(f"predicted_label {item.get('predicted_label')!r} is not one of {LABELS}")
    names, values = _list(item.get("labels")), _list(item.get("probabilities"))
    probabilities = None
    if names is not None and values is not None and len(names) == len(values):
        try:
            probabilities = {str(n).strip().lower(): float(v) for n, v in zip(names, values)}  # noqa: B905
        except (TypeError, ValueError):
            probabilities = None
    version = item.get("model_version")
    return as_prediction(label, probabilities), version if isinstance(version, str) else None


def parse_batch(body: bytes, content_type: str | None, expected: int) -> tuple[list[Prediction], str | None]:
    """The predictions of one batch answer, in request order, and the model version if the answer has one."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    text = body.decode("utf-8")
    items: list[Any]
    if media == "text/csv":
        keys = ("predicted_label", "probability", "probabilities", "labels")
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        items = [dict(zip(keys, row)) for row in rows]  # noqa: B905 - rows may have fewer fields
    elif media in ("application/jsonlines", "application/x-jsonlines"):
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        document = json.loads(text)
        if isinstance(document, dict) and isinstance(document.get("predictions"), list):
            items = document["predictions"]
        elif isinstance(document, list):
            items = document
        else:
            items = [document]
    if len(items) != expected:
        raise PredictionError(f"sent {expected} texts, got {len(items)} predictions")
    parsed = [_prediction(item) for item in items]
    versions = {version for _, version in parsed if version}
    return [prediction for prediction, _ in parsed], (versions.pop() if len(versions) == 1 else None)


def _version_from_attributes(attributes: str | None) -> str | None:
    for part in (attributes or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "model_version" and value:
            return value
    return None


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
    def create(cls, endpoint_name: str, endpoint_url: str | None = None,
               region: str | None = None) -> EndpointPredictor:
        import boto3  # only this predictor needs the SDK
        from botocore.config import Config

        config = Config(read_timeout=60, connect_timeout=5, retries={"mode": "standard", "total_max_attempts": 5})
        kwargs: dict[str, Any] = {"config": config}
        if region:
            kwargs["region_name"] = region
        if endpoint_url:  # the local model server: no AWS account behind it
            kwargs.update(endpoint_url=endpoint_url, region_name=region or "us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106 - dummy
        return cls(boto3.client("sagemaker-runtime", **kwargs), endpoint_name)

    def __call__(self, texts: Sequence[str]) -> list[Prediction]:
        predictions: list[Prediction] = []
        for batch in batches(texts, self._batch_size):
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType="text/csv", Accept="application/json",
                Body=encode_batch(batch),
            )
            self.calls += 1
            parsed, version = parse_batch(response["Body"].read(), response.get("ContentType"), len(batch))
            self.model_version = version or _version_from_attributes(response.get("CustomAttributes")) \
                or self.model_version
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
