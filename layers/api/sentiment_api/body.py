"""The JSON body of an API request, checked in the documented order (README, "Errors"): content type (415),
base64 (400 INVALID_ENCODING), size in bytes (413), empty (400 INVALID_JSON), UTF-8 (400), JSON (400). Shared
by every route that takes a JSON body (POST /predict, POST /predict/batch, POST /jobs)."""

from __future__ import annotations

import base64
import binascii
import json

from .errors import InvalidEncoding, InvalidJson, PayloadTooLarge, UnsupportedMediaType


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


def json_document(
    body: str | None, is_base64_encoded: bool, content_type: str | None, max_bytes: int, example: str
) -> object:
    """The JSON document of a request body, checked in the documented order (content type, base64, size,
    empty, UTF-8, JSON)."""
    check_content_type(content_type)
    raw = body_bytes(body, is_base64_encoded)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"The body is {len(raw)} bytes; the limit is {max_bytes} bytes (UTF-8, after base64 decoding)."
        )
    if not raw.strip():
        raise InvalidJson(f"The body is empty; send a JSON object such as {example}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEncoding(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    except RecursionError:
        raise InvalidJson("The body is not valid JSON: nested too deeply.") from None
    except ValueError:  # Python's cap on integer digits (4,300): json.loads raises a plain ValueError
        raise InvalidJson("The body holds a number with too many digits.") from None


def check_encodable(text: str, field: str = "text") -> None:
    """A JSON string with an unpaired surrogate escape (``"\\ud800"``) is valid JSON but no UTF-8 text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEncoding(f"{field} contains an unpaired UTF-16 surrogate escape (e.g. \\ud800).") from None
