"""What the API Gateway HTTP API JWT authorizer checks, as pure functions (no HTTP, no clock of their own).

The checks and their order follow "Control access to HTTP APIs with JWT authorizers in API Gateway":
the token comes from the identity source (``Authorization``), alone or prefixed with ``Bearer``; it is
decoded; its algorithm must be RSA (this emulator accepts RS256, the only one the dev IdP issues) and its
signature must verify with the JWKS key named by its ``kid``; then ``iss`` must equal the issuer,
``aud`` (or ``client_id`` when ``aud`` is absent) must be one of the audiences, ``exp`` must be after
now, ``nbf`` and ``iat`` must be before now, and ``scope``/``scp`` must hold at least one of the route's
scopes.

Decisions this emulator makes where the documentation is silent:

* leeway: ``LEEWAY_S`` = 0 seconds. The local IdP and the emulator share one clock, so there is no skew
  to absorb, and a token is refused from the second of its ``exp`` on.
* ``exp`` is required (a number); ``nbf`` and ``iat`` are optional, but must be numbers when present.
* a token longer than ``MAX_TOKEN_BYTES`` (the HTTP API limit on request line plus headers) is refused
  with 401 before it is parsed.
* failures answer 401 ``{"message":"Unauthorized"}`` with ``www-authenticate: Bearer scope=""
  error="invalid_token" error_description="..."``: the format API Gateway documents in "Troubleshooting
  issues with HTTP API JWT authorizers". Only "the token does not have a valid audience" is quoted from
  AWS; the other descriptions are ours, in the same style.
* a missing scope answers 403 ``{"message":"Forbidden"}`` with ``error="insufficient_scope"`` and the
  route's scopes in ``scope="..."`` (RFC 6750 section 3.1).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

ALGORITHMS = ("RS256",)
LEEWAY_S = 0
MAX_TOKEN_BYTES = 10_240
_BEARER = re.compile(r"bearer\s+", re.IGNORECASE)
_HEADERS_WE_CANNOT_HONOUR = frozenset({"crit", "b64", "jku", "x5u"})


@dataclass(frozen=True, slots=True)
class AuthorizerConfig:
    """The JwtConfiguration of an ``AWS::ApiGatewayV2::Authorizer`` plus the issuer's JWKS."""

    issuer: str
    audiences: frozenset[str]
    keys: Mapping[str, RSAKey]
    leeway_s: int = LEEWAY_S


@dataclass(frozen=True, slots=True)
class Authorized:
    """A token that passed every check; ``scopes`` are the token's own scopes."""

    claims: Mapping[str, Any]
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Denied:
    status: HTTPStatus
    description: str
    required_scopes: tuple[str, ...] = field(default=())

    @property
    def body(self) -> dict[str, str]:
        return {"message": "Forbidden" if self.status == HTTPStatus.FORBIDDEN else "Unauthorized"}

    @property
    def www_authenticate(self) -> str:
        if self.status == HTTPStatus.FORBIDDEN:
            scope, error = " ".join(self.required_scopes), "insufficient_scope"
        else:
            scope, error = "", "invalid_token"
        return f'Bearer scope="{scope}" error="{error}" error_description="{self.description}"'


AuthResult = Authorized | Denied


class _Rejected(Exception):
    """One failed check; turned into a ``Denied`` by ``authorize``."""

    def __init__(self, description: str, status: HTTPStatus = HTTPStatus.UNAUTHORIZED) -> None:
        super().__init__(description)
        self.description = description
        self.status = status


def authorize(
    authorization: str | None,
    required_scopes: Iterable[str],
    config: AuthorizerConfig,
    now: float,
) -> AuthResult:
    """Runs every check on the raw ``Authorization`` header value at time ``now`` (epoch seconds)."""
    required = tuple(required_scopes)
    try:
        claims = verified_claims(token_from_header(authorization), config)
        check_claims(claims, config, now)
        scopes = token_scopes(claims)
        check_scopes(scopes, required)
    except _Rejected as rejected:
        return Denied(rejected.status, rejected.description, required)
    return Authorized(claims=claims, scopes=scopes)


def token_from_header(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise _Rejected("the token is missing")
    if len(authorization.encode("utf-8", errors="surrogateescape")) > MAX_TOKEN_BYTES:
        raise _Rejected("the token is too large")
    value = authorization.strip()
    prefix = _BEARER.match(value)
    token = value[prefix.end() :] if prefix else value
    if not token or not token.isascii():
        raise _Rejected("the token is malformed")
    return token


def verified_claims(token: str, config: AuthorizerConfig) -> dict[str, Any]:
    """Decodes the JWS, checks ``alg`` and ``kid``, verifies the signature, returns the claim set."""
    try:
        signed = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError):
        raise _Rejected("the token is malformed") from None
    header = signed.protected
    if not isinstance(header, dict) or _HEADERS_WE_CANNOT_HONOUR & header.keys():
        raise _Rejected("the token is malformed")
    if header.get("alg") not in ALGORITHMS:
        raise _Rejected("the token is not signed with a supported algorithm")
    key = config.keys.get(header["kid"]) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise _Rejected("the token's kid does not match a key of the issuer")
    try:
        valid = jws.validate_compact(signed, key, algorithms=ALGORITHMS)
    except JoseError:
        valid = False
    if not valid:
        raise _Rejected("the token signature is invalid")
    return _claim_set(signed.payload)


def _claim_set(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise _Rejected("the token is malformed") from None
    if not isinstance(claims, dict):
        raise _Rejected("the token is malformed")
    return claims


def check_claims(claims: Mapping[str, Any], config: AuthorizerConfig, now: float) -> None:
    if claims.get("iss") != config.issuer:
        raise _Rejected("the token does not have a valid issuer")
    if not _audiences(claims) & config.audiences:
        raise _Rejected("the token does not have a valid audience")
    exp = _numeric_date(claims, "exp", required=True)
    if exp is not None and now >= exp + config.leeway_s:
        raise _Rejected("the token has expired")
    nbf = _numeric_date(claims, "nbf", required=False)
    if nbf is not None and nbf > now + config.leeway_s:
        raise _Rejected("the token is not valid yet")
    iat = _numeric_date(claims, "iat", required=False)
    if iat is not None and iat > now + config.leeway_s:
        raise _Rejected("the token was issued in the future")


def _audiences(claims: Mapping[str, Any]) -> set[str]:
    """``aud`` (a string or a list of strings) wins; ``client_id`` counts only when ``aud`` is absent."""
    value = claims["aud"] if "aud" in claims else claims.get("client_id")
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Rejected(f"the token does not have a valid {name} claim")
    return float(value)


def token_scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """``scope`` (space-separated, as Cognito sends it) or ``scp`` (a list or a string, as others send it)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def check_scopes(scopes: tuple[str, ...], required: tuple[str, ...]) -> None:
    """At least one of the route's scopes must be in the token (no required scopes: nothing to check)."""
    if required and not set(required) & set(scopes):
        raise _Rejected("the token does not have the required scope", HTTPStatus.FORBIDDEN)
