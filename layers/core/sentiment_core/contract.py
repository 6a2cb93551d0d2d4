"""Constants of the service that more than one deployable needs, defined here once.

Python >= 3.9, standard library only (see the package docstring)."""

from __future__ import annotations

#: The three classes, in the order every model artefact and answer uses.
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

#: POST /predict: at most this many bytes of body (UTF-8, after base64 decoding) ...
MAX_BODY_BYTES = 1024
#: ... and this many characters of text (predict_request.json says the same as maxLength).
MAX_TEXT_CHARS = 1024
#: POST /predict/batch: at most this many texts (predict_batch_request.json: maxItems) in a body of at most
#: this many bytes (counted like /predict's). A batch counts as one request for the per-user limit.
MAX_BATCH_TEXTS = 25
MAX_BATCH_BODY_BYTES = 32_768

#: The correlation-id header clients may send and every answer carries.
CORRELATION_HEADER = "x-correlation-id"

#: One unambiguous text per label. Every acceptable model classifies them with high confidence (checked
#: against the shipped artefact in tests/unit/model): the PreTraffic hook sends them to a new predict version,
#: the retraining smoke test to a new endpoint, the local end-to-end tests to the local stack.
SMOKE_TEXTS: dict[str, str] = {
    "positive": "Excellent quality and fast delivery. Highly recommended, I am very happy.",
    "neutral": "The meeting is scheduled for 3 pm in room 204.",
    "negative": "Awful experience, the worst service I have ever had.",
}

#: The apiId of the PreTraffic hook's synthetic API Gateway events. API Gateway puts its own id there, so no
#: request through the API can carry it: it tells the hook's smoke requests apart from traffic.
SMOKE_API_ID = "codedeploy-hook"


def smoke_version(version: str) -> str:
    """The FunctionVersion dimension value of a smoke request's metrics: the hook sees that the version
    publishes its per-version metrics, and the canary alarms and verdict (which read `version`) never
    count the six synthetic requests (a cold start and two planned 4xx) as traffic."""
    return f"{version}-smoke"


#: The schema id of a governance report (analysis.json), written by governance/ and read by GET /explain.
REPORT_SCHEMA = "sentiment-api/governance-report/v1"


def bias_check_passed(value: float, threshold: float) -> bool:
    """The one bias rule (docs/retraining.md): a metric passes when its magnitude is within the threshold.
    Signed metrics (Clarify's DPPL, CDDL ...) fail in either direction; the unsigned ones are unaffected."""
    return abs(float(value)) <= float(threshold)
