"""Turns the raw HTTP body of POST /predict into a validated request, in the documented order:
content type (415), base64/UTF-8 decoding (400), size in bytes (413), JSON (400), schema (400), a text with
something to classify (400 EMPTY_TEXT)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sentiment_api.body import check_encodable, json_document
from sentiment_api.errors import ApiError, EmptyText
from sentiment_api.schemas import compile_schema, validate_input
from sentiment_core.contract import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES

SCHEMAS = Path(__file__).with_name("schemas")
_PREDICT_REQUEST = compile_schema(SCHEMAS / "predict_request.json")
_BATCH_REQUEST = compile_schema(SCHEMAS / "predict_batch_request.json")
_BATCH_TEXT = compile_schema(SCHEMAS / "predict_batch_request.json", "text")


@dataclass(frozen=True, slots=True)
class PredictRequest:
    text: str


@dataclass(frozen=True, slots=True)
class ItemError:
    """An item of a batch that cannot be scored: its index, and the code and message /predict would answer."""

    index: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchRequest:
    size: int
    texts: dict[int, str]  # index -> text, for the items that can be scored
    errors: list[ItemError]


def parse_predict_request(body: str | None, is_base64_encoded: bool, content_type: str | None) -> PredictRequest:
    document = json_document(body, is_base64_encoded, content_type, MAX_BODY_BYTES, '{"text": "..."}')
    text = validate_input(_PREDICT_REQUEST, document)["text"]
    check_encodable(text)
    check_text(text)
    return PredictRequest(text=text)


def parse_batch_request(body: str | None, is_base64_encoded: bool, content_type: str | None) -> BatchRequest:
    """Request-level problems raise (the usual 4xx); item-level ones become ItemErrors, with the codes
    /predict uses for the same text (VALIDATION_ERROR, INVALID_ENCODING, EMPTY_TEXT)."""
    document = json_document(body, is_base64_encoded, content_type, MAX_BATCH_BODY_BYTES, '{"texts": ["..."]}')
    items = validate_input(_BATCH_REQUEST, document)["texts"]
    texts: dict[int, str] = {}
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            texts[index] = check_item(index, item)
        except ApiError as exc:
            errors.append(ItemError(index, exc.code, exc.message))
    return BatchRequest(size=len(items), texts=texts, errors=errors)


def check_item(index: int, item: object) -> str:
    where = f"texts[{index}]"
    text: str = validate_input(_BATCH_TEXT, item, root=where)
    try:
        check_encodable(text)
        check_text(text)
    except ApiError as exc:  # the same rule as /predict's, said of this item
        raise type(exc)(exc.message.replace("text ", f"{where} ", 1)) from None
    return text


def check_text(text: str) -> None:
    """Empty or whitespace-only text (Unicode whitespace, as str.isspace) is refused: the model would answer
    some label for nothing, and a client sending it has a bug (an empty form field, a failed export)."""
    if not text.strip():
        raise EmptyText()
