import base64
import json

import pytest
from prediction.request import MAX_BODY_BYTES, parse_predict_request
from sentiment_api.errors import (
    EmptyText,
    InvalidEncoding,
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)


def body_of_size(n: int, char: str = "a") -> str:
    """A valid JSON body of exactly n UTF-8 bytes (char must be 1 or 2 bytes and fit evenly)."""
    overhead = len(json.dumps({"text": ""}).encode())
    width = len(char.encode())
    assert (n - overhead) % width == 0
    body = json.dumps({"text": char * ((n - overhead) // width)}, ensure_ascii=False)
    assert len(body.encode()) == n
    return body


def test_valid_body() -> None:
    assert parse_predict_request('{"text": "great"}', False, "application/json").text == "great"


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"]
)
def test_accepted_content_types(content_type: str | None) -> None:
    assert parse_predict_request('{"text": "ok"}', False, content_type).text == "ok"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_predict_request('{"text": "ok"}', False, content_type)


def test_exactly_1024_bytes_is_accepted() -> None:
    assert parse_predict_request(body_of_size(MAX_BODY_BYTES), False, None).text


def test_1025_bytes_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="1025 bytes"):
        parse_predict_request(body_of_size(MAX_BODY_BYTES + 1), False, None)


def test_size_counts_utf8_bytes_not_characters() -> None:
    body = body_of_size(1024 + 2, "é")  # 507 two-byte characters: fewer than 1024 characters, too many bytes
    with pytest.raises(PayloadTooLarge):
        parse_predict_request(body, False, None)


def test_size_counts_bytes_after_base64_decoding() -> None:
    ok = base64.b64encode(body_of_size(1024).encode()).decode()
    assert len(ok) > 1024  # the encoded form is larger; only the decoded bytes count
    assert parse_predict_request(ok, True, None).text
    too_big = base64.b64encode(body_of_size(1025).encode()).decode()
    with pytest.raises(PayloadTooLarge):
        parse_predict_request(too_big, True, None)


def test_bad_base64_is_400() -> None:
    with pytest.raises(InvalidEncoding):
        parse_predict_request("not*base64!", True, None)


def test_invalid_utf8_is_400() -> None:
    with pytest.raises(InvalidEncoding, match="UTF-8"):
        parse_predict_request(base64.b64encode(b'{"text": "\xff\xfe"}').decode(), True, None)


@pytest.mark.parametrize("body", ["", "   ", None])
def test_empty_body_is_invalid_json(body: str | None) -> None:
    with pytest.raises(InvalidJson, match="empty"):
        parse_predict_request(body, False, None)


def test_invalid_json_explains_where() -> None:
    with pytest.raises(InvalidJson, match="line 1 column"):
        parse_predict_request('{"text": "x"', False, None)


def test_deeply_nested_json_is_rejected_cleanly() -> None:
    with pytest.raises((InvalidJson, PayloadTooLarge)):
        parse_predict_request("[" * 1000 + "]" * 1000, False, None)
    with pytest.raises(InvalidJson):
        parse_predict_request("[" * 500, False, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"text": 42}', "text must be a string."),
        ('{"text": null}', "text must be a string."),
        ("{}", "body must have the properties text."),
        ('{"txt": "typo"}', "body must have the properties text."),
        ('{"text": "x", "lang": "en"}', "body has a property that is not allowed (allowed: text)."),
        ('["text"]', "body must be a JSON object."),
        ('"just a string"', "body must be a JSON object."),
    ],
)
def test_schema_violations_explain_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_predict_request(body, False, None)
    assert caught.value.message == message


def test_the_message_never_quotes_the_clients_data() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_predict_request('{"text": "x", "my-secret-customer-42": 1}', False, None)
    assert "my-secret" not in caught.value.message


def test_text_over_1024_characters_is_rejected_by_the_schema() -> None:
    # Only reachable when characters are escaped compactly... they are not: 1025 chars need > 1024 bytes.
    # The schema still enforces it for any caller of the validator directly.
    from prediction.request import _PREDICT_REQUEST
    from sentiment_api.schemas import validate_input

    with pytest.raises(ValidationFailed, match="text must be at most 1024 characters long"):
        validate_input(_PREDICT_REQUEST, {"text": "x" * 1025})


def test_unpaired_surrogate_escape_is_rejected() -> None:
    with pytest.raises(InvalidEncoding, match="surrogate"):
        parse_predict_request('{"text": "\\ud800"}', False, None)


@pytest.mark.parametrize(
    "text", ["", " ", "\t\n", "\u00a0\u2003\u3000"], ids=["empty", "space", "tab-newline", "unicode-spaces"]
)
def test_empty_or_whitespace_text_is_refused_with_its_own_code(text: str) -> None:
    with pytest.raises(EmptyText) as caught:
        parse_predict_request(json.dumps({"text": text}), False, None)
    assert (caught.value.status, caught.value.code) == (400, "EMPTY_TEXT")


def test_text_with_any_visible_character_is_classified() -> None:
    assert parse_predict_request(json.dumps({"text": " ok "}), False, None).text == " ok "
