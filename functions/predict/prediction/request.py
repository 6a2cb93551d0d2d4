"""Turns the raw HTTP body of POST /predict into a validated request, in the documented order:
content type (415), base64/UTF-8 decoding (400), size in bytes (413), JSON (400), schema (400), a text with
something to classify (400 EMPTY_TEXT)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from sentiment_api.errors import EmptyText, InvalidEncoding, InvalidJson, PayloadTooLarge, UnsupportedMediaType
from sentiment_api.schemas import compile_schema, validate_input
from sentiment_core.contract import MAX_BODY_BYTES

SCHEMAS = Path(__file__).with_name("schemas")
_PREDICT_REQUEST = compile_schema(SCHEMAS / "predict_request.json")


@dataclass(frozen=True, slots=True)
class PredictRequest:
    text: str


def check_content_type(content_type: str | None) -> None:
    """JSON only; an absent content type is tolerated (treated as JSON)."""
    if content_type is None or not content_type.strip():
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return
    raise UnsupportedMediaType(f"Content-Type must be application/json, not {media_type[:64]!r}.")


def body_bytes(body: str | None, is_base64_encoded: bool) -> bytes:
    if body is None:
        return b""
    if not is_base64_encoded:
        return body.encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEncoding("The body is marked base64-encoded but is not valid base64.") from None


def parse_predict_request(body: str | None, is_base64_encoded: bool, content_type: str | None) -> PredictRequest:
    check_content_type(content_type)
    raw = body_bytes(body, is_base64_encoded)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"The body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} bytes (UTF-8, after base64 decoding)."
        )
    if not raw.strip():
        raise InvalidJson('The body is empty; send a JSON object such as {"text": "..."}.')
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEncoding(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except RecursionError:
        raise InvalidJson("The body is not valid JSON: nested too deeply.") from None
    valid = validate_input(_PREDICT_REQUEST, document)
    text = valid["text"]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEncoding("text contains an unpaired UTF-16 surrogate escape (e.g. \\ud800).") from None
    check_text(text)
    return PredictRequest(text=text)


def check_text(text: str) -> None:
    """Empty or whitespace-only text (Unicode whitespace, as str.isspace) is refused: the model would answer
    some label for nothing, and a client sending it has a bug (an empty form field, a failed export)."""
    if not text.strip():
        raise EmptyText()
