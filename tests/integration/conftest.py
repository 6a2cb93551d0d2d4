"""The integration suite's target: a deployed stack (``make integration API_URL=... TOKEN=...``, i.e. the
environment variables SENTIMENT_API_URL and SENTIMENT_API_TOKEN) or, when no URL is given, the local stack
started for the session (``make test``). The tests only speak HTTP to ``target.url``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_stack.idp import DevIdentityProvider, load_or_create

URL_ENV, TOKEN_ENV = "SENTIMENT_API_URL", "SENTIMENT_API_TOKEN"


@dataclass(frozen=True)
class Target:
    url: str
    token: str  # a valid bearer token with the predict scope
    mint: Callable[[str], str] | None  # local only: a token for another user (the rate limit is per user)

    @property
    def local(self) -> bool:
        return self.mint is not None


#: A deployed stack on its bootstrap endpoint (SageMaker Serverless Inference) answers 504 MODEL_TIMEOUT while
#: SageMaker starts a container after idle: wait for it before the suite judges anything.
WARM_UP_BUDGET_S = 90.0


def _warm_up(url: str, token: str, budget_s: float = WARM_UP_BUDGET_S) -> None:
    import time

    import requests

    deadline = time.monotonic() + budget_s
    while True:
        answer = requests.post(
            f"{url}/predict", json={"text": "warming up"}, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        if answer.status_code not in (503, 504) or time.monotonic() + 3 > deadline:
            return
        time.sleep(3)


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if url:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            pytest.fail(f"{URL_ENV} is set but {TOKEN_ENV} is not: give the token of the stack's M2M client")
        _warm_up(url, token)
        yield Target(url, token, None)
        return
    from tests.local.conftest import _running_stack  # the same start-up as the local end-to-end tests

    keys = tmp_path_factory.mktemp("integration-keys")
    idp = load_or_create(keys)
    with _running_stack(keys, tmp_path_factory.mktemp("integration-stack") / "stack.log") as stack:
        yield Target(stack.api_url, idp.mint(sub="integration"), lambda sub: idp.mint(sub=sub))


@pytest.fixture(scope="session")
def forger(tmp_path_factory: pytest.TempPathFactory) -> DevIdentityProvider:
    """A key of our own: its tokens must be refused by any stack (the issuer's keys are not ours)."""
    return load_or_create(Path(tmp_path_factory.mktemp("forger-keys")))
