"""Development identity provider: one RS256 signing key kept under ``.local-stack/keys/`` (gitignored, mode
0600), its JWKS, and access tokens shaped like the ones a Cognito resource server issues for client
credentials (``scope`` is a space-separated string).

The issuer is a fixed URL that does not depend on the ports the stack listens on, so a token minted
before ``serve`` starts (or by ``make token``) stays valid across restarts for as long as the key exists.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySetSerialization, RSAKey

from . import REPO_ROOT

ISSUER = "https://dev-idp.sentiment-api.local"
AUDIENCE = "sentiment-api"
PREDICT_SCOPE = "sentiment-api/predict"
ALGORITHM = "RS256"
KEY_BITS = 2048
DEFAULT_TTL_S = 3600
DEFAULT_SUB = "local-user"
DEFAULT_KEYS_DIR = REPO_ROOT / ".local-stack" / "keys"
PRIVATE_KEY_FILE = "signing-key.pem"


@dataclass(frozen=True, slots=True)
class DevIdentityProvider:
    """Signs tokens with one RSA key whose ``kid`` is its RFC 7638 thumbprint."""

    key: RSAKey
    issuer: str = ISSUER
    audience: str = AUDIENCE

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    def public_keys(self) -> dict[str, RSAKey]:
        """kid → public key: what a JWT authorizer fetches from the issuer's ``jwks_uri``."""
        return {self.kid: RSAKey.import_key(self.key.as_dict(private=False))}

    def jwks(self) -> KeySetSerialization:
        """The public JWKS document (never any private member)."""
        public = self.key.as_dict(private=False, kid=self.kid, alg=ALGORITHM, use="sig")
        return {"keys": [public]}

    def claims(
        self,
        sub: str = DEFAULT_SUB,
        scope: str = PREDICT_SCOPE,
        ttl_s: int = DEFAULT_TTL_S,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The standard claim set of an access token issued now."""
        issued_at = int(time.time() if now is None else now)
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "scope": scope,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl_s,
            "jti": str(uuid.uuid4()),
        }

    def sign(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        """Signs any claim set with this provider's key (tests use it to build invalid tokens too)."""
        protected = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid, **(header or {})}
        return jwt.encode(protected, dict(claims), self.key, algorithms=[ALGORITHM])

    def mint(
        self,
        sub: str = DEFAULT_SUB,
        scope: str = PREDICT_SCOPE,
        ttl_s: int = DEFAULT_TTL_S,
        now: float | None = None,
    ) -> str:
        return self.sign(self.claims(sub=sub, scope=scope, ttl_s=ttl_s, now=now))


def load_or_create(keys_dir: Path = DEFAULT_KEYS_DIR) -> DevIdentityProvider:
    """Loads the signing key from ``keys_dir``, generating it on first use."""
    path = keys_dir / PRIVATE_KEY_FILE
    if not path.exists():
        _create_key_file(path)
    _restrict_mode(path)
    return DevIdentityProvider(key=RSAKey.import_key(path.read_bytes()))


def _create_key_file(path: Path) -> None:
    """Writes a fresh key with mode 0600. Two processes racing here both end up with the winner's key:
    each writes a private temp file, and only one ``link`` onto the final name can succeed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = RSAKey.generate_key(KEY_BITS, private=True).as_pem(private=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()


def _restrict_mode(path: Path) -> None:
    """A key readable by group or others is tightened to 0600 (like ssh, a private key stays private)."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
