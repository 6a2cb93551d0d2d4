"""Property-based fuzzing of POST /predict over real HTTP against the whole local stack (hypothesis drives
requests with valid tokens): arbitrary bodies, JSON documents, texts and headers, 10,000+ requests in all.

Properties, for every answer: no 5xx; a 4xx or 200 has exactly the shape docs/openapi.yaml documents for
its status (tests/template/test_openapi.response_validator); a function's answer carries its correlation id
(echoed when the request's was well formed) and the RateLimit-* headers. Tokens rotate to a new `sub` every
150 requests so that the per-user limit (burst 200) never turns the run into a run of 429s.

FUZZ_SCALE (default 1.0) scales every test's max_examples, e.g. FUZZ_SCALE=0.1 for a quick local pass.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_stack.idp import DevIdentityProvider

from tests.helpers import rate_limit_fields
from tests.local.conftest import failed_open
from tests.template.test_openapi import response_validator

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

SCALE = float(os.environ.get("FUZZ_SCALE", "1.0"))
EXAMPLES = {"bodies": 2500, "json": 2500, "texts": 2500, "headers": 2600}  # 10,100 requests at scale 1
REQUESTS_PER_SUB = 150
TIMEOUT_S = 15
WELL_FORMED_CORRELATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
# Framing and connection headers belong to the HTTP client, not to the fuzz (API Gateway owns them too).
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "expect",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "content-type",
    }
)


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=max(1, int(EXAMPLES[name] * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


# ---- the client -----------------------------------------------------------------------------------
@dataclass
class Fuzzer:
    stack: RunningStack
    idp: DevIdentityProvider
    session: requests.Session = field(default_factory=requests.Session)
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    _token: str = ""

    def token(self) -> str:
        if self.sent % REQUESTS_PER_SUB == 0 or not self._token:
            self._token = self.idp.mint(sub=f"fuzz-{uuid.uuid4()}")
        return self._token

    def post(self, body: bytes, headers: Mapping[str, str]) -> requests.Response:
        sent = {**headers, "authorization": f"Bearer {self.token()}"}
        response = self.session.post(f"{self.stack.api_url}/predict", data=body, headers=sent, timeout=TIMEOUT_S)
        self.sent += 1
        self.statuses[response.status_code] += 1
        return response


@pytest.fixture(scope="module")
def fuzzer(local_stack: RunningStack, idp: DevIdentityProvider) -> Iterator[Fuzzer]:
    fuzzer = Fuzzer(local_stack, idp)
    started = time.monotonic()
    yield fuzzer
    elapsed = time.monotonic() - started
    fuzzer.session.close()
    print(f"\nfuzz: {fuzzer.sent} requests in {elapsed:.1f} s; statuses {dict(sorted(fuzzer.statuses.items()))}")


def check_answer(
    response: requests.Response, sent_correlation_id: str | None = None, stack: RunningStack | None = None
) -> dict[str, Any]:
    """The properties every answer must have; returns the parsed body."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    assert status != 429, "the token rotation must keep the fuzz under the per-user limit"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    validator = response_validator("/predict", "post", status)
    assert validator is not None, f"status {status} is not documented for POST /predict"
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, f"{status} {body} does not match docs/openapi.yaml: {errors[0].message}"
    if "error" in body or status == 200:  # the function answered (not API Gateway)
        correlation_id = response.headers["x-correlation-id"]
        if "error" in body:
            assert body["error"]["correlation_id"] == correlation_id
        if sent_correlation_id is not None and WELL_FORMED_CORRELATION_ID.fullmatch(sent_correlation_id):
            assert correlation_id == sent_correlation_id
        else:
            assert WELL_FORMED_CORRELATION_ID.fullmatch(correlation_id) or correlation_id.endswith("=")
        # both fields present and valid structured fields, unless the limiter failed open (logged, documented)
        if stack is None or not failed_open(stack, response):
            rate_limit_fields(response.headers)
    assert isinstance(body, dict)
    return body


# ---- strategies -----------------------------------------------------------------------------------
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/problem+json",
            "application/vnd.api+json",
            "text/plain",
            "text/json",
            "application/octet-stream",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin-1",
            "application/",
            "*/*",
            ";",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
predict_like = st.fixed_dictionaries(
    {"text": json_values}, optional={"txt": json_values, "lang": st.text(max_size=5), "": json_values}
)
texts = st.one_of(
    st.text(max_size=300),
    st.text(min_size=900, max_size=1100),
    # multi-byte UTF-8
    st.text(alphabet=st.characters(min_codepoint=0x80, exclude_categories=("Cs",)), min_size=300, max_size=600),
    st.sampled_from(["", " ", "\x00", "\u2028", "\ufeff", "😀" * 256, "a" * 1014, "a" * 1015, "\\", '"']),
)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,30}", fullmatch=True).filter(
    lambda name: name.lower() not in RESERVED_HEADERS
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=200
).map(str.strip)
correlation_ids = st.one_of(
    st.from_regex(WELL_FORMED_CORRELATION_ID, fullmatch=True),
    header_values,
    st.sampled_from(["short", "a" * 129, "-starts-with-dash", "has space in it", "new\tline-ish-value"]),
)


# ---- the properties -------------------------------------------------------------------------------
@fuzz_settings("bodies")
@given(body=st.binary(max_size=1100), content_type=st.one_of(st.none(), CONTENT_TYPES))
def test_arbitrary_bodies(fuzzer: Fuzzer, body: bytes, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = fuzzer.post(body, headers)
    check_answer(response, stack=fuzzer.stack)
    if len(body) > 1024 and response.status_code != 415:
        assert response.status_code == 413


@fuzz_settings("json")
@given(document=st.one_of(json_values, predict_like), ensure_ascii=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_json_documents(fuzzer: Fuzzer, document: Any, ensure_ascii: bool, indent: int | None) -> None:
    body = json.dumps(document, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    response = fuzzer.post(body, {"content-type": "application/json"})
    answer = check_answer(response, stack=fuzzer.stack)
    valid = isinstance(document, dict) and set(document) == {"text"} and isinstance(document["text"], str)
    if len(body) > 1024:
        assert response.status_code == 413
    elif valid and not document["text"].strip():
        assert (response.status_code, answer["error"]["code"]) == (400, "EMPTY_TEXT")
    elif valid:
        assert response.status_code == 200, answer
    else:
        assert response.status_code == 400 and answer["error"]["code"] in {"VALIDATION_ERROR", "INVALID_JSON"}


@fuzz_settings("texts")
@given(
    text=texts, ensure_ascii=st.booleans(), surrogate=st.sampled_from([None, "\\ud800", "\\udfff", "\\ud83d\\ude00"])
)
def test_texts(fuzzer: Fuzzer, text: str, ensure_ascii: bool, surrogate: str | None) -> None:
    encoded = json.dumps(text, ensure_ascii=ensure_ascii)
    if surrogate is not None:
        encoded = encoded[:-1] + surrogate + '"'
    body = f'{{"text": {encoded}}}'.encode()
    response = fuzzer.post(body, {"content-type": "application/json"})
    answer = check_answer(response, stack=fuzzer.stack)
    if len(body) > 1024:
        assert response.status_code == 413
    elif surrogate in {"\\ud800", "\\udfff"}:
        assert (response.status_code, answer["error"]["code"]) == (400, "INVALID_ENCODING")
    elif surrogate is None and not text.strip():
        assert (response.status_code, answer["error"]["code"]) == (400, "EMPTY_TEXT")
    else:
        assert response.status_code == 200, answer
        assert answer["sentiment"] in {"positive", "neutral", "negative"}


@fuzz_settings("headers")
@given(
    extra=st.dictionaries(header_names, header_values, max_size=8),
    content_type=st.one_of(st.none(), st.just("application/json"), CONTENT_TYPES),
    correlation_id=st.one_of(st.none(), correlation_ids),
)
def test_headers(fuzzer: Fuzzer, extra: dict[str, str], content_type: str | None, correlation_id: str | None) -> None:
    headers = {name: value for name, value in extra.items() if name.lower() != "x-correlation-id"}
    if content_type is not None:
        headers["content-type"] = content_type
    if correlation_id is not None:
        headers["x-correlation-id"] = correlation_id
    response = fuzzer.post(b'{"text": "It arrived on time."}', headers)
    answer = check_answer(response, correlation_id, fuzzer.stack)
    assert response.status_code in {200, 415}, answer
