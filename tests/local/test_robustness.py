"""Input robustness through the local HTTP API (real HTTP, real JWT, unchanged handler, real model server and
whatever artefact the session stack serves): every odd input is answered 200 with a valid label, or refused
with a documented 4xx and the one error shape; never a 5xx.

Documented refusals (README / docs/architecture.md): a body over 1024 bytes is 413 PAYLOAD_TOO_LARGE (so a
1024-character text, 1036 bytes with its JSON frame, is refused; 1012 ASCII characters are the most that fit);
a raw control character inside a JSON string is 400 INVALID_JSON (JSON requires it escaped: ``\\u0007`` is
accepted); an unpaired UTF-16 surrogate escape is 400 INVALID_ENCODING; bytes that are not UTF-8 are 400
INVALID_ENCODING."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

TIMEOUT_S = 15
LABELS = {"positive", "neutral", "negative"}
SUB = "robustness-user"
BODY_LIMIT = 1024
FRAME = len(b'{"text": ""}')  # 12 bytes around the text


def body_for(text: str) -> bytes:
    """The request body as a client library would send it (non-ASCII as UTF-8, not \\u escapes)."""
    return json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")


# name -> text; each is answered 200 with a label
ANSWERED: dict[str, str] = {
    "emoji": "😀🔥👍 love it ❤️",
    "emoji only": "😡😡😡",
    "flag and skin-tone sequences": "🇺🇸👍🏽 ok",
    "url": "see https://example.com/path?q=1&r=%20x#frag for details",
    "mention and hashtags": "@united thanks for nothing #fail #neveragain",
    "chinese": "这个产品非常好，我很喜欢",  # noqa: RUF001
    "arabic": "هذا المنتج رائع جدا",
    "russian": "Это ужасный продукт, не покупайте",
    "mixed scripts": "great 很好 отлично رائع",
    "escaped control characters": "bad\u0000product\u0007\u001b[31m never\u000b again\u007f",
    "zero-width and bidi controls": "good\u200b\u200d\u202eproduct\u2066\ufeff",
    "a single character": "!",
    "1012 ascii characters (a 1024-byte body)": ("The product is fine but the delivery was late. " * 30)[:1012],
    "1012 copies of one letter": "a" * 1012,
    "longest 2-byte text that fits (506 characters)": "é" * ((BODY_LIMIT - FRAME) // 2),
    "longest 4-byte text that fits (253 emoji)": "😀" * ((BODY_LIMIT - FRAME) // 4),
    "quotes, backslashes and newlines": 'he said "great"\\n\nthen \\ left',
}

# name -> (body, status, error code)
REFUSED: dict[str, tuple[bytes, int, str]] = {
    "1024 ascii characters (1036-byte body)": (body_for("a" * 1024), 413, "PAYLOAD_TOO_LARGE"),
    "1024 characters of mixed text": (body_for(("great product 很好 " * 80)[:1024]), 413, "PAYLOAD_TOO_LARGE"),
    "1013 ascii characters (1025-byte body)": (body_for("a" * 1013), 413, "PAYLOAD_TOO_LARGE"),
    "507 two-byte characters (1026-byte body)": (body_for("é" * 507), 413, "PAYLOAD_TOO_LARGE"),
    "a raw control character in the JSON string": (b'{"text": "bad\x07product"}', 400, "INVALID_JSON"),
    "a raw NUL in the JSON string": (b'{"text": "a\x00b"}', 400, "INVALID_JSON"),
    "an unpaired surrogate escape": (b'{"text": "ok \\ud800 then"}', 400, "INVALID_ENCODING"),
    "bytes that are not UTF-8": (b'{"text": "caf\xe9"}', 400, "INVALID_ENCODING"),
    "an empty body": (b"", 400, "INVALID_JSON"),
    "whitespace as the body": (b"   \n", 400, "INVALID_JSON"),
    "text is null": (b'{"text": null}', 400, "VALIDATION_ERROR"),
    "empty text": (body_for(""), 400, "EMPTY_TEXT"),
    "whitespace-only text": (body_for(" \t\n \r\n "), 400, "EMPTY_TEXT"),
    "unicode whitespace only": (body_for("\u00a0\u2003\u3000"), 400, "EMPTY_TEXT"),
}


def post(stack: RunningStack, body: bytes, token: str) -> requests.Response:
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    return requests.post(f"{stack.api_url}/predict", data=body, headers=headers, timeout=TIMEOUT_S)


def check_answer(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sentiment"] in LABELS
    if "scores" in body:
        assert set(body["scores"]) == LABELS
        assert sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-4)  # scores are rounded
        assert max(body["scores"], key=body["scores"].get) == body["sentiment"]
    return body


def test_the_boundary_bodies_have_the_sizes_the_cases_claim():
    assert len(body_for(ANSWERED["1012 ascii characters (a 1024-byte body)"])) == BODY_LIMIT
    assert len(body_for(ANSWERED["longest 2-byte text that fits (506 characters)"])) == BODY_LIMIT
    assert len(body_for(ANSWERED["longest 4-byte text that fits (253 emoji)"])) == BODY_LIMIT
    assert len(REFUSED["1013 ascii characters (1025-byte body)"][0]) == BODY_LIMIT + 1
    assert len(REFUSED["1024 ascii characters (1036-byte body)"][0]) == BODY_LIMIT + FRAME


@pytest.mark.parametrize("name", list(ANSWERED))
def test_odd_inputs_are_answered_with_a_label(name: str, local_stack: RunningStack, token: Callable[..., str]):
    check_answer(post(local_stack, body_for(ANSWERED[name]), token(sub=SUB)))


def test_escaped_and_raw_utf8_are_the_same_text(local_stack: RunningStack, token: Callable[..., str]):
    text = ANSWERED["emoji"]
    raw = check_answer(post(local_stack, body_for(text), token(sub=SUB)))
    escaped = check_answer(post(local_stack, json.dumps({"text": text}).encode("ascii"), token(sub=SUB)))

    assert raw == escaped


@pytest.mark.parametrize("name", list(REFUSED))
def test_invalid_inputs_are_a_documented_4xx(name: str, local_stack: RunningStack, token: Callable[..., str]):
    body, status, code = REFUSED[name]

    response = post(local_stack, body, token(sub=SUB))

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "correlation_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
