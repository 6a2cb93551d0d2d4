"""The SageMaker endpoint wire format, written once: what the predict function and the retraining smoke
test send, what the local model server reads and answers, what the governance job sends and reads.

Request: ``InvokeEndpoint`` with ``ContentType: text/csv``, ``Accept: application/json``; the body holds one
RFC 4180 record per text (UTF-8, every field quoted), the input the Autopilot text-classification container
accepts. ``CustomAttributes`` carries ``key=value`` pairs separated by commas (``correlation_id=<id>`` on the
way in, ``model_version=<v>`` on the way out).

Answers, by their ``ContentType``:

1. ``application/json``: one object ``{"predicted_label", "probability", "probabilities", "labels",
   "model_version"}`` (the Autopilot inference keys, ``SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability,
   probabilities,labels``; all but ``predicted_label`` optional), ``{"predictions": [<object>, ...]}`` or a
   plain list of objects;
2. ``application/jsonlines``: one object per line (a single line is read like 1.);
3. ``text/csv``: one row per text, ``predicted_label[,probability[,"[p1, p2, p3]","['l1', 'l2', 'l3']"]]``.

Anything else, a label outside LABELS or a number of predictions other than the number of texts sent is a
WireError. Scores are kept only when they name exactly the three labels with finite probabilities in [0, 1].

Python >= 3.9, standard library only (see the package docstring).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .contract import LABELS

REQUEST_CONTENT_TYPE = "text/csv"
ACCEPT = "application/json"
#: The HTTP header behind boto3's ``CustomAttributes`` (request and response).
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
CSV_ANSWER_KEYS = ("predicted_label", "probability", "probabilities", "labels")
JSON_LINES = ("application/jsonlines", "application/x-jsonlines")
#: SageMaker runtime error codes that mean "busy or not ready, try again shortly", with a fair wait in seconds.
RETRY_LATER_SECONDS = {"ThrottlingException": 1, "ServiceUnavailable": 2, "ModelNotReadyException": 5}


class WireError(ValueError):
    """A body that does not follow the wire format (the message says how; it never holds the texts)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float] | None = None  # label -> probability, in LABELS order
    model_version: str | None = None

    def rounded(self, digits: int = 6) -> Prediction:
        """The same prediction with its scores rounded, as the API answers them."""
        if self.scores is None:
            return self
        return replace(self, scores={label: round(p, digits) for label, p in self.scores.items()})


# ---- requests ------------------------------------------------------------------------------------------
def encode_texts(texts: Sequence[str]) -> bytes:
    """One quoted RFC 4180 record per text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for text in texts:
        writer.writerow([text])
    return buffer.getvalue().encode("utf-8")


def decode_texts(body: bytes) -> list[str]:
    """The texts of a ``text/csv`` request (the server side of encode_texts). Blank lines are skipped; an
    empty body is one empty text."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WireError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    except csv.Error as exc:
        raise WireError(f"the body is not valid CSV: {exc}") from None
    for n, row in enumerate(rows, start=1):
        if len(row) != 1:
            raise WireError(f"CSV record {n} has {len(row)} fields; expected one text per record (quote commas)")
    return [row[0] for row in rows] or [""]


# ---- CustomAttributes -----------------------------------------------------------------------------------
def custom_attribute(custom_attributes: str | None, key: str) -> str | None:
    """The value of ``key`` in a ``k=v,k2=v2`` CustomAttributes string (None when absent or empty)."""
    for part in (custom_attributes or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == key and value:
            return value
    return None


def custom_attributes(**values: str) -> str:
    return ",".join(f"{key}={value}" for key, value in values.items())


# ---- answers --------------------------------------------------------------------------------------------
def answer_object(probabilities: Sequence[float], labels: Sequence[str], model_version: str) -> dict[str, Any]:
    """One prediction as the local model server (and the Autopilot container, bar model_version) answers."""
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    return {
        "predicted_label": labels[best],
        "probability": float(probabilities[best]),
        "probabilities": [float(p) for p in probabilities],
        "labels": list(labels),
        "model_version": model_version,
    }


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            parsed = ast.literal_eval(value.strip())  # Autopilot CSV answers carry "['a', 'b']" strings
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):  # whatever the text holds
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _scores(labels: Any, probabilities: Any) -> dict[str, float] | None:
    names, values = _as_list(labels), _as_list(probabilities)
    if names is None or values is None or len(names) != len(values):
        return None
    try:
        scores = {str(n).strip().lower(): float(v) for n, v in zip(names, values)}  # noqa: B905 - Python 3.9; lengths checked
    except (TypeError, ValueError):
        return None
    if set(scores) != set(LABELS) or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()):
        return None
    return {label: scores[label] for label in LABELS}


def _prediction(item: Any, fallback_version: str | None) -> Prediction:
    if not isinstance(item, dict):
        raise WireError(f"a prediction must be an object, not {type(item).__name__}")
    label = item.get("predicted_label")
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        raise WireError(f"predicted_label is not one of {', '.join(LABELS)}")
    version = item.get("model_version")
    return Prediction(
        label.strip().lower(),
        _scores(item.get("labels"), item.get("probabilities")),
        version if isinstance(version, str) else fallback_version,
    )


def _items(text: str, media_type: str) -> list[Any]:
    if media_type == "text/csv":
        try:
            rows = [row for row in csv.reader(io.StringIO(text)) if row]
        except csv.Error:
            raise WireError("the answer is not valid CSV") from None
        return [dict(zip(CSV_ANSWER_KEYS, row)) for row in rows]  # noqa: B905 - rows may have fewer fields
    try:
        if media_type in JSON_LINES:
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            document: Any = lines[0] if len(lines) == 1 else lines  # one line reads like JSON
        else:
            document = json.loads(text)
    except json.JSONDecodeError:
        raise WireError("the answer is not valid JSON") from None
    except RecursionError:
        raise WireError("the answer is nested too deeply") from None
    except ValueError:  # an integer over Python's digit cap (4,300)
        raise WireError("the answer holds a number with too many digits") from None
    if isinstance(document, dict) and isinstance(document.get("predictions"), list):
        return list(document["predictions"])
    return document if isinstance(document, list) else [document]


def parse_answers(
    body: bytes, content_type: str | None, expected: int, custom_attributes: str | None = None
) -> list[Prediction]:
    """The predictions of one answer, in request order: exactly ``expected`` of them. A prediction without
    its own model_version gets the one in the response's CustomAttributes."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("the answer is not UTF-8") from None
    items = _items(text, media_type)
    if len(items) != expected:
        raise WireError(f"sent {expected} texts, got {len(items)} predictions")
    version = custom_attribute(custom_attributes, "model_version")
    return [_prediction(item, version) for item in items]


def parse_answer(body: bytes, content_type: str | None, custom_attributes: str | None = None) -> Prediction:
    """The one prediction of an answer to one text."""
    (prediction,) = parse_answers(body, content_type, 1, custom_attributes)
    return prediction


def model_version_of(predictions: Sequence[Prediction]) -> str | None:
    """The model version of a batch when all its predictions agree on one."""
    versions = {p.model_version for p in predictions if p.model_version}
    return versions.pop() if len(versions) == 1 else None
