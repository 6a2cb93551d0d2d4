"""The JWT authorizer's checks (pure functions, fixed clock) and the dev identity provider."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from local_stack.api import authorizer_config
from local_stack.authorizer import MAX_TOKEN_BYTES, Authorized, AuthorizerConfig, Denied, authorize
from local_stack.idp import AUDIENCE, ISSUER, PREDICT_SCOPE, PRIVATE_KEY_FILE, DevIdentityProvider, load_or_create

NOW = 1_800_000_000.0
ROUTE_SCOPES = (PREDICT_SCOPE,)


@pytest.fixture(scope="module")
def config(idp: DevIdentityProvider) -> AuthorizerConfig:
    return authorizer_config(idp)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(idp: DevIdentityProvider, **changes: Any) -> dict[str, Any]:
    """The IdP's standard claims at NOW, with changes (a value of None removes the claim)."""
    merged = idp.claims(sub="alice", now=NOW) | changes
    return {name: value for name, value in merged.items() if value is not None}


def check(token: str | None, config: AuthorizerConfig, scopes: tuple[str, ...] = ROUTE_SCOPES) -> Denied:
    header = None if token is None else f"Bearer {token}"
    result = authorize(header, scopes, config, NOW)
    assert isinstance(result, Denied), result
    return result


# ---- accepted ----------------------------------------------------------------------------------------
def test_a_valid_token_is_accepted_with_its_claims_and_scopes(idp: DevIdentityProvider, config: AuthorizerConfig):
    result = authorize(f"Bearer {idp.mint(sub='alice', now=NOW)}", ROUTE_SCOPES, config, NOW)

    assert isinstance(result, Authorized)
    assert result.claims["sub"] == "alice"
    assert result.scopes == (PREDICT_SCOPE,)


@pytest.mark.parametrize("prefix", ["", "Bearer ", "bearer ", "BEARER  ", "  Bearer "])
def test_the_bearer_prefix_is_optional_as_in_api_gateway(
    prefix: str, idp: DevIdentityProvider, config: AuthorizerConfig
):
    assert isinstance(authorize(prefix + idp.mint(now=NOW), ROUTE_SCOPES, config, NOW), Authorized)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"aud": None, "client_id": AUDIENCE}, id="client_id-when-aud-is-absent"),
        pytest.param({"aud": ["other", AUDIENCE]}, id="aud-as-a-list"),
        pytest.param({"scope": None, "scp": [PREDICT_SCOPE]}, id="scp-as-a-list"),
        pytest.param({"scope": f"openid {PREDICT_SCOPE} email"}, id="one-of-several-scopes"),
        pytest.param({"nbf": None, "iat": None}, id="nbf-and-iat-are-optional"),
        pytest.param({"exp": NOW + 1}, id="expires-in-one-second"),
        pytest.param({"nbf": NOW, "iat": NOW}, id="valid-from-now"),
    ],
)
def test_accepted_variants(changes: dict[str, Any], idp: DevIdentityProvider, config: AuthorizerConfig):
    token = idp.sign(claims(idp, **changes))
    assert isinstance(authorize(token, ROUTE_SCOPES, config, NOW), Authorized)


def test_a_route_without_scopes_does_not_check_them(idp: DevIdentityProvider, config: AuthorizerConfig):
    token = idp.sign(claims(idp, scope=None))
    assert isinstance(authorize(token, (), config, NOW), Authorized)


# ---- 401 ---------------------------------------------------------------------------------------------
def none_alg(idp: DevIdentityProvider) -> str:
    return f"{b64json({'alg': 'none', 'typ': 'JWT', 'kid': idp.kid})}.{b64json(claims(idp))}."


def hs256_with_public_key(idp: DevIdentityProvider) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the RSA public key's PEM bytes."""
    public_pem = idp.key.as_pem(private=False)
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': idp.kid})}.{b64json(claims(idp))}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(idp: DevIdentityProvider) -> str:
    header, _, signature = idp.sign(claims(idp)).split(".")
    return f"{header}.{b64json(claims(idp, sub='admin'))}.{signature}"


def rs256(idp: DevIdentityProvider, header: dict[str, Any], payload: bytes) -> str:
    """Any header and payload, signed with the IdP's real key (shapes joserfc would refuse to produce)."""
    signing_input = f"{b64json(header)}.{b64(payload)}"
    private_key = idp.key.private_key
    assert private_key is not None
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def without_kid(idp: DevIdentityProvider) -> str:
    return rs256(idp, {"alg": "RS256", "typ": "JWT"}, json.dumps(claims(idp)).encode())


def with_crit(idp: DevIdentityProvider) -> str:
    header = {"alg": "RS256", "kid": idp.kid, "crit": ["x-unknown"], "x-unknown": 1}
    return rs256(idp, header, json.dumps(claims(idp)).encode())


def not_an_object(idp: DevIdentityProvider) -> str:
    return rs256(idp, {"alg": "RS256", "kid": idp.kid}, b"[1, 2]")


def not_json(idp: DevIdentityProvider) -> str:
    return rs256(idp, {"alg": "RS256", "kid": idp.kid}, b"{not json")


TokenFactory = Callable[[DevIdentityProvider, DevIdentityProvider], str]

REJECTED: list[Any] = [
    pytest.param(lambda idp, other: none_alg(idp), "the token is not signed with a supported algorithm", id="alg-none"),
    pytest.param(
        lambda idp, other: hs256_with_public_key(idp),
        "the token is not signed with a supported algorithm",
        id="hs256-keyed-with-the-public-key",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp), header={"kid": "no-such-key"}),
        "the token's kid does not match a key of the issuer",
        id="unknown-kid",
    ),
    pytest.param(
        lambda idp, other: without_kid(idp),
        "the token's kid does not match a key of the issuer",
        id="no-kid",
    ),
    pytest.param(
        lambda idp, other: other.sign(claims(idp), header={"kid": idp.kid}),
        "the token signature is invalid",
        id="forged-with-another-key",
    ),
    pytest.param(lambda idp, other: tampered(idp), "the token signature is invalid", id="tampered-payload"),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp))[:-12], "the token signature is invalid", id="truncated-signature"
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp)).rsplit(".", 1)[0], "the token is malformed", id="two-segments"
    ),
    pytest.param(lambda idp, other: "garbage", "the token is malformed", id="garbage"),
    pytest.param(lambda idp, other: "a.b.c", "the token is malformed", id="three-garbage-segments"),
    pytest.param(lambda idp, other: "eyJ.ñ.x", "the token is malformed", id="not-ascii"),
    pytest.param(lambda idp, other: not_an_object(idp), "the token is malformed", id="payload-not-an-object"),
    pytest.param(lambda idp, other: not_json(idp), "the token is malformed", id="payload-not-json"),
    pytest.param(lambda idp, other: with_crit(idp), "the token is malformed", id="crit-header"),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, iss="https://evil.example")),
        "the token does not have a valid issuer",
        id="wrong-issuer",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, iss=None)),
        "the token does not have a valid issuer",
        id="no-issuer",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, aud="another-api")),
        "the token does not have a valid audience",
        id="wrong-audience",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, aud="another-api", client_id=AUDIENCE)),
        "the token does not have a valid audience",
        id="aud-wins-over-client_id",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, aud=None)),
        "the token does not have a valid audience",
        id="no-audience",
    ),
    pytest.param(lambda idp, other: idp.sign(claims(idp, exp=NOW)), "the token has expired", id="expired-this-second"),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, iat=NOW - 7200, nbf=NOW - 7200, exp=NOW - 3600)),
        "the token has expired",
        id="expired-an-hour-ago",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, exp=None)),
        "the token does not have a valid exp claim",
        id="no-exp",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, exp=str(int(NOW) + 60))),
        "the token does not have a valid exp claim",
        id="exp-not-a-number",
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, nbf=NOW + 60)), "the token is not valid yet", id="nbf-in-future"
    ),
    pytest.param(
        lambda idp, other: idp.sign(claims(idp, iat=NOW + 60)),
        "the token was issued in the future",
        id="iat-in-future",
    ),
]


@pytest.mark.parametrize(("make_token", "description"), REJECTED)
def test_rejected_tokens_get_401_with_a_reason(
    make_token: TokenFactory,
    description: str,
    idp: DevIdentityProvider,
    other_idp: DevIdentityProvider,
    config: AuthorizerConfig,
):
    denied = check(make_token(idp, other_idp), config)

    assert denied.status == HTTPStatus.UNAUTHORIZED
    assert denied.description == description
    assert denied.body == {"message": "Unauthorized"}


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   "])
def test_no_token_is_401(header: str | None, config: AuthorizerConfig):
    denied = authorize(header, ROUTE_SCOPES, config, NOW)

    assert isinstance(denied, Denied)
    assert denied.status == HTTPStatus.UNAUTHORIZED


def test_an_oversized_header_is_401_before_it_is_parsed(config: AuthorizerConfig):
    denied = authorize("Bearer " + "a" * MAX_TOKEN_BYTES, ROUTE_SCOPES, config, NOW)

    assert isinstance(denied, Denied)
    assert (denied.status, denied.description) == (HTTPStatus.UNAUTHORIZED, "the token is too large")


def test_401_carries_the_www_authenticate_header_api_gateway_documents(
    idp: DevIdentityProvider, config: AuthorizerConfig
):
    denied = check(idp.sign(claims(idp, aud="another-api")), config)

    # Verbatim from "Troubleshooting issues with HTTP API JWT authorizers".
    assert denied.www_authenticate == (
        'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"'
    )


# ---- 403 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"scope": "openid email"}, id="other-scopes"),
        pytest.param({"scope": None}, id="no-scope-claim"),
        pytest.param({"scope": ""}, id="empty-scope"),
        pytest.param({"scope": "sentiment-api/predictx"}, id="prefix-is-not-a-match"),
    ],
)
def test_a_token_without_the_route_scope_is_403(
    changes: dict[str, Any], idp: DevIdentityProvider, config: AuthorizerConfig
):
    denied = check(idp.sign(claims(idp, **changes)), config)

    assert denied.status == HTTPStatus.FORBIDDEN
    assert denied.body == {"message": "Forbidden"}
    assert denied.www_authenticate.startswith(f'Bearer scope="{PREDICT_SCOPE}" error="insufficient_scope"')


def test_scopes_are_checked_after_the_token_is_valid(idp: DevIdentityProvider, config: AuthorizerConfig):
    denied = check(idp.sign(claims(idp, scope="openid", exp=NOW - 1)), config)

    assert denied.status == HTTPStatus.UNAUTHORIZED


# ---- the dev identity provider -----------------------------------------------------------------------
def test_minted_tokens_carry_the_documented_claims(idp: DevIdentityProvider):
    token = idp.mint(sub="alice", ttl_s=600, now=NOW)
    header, payload, _ = token.split(".")
    decoded_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=="))

    assert decoded_header == {"alg": "RS256", "typ": "JWT", "kid": idp.kid}
    assert decoded["iss"] == ISSUER == "https://dev-idp.sentiment-api.local"
    assert decoded["aud"] == AUDIENCE == "sentiment-api"
    assert decoded["sub"] == "alice"
    assert decoded["scope"] == "sentiment-api/predict"
    assert (decoded["iat"], decoded["nbf"], decoded["exp"]) == (int(NOW), int(NOW), int(NOW) + 600)
    assert (
        decoded["jti"]
        and decoded["jti"] != json.loads(base64.urlsafe_b64decode(idp.mint(now=NOW).split(".")[1] + "=="))["jti"]
    )


def test_the_key_is_created_once_with_mode_0600_and_reused(tmp_path: Path):
    keys_dir = tmp_path / "keys"
    first = load_or_create(keys_dir)
    key_file = keys_dir / PRIVATE_KEY_FILE

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert load_or_create(keys_dir).kid == first.kid
    assert list(keys_dir.iterdir()) == [key_file]  # no temporary files left behind


def test_a_key_file_readable_by_others_is_tightened(tmp_path: Path):
    load_or_create(tmp_path)
    (tmp_path / PRIVATE_KEY_FILE).chmod(0o644)

    load_or_create(tmp_path)

    assert stat.S_IMODE((tmp_path / PRIVATE_KEY_FILE).stat().st_mode) == 0o600


def test_the_jwks_is_public_and_names_the_key_by_its_thumbprint(idp: DevIdentityProvider):
    (key,) = idp.jwks()["keys"]

    assert key["kid"] == idp.key.thumbprint()
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()
    assert len(base64.urlsafe_b64decode(str(key["n"]) + "==")) * 8 == 2048
