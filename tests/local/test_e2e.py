"""End to end over real HTTP: the whole local stack (`python -m local_stack serve`) as a subprocess, with
the real model artefact, the unchanged handler and real tokens of the dev IdP."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest
import requests
from local_stack.idp import DevIdentityProvider

from tests.helpers import rate_limit_fields

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

TIMEOUT_S = 10
CORRELATION_ID = "e2e-correlation-0001"


def predict(
    stack: RunningStack, body: bytes | str, token: str | None, headers: dict[str, str] | None = None
) -> requests.Response:
    sent = {"content-type": "application/json", **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    data = body.encode("utf-8") if isinstance(body, str) else body
    return requests.post(f"{stack.api_url}/predict", data=data, headers=sent, timeout=TIMEOUT_S)


def text_body(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes."""
    frame = b'{"text": ""}'
    return b'{"text": "' + b"a" * (size - len(frame)) + b'"}'


def error_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "correlation_id"}
    assert body["error"]["message"]
    assert body["error"]["correlation_id"] == response.headers["x-correlation-id"]
    return body["error"]


# ---- 200 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I absolutely love this! It is wonderful, and it works perfectly.", "positive"),
        ("This is terrible. It broke after one day, and I hate it. Awful, worst purchase ever.", "negative"),
        ("The meeting is scheduled for Tuesday at the main office.", "neutral"),
    ],
)
def test_each_label_is_reachable(text: str, label: str, local_stack: RunningStack, token: Callable[..., str]):
    response = predict(local_stack, f'{{"text": "{text}"}}', token())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["sentiment"] == label


def test_the_rate_limiter_runs_against_the_local_dynamodb(local_stack: RunningStack, token: Callable[..., str]):
    first = predict(local_stack, '{"text": "fine"}', token(sub="rate-limit-user"))
    second = predict(local_stack, '{"text": "fine"}', token(sub="rate-limit-user"))

    assert (first.status_code, second.status_code) == (200, 200)
    (policy, first_limit), (_, second_limit) = rate_limit_fields(first.headers), rate_limit_fields(second.headers)
    assert policy == {"q": 200, "w": 120, "qu": "request"}
    assert second_limit["r"] == first_limit["r"] - 1


def test_a_body_of_exactly_1024_bytes_is_accepted(local_stack: RunningStack, token: Callable[..., str]):
    body = text_body(1024)
    assert len(body) == 1024

    response = predict(local_stack, body, token())

    assert response.status_code == 200, response.text
    assert response.json()["sentiment"] in {"positive", "neutral", "negative"}


def test_a_well_formed_correlation_id_is_echoed(local_stack: RunningStack, token: Callable[..., str]):
    response = predict(local_stack, '{"text": "fine"}', token(), headers={"x-correlation-id": CORRELATION_ID})

    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == CORRELATION_ID


def test_a_malformed_correlation_id_is_replaced(local_stack: RunningStack, token: Callable[..., str]):
    response = predict(local_stack, '{"text": "fine"}', token(), headers={"x-correlation-id": "bad id!"})

    assert response.status_code == 200
    assert response.headers["x-correlation-id"] not in {"", "bad id!"}


# ---- 4xx from the function ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param('{"text": "unterminated', "INVALID_JSON", id="invalid-json"),
        pytest.param('{"text": 42}', "VALIDATION_ERROR", id="text-not-a-string"),
        pytest.param("{}", "VALIDATION_ERROR", id="missing-text"),
        pytest.param('{"text": "ok", "lang": "en"}', "VALIDATION_ERROR", id="extra-property"),
    ],
)
def test_bad_requests_are_400_with_an_error_body(
    body: str, code: str, local_stack: RunningStack, token: Callable[..., str]
):
    response = predict(local_stack, body, token(), headers={"x-correlation-id": CORRELATION_ID})

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code
    assert error["correlation_id"] == CORRELATION_ID


def test_a_body_of_1025_bytes_is_413(local_stack: RunningStack, token: Callable[..., str]):
    body = text_body(1025)
    assert len(body) == 1025

    response = predict(local_stack, body, token())

    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"


# ---- 401 / 404 from the API --------------------------------------------------------------------------
def expired(idp: DevIdentityProvider) -> str:
    return idp.sign(idp.claims(now=time.time() - 7200, ttl_s=3600))


def wrong_audience(idp: DevIdentityProvider) -> str:
    return idp.sign(idp.claims() | {"aud": "another-api"})


def forged(idp: DevIdentityProvider, forger: DevIdentityProvider) -> str:
    return forger.sign(idp.claims(), header={"kid": idp.kid})


@pytest.mark.parametrize(
    ("make_token", "description"),
    [
        pytest.param(lambda idp, forger: None, "the token is missing", id="no-token"),
        pytest.param(forged, "the token signature is invalid", id="forged"),
        pytest.param(lambda idp, forger: expired(idp), "the token has expired", id="expired"),
        pytest.param(
            lambda idp, forger: wrong_audience(idp), "the token does not have a valid audience", id="wrong-audience"
        ),
    ],
)
def test_unauthenticated_requests_are_401(
    make_token: Callable[[DevIdentityProvider, DevIdentityProvider], str | None],
    description: str,
    local_stack: RunningStack,
    idp: DevIdentityProvider,
    other_idp: DevIdentityProvider,
):
    response = predict(local_stack, '{"text": "I love it"}', make_token(idp, other_idp))

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert response.headers["www-authenticate"] == (
        f'Bearer scope="" error="invalid_token" error_description="{description}"'
    )


def test_a_token_without_the_predict_scope_is_403(local_stack: RunningStack, token: Callable[..., str]):
    response = predict(local_stack, '{"text": "I love it"}', token(scope="openid"))

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_an_unknown_route_is_404(local_stack: RunningStack):
    response = requests.get(f"{local_stack.api_url}/predict", timeout=TIMEOUT_S)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


# ---- lifecycle --------------------------------------------------------------------------------------
def test_sigterm_stops_the_stack_cleanly(start_stack: Callable[[], AbstractContextManager[RunningStack]]):
    with start_stack() as stack:
        assert requests.get(f"{stack.api_url}/.well-known/jwks.json", timeout=TIMEOUT_S).status_code == 200

        assert stack.stop() == 0
        assert "stopping" in stack.log()
