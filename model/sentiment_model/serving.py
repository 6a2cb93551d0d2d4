"""The inference protocol of the shipped model, written once: what the local model server
(``local_stack.model_server``) and the SageMaker framework container of the bootstrap endpoint
(``code/inference.py`` of the bundle ``tools/model_bundle.py`` builds) read, compute and answer.

Requests: ``text/csv`` (one or more RFC 4180 records, one text per record: ``sentiment_core.wire``) or
``application/json`` (``{"text": "..."}`` or ``{"instances": [{"text": "..."}, ...]}``). Answers are
``application/json``: one object ``{"predicted_label", "probability", "probabilities", "labels",
"model_version"}`` for a single text, ``{"predictions": [...]}`` for several CSV records or any ``instances``
request. A request that cannot be answered raises :class:`InvocationError` (a status, a SageMaker error type
and a message that holds no user text).

The SageMaker inference toolkit's handler functions (``model_fn``, ``input_fn``, ``predict_fn``,
``output_fn``: the contract of the AWS PyTorch inference container, sagemaker-inference-toolkit's
``Transformer``) are at the end: each is the same function the local server calls. In the container an
:class:`InvocationError` becomes the toolkit's ``GenericInferenceToolkitError`` with the same status.

Depends on numpy, ``sentiment_core`` (standard library) and :mod:`sentiment_model.runtime` only: this module
and those two packages are what the bundle ships.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sentiment_core import wire

JSON = "application/json"
CSV = "text/csv"
#: SageMaker's real-time InvokeEndpoint payload limit (serverless endpoints allow 4 MB: the smaller one binds).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class InvocationError(Exception):
    """An error answer in the SageMaker runtime's shape."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"__type": self.error_type, "message": self.message}
        if self.error_type == "ModelError":
            body.update(OriginalStatusCode=self.status, OriginalMessage=self.message)
        return body


def model_error(status: int, message: str) -> InvocationError:
    return InvocationError(status, "ModelError", message)


@dataclass(frozen=True, slots=True)
class Request:
    """The texts of one invocation, and whether the answer is a batch (``{"predictions": [...]}``)."""

    texts: list[str]
    batch: bool


def parse_csv(body: bytes) -> Request:
    """RFC 4180 records, one text per record (sentiment_core.wire.decode_texts). Blank lines are skipped; an
    empty body is one empty text (answered like any other text)."""
    try:
        texts = wire.decode_texts(body)
    except wire.WireError as exc:
        raise model_error(400, str(exc)) from None
    return Request(texts, len(texts) > 1)


def parse_json(body: bytes) -> Request:
    """``{"text": str}`` (single) or ``{"instances": [{"text": str}, ...]}`` (batch)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise model_error(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise model_error(400, f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except (RecursionError, ValueError):  # nested too deeply, an integer over Python's digit cap
        raise model_error(400, "the body is not usable JSON") from None
    if isinstance(doc, dict) and "text" in doc:
        if not isinstance(doc["text"], str):
            raise model_error(400, '"text" must be a string')
        return Request([doc["text"]], False)
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list) or not instances:
            raise model_error(400, '"instances" must be a non-empty list')
        texts = []
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict) or not isinstance(inst.get("text"), str):
                raise model_error(400, f'instances[{i}] must be an object with a string "text"')
            texts.append(inst["text"])
        return Request(texts, True)
    raise model_error(400, 'expected {"text": "..."} or {"instances": [{"text": "..."}, ...]}')


PARSERS: dict[str, Callable[[bytes], Request]] = {CSV: parse_csv, JSON: parse_json}


def media_type(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_request(body: bytes, content_type: str | None) -> Request:
    """The request's texts by its content type; 415 for another type, 413 over the payload limit."""
    parser = PARSERS.get(media_type(content_type))
    if parser is None:
        shown = media_type(content_type) or "(none)"
        raise model_error(415, f"unsupported Content-Type {shown}; use {CSV} or {JSON}")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise model_error(413, f"the body exceeds {MAX_PAYLOAD_BYTES} bytes")
    return parser(body)


def _admitted(part: str) -> str | None:
    """The media range of one Accept element, None when its quality is 0 (RFC 9110 12.4.2: "not acceptable")."""
    media, *params = (piece.strip() for piece in part.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                if float(value) <= 0:
                    return None
            except ValueError:
                return None
    return media.lower()


def check_accept(accept: str | None) -> None:
    """406 unless ``accept`` admits JSON (absent and ``*/*`` do; ``q=0`` refuses)."""
    if not accept:
        return
    admitted = {_admitted(part) for part in accept.split(",")}
    if not admitted & {JSON, "application/*", "*/*"}:
        raise model_error(406, f"cannot answer Accept: {accept[:100]}; this model answers {JSON}")


def predict(model: Any, texts: Sequence[str]) -> list[dict[str, Any]]:
    """One answer object per text, in order (``sentiment_core.wire.answer_object``)."""
    labels = tuple(model.labels)
    proba = np.asarray(model.predict_proba(list(texts)), dtype=np.float64)
    if proba.shape != (len(texts), len(labels)):
        raise RuntimeError(f"model returned shape {proba.shape} for {len(texts)} texts")
    return [wire.answer_object([float(p) for p in row], labels, str(model.version)) for row in proba]


def answer(request: Request, predictions: list[dict[str, Any]]) -> Any:
    """The answer document: one object for a single text, ``{"predictions": [...]}`` for a batch."""
    return {"predictions": predictions} if request.batch else predictions[0]


def encode(document: Any) -> bytes:
    return json.dumps(document, allow_nan=False).encode("utf-8")


# --- the SageMaker inference toolkit's handler functions (the bundle's code/inference.py) ----------------


def _toolkit_error(exc: InvocationError) -> Exception:
    """The toolkit's own error type with the same status, where the toolkit is installed (the container)."""
    try:
        from sagemaker_inference.errors import GenericInferenceToolkitError
    except ImportError:
        return exc
    return GenericInferenceToolkitError(exc.status, exc.message)


def model_fn(model_dir: str, context: Any = None) -> Any:
    """Loads the artefact the bundle holds at its root (manifest.json and the files it pins)."""
    from .runtime import load_model

    return load_model(Path(model_dir))


def input_fn(input_data: bytes | bytearray | str, content_type: str, context: Any = None) -> Request:
    data = input_data.encode("utf-8") if isinstance(input_data, str) else bytes(input_data)
    try:
        return parse_request(data, content_type)
    except InvocationError as exc:
        raise _toolkit_error(exc) from None


def predict_fn(data: Request, model: Any, context: Any = None) -> Any:
    return answer(data, predict(model, data.texts))


def output_fn(prediction: Any, accept: str, context: Any = None) -> tuple[bytes, str]:
    """The JSON answer and its content type (the toolkit sends a returned (body, type) pair as is)."""
    try:
        check_accept(accept)
    except InvocationError as exc:
        raise _toolkit_error(exc) from None
    return encode(prediction), JSON
