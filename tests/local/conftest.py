"""Fixtures of the local-stack tests: dev identity providers, tokens, and the whole stack as a subprocess
(started once per session on free ports, torn down at the end)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from local_stack.idp import DEFAULT_TTL_S, PREDICT_SCOPE, DevIdentityProvider, load_or_create

ROOT = Path(__file__).resolve().parents[2]
# The model the stack serves in the e2e tests: the shipped artefact, as `make run` serves it.
MODEL_DIR = ROOT / "model" / "artefacts" / "minilm-sentiment"
STARTUP_TIMEOUT_S = 120.0
_API_LINE = re.compile(r"^API: (http://\S+)", re.MULTILINE)
_MODEL_LINE = re.compile(r"^MODEL: (http://\S+)", re.MULTILINE)


@pytest.fixture(scope="session")
def idp_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys of this test session (the developer's .local-stack/keys is not touched)."""
    return tmp_path_factory.mktemp("idp-keys")


@pytest.fixture(scope="session")
def idp(idp_keys_dir: Path) -> DevIdentityProvider:
    """The dev IdP the stacks under test trust."""
    return load_or_create(idp_keys_dir)


@pytest.fixture(scope="session")
def other_idp(tmp_path_factory: pytest.TempPathFactory) -> DevIdentityProvider:
    """Another IdP with the same issuer and audience but its own key: a forger."""
    return load_or_create(tmp_path_factory.mktemp("forger-keys"))


@pytest.fixture
def token(idp: DevIdentityProvider) -> Callable[..., str]:
    """token(sub="alice", scope=..., ttl_s=...) -> a valid access token of the session's dev IdP."""

    def mint(sub: str = "e2e-user", scope: str = PREDICT_SCOPE, ttl_s: int = DEFAULT_TTL_S) -> str:
        return idp.mint(sub=sub, scope=scope, ttl_s=ttl_s)

    return mint


# ---- the whole stack ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunningStack:
    api_url: str
    model_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def stop(self) -> int:
        return stop(self.process)


def _stack_env() -> dict[str, str]:
    paths = [str(ROOT / "local"), str(ROOT / "layers" / "core"), str(ROOT / "model")]
    inherited = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, *([inherited] if inherited else [])])}


def _ensure_model_artefact() -> Path:
    assert (MODEL_DIR / "manifest.json").is_file(), f"the shipped model artefact is missing: {MODEL_DIR}"
    return MODEL_DIR


def failed_open(stack: RunningStack, response: Any, wait_s: float = 5.0) -> bool:
    """A 200 the rate limiter failed open on: a transient store error (here a DynamoDB stand-in call past the
    limiter's 0.15 s read timeout on a busy 2-core machine) with RateLimitFailMode open serves the request
    without the RateLimit fields, and the function logs "rate limiter unavailable" with the request's
    correlation id. The documented behaviour, told apart from a missing field by that log line."""
    if response.status_code != 200 or "ratelimit-policy" in {name.lower() for name in response.headers}:
        return False
    needle = f'"correlation_id":{json.dumps(response.headers.get("x-correlation-id", ""))}'
    deadline = time.monotonic() + wait_s
    while True:
        for line in stack.log().splitlines():
            if needle in line and '"rate limiter unavailable"' in line and '"fail_open":true' in line:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _wait_for_banner(process: subprocess.Popen[bytes], log_path: Path) -> tuple[str, str]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text("utf-8", errors="replace")
        api, model = _API_LINE.search(text), _MODEL_LINE.search(text)
        if api and model:
            return api.group(1), model.group(1)
        if process.poll() is not None:
            pytest.fail(f"the local stack exited with {process.returncode} during start-up:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"the local stack did not print its URLs within {STARTUP_TIMEOUT_S} s:\n{text}")


def _wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/.well-known/jwks.json", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {STARTUP_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a service manager would send it (SIGKILL after 15 s); returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@contextmanager
def _running_stack(keys_dir: Path, log_path: Path, extra_args: tuple[str, ...] = ()) -> Iterator[RunningStack]:
    model_dir = _ensure_model_artefact()
    command = [sys.executable, "-m", "local_stack", "serve", "--port", "0", "--model-port", "0",
               "--model-dir", str(model_dir), "--keys-dir", str(keys_dir), *extra_args]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=_stack_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        api_url, model_url = _wait_for_banner(process, log_path)
        _wait_until_serving(api_url)
        yield RunningStack(api_url, model_url, process, log_path)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def start_stack(
    idp_keys_dir: Path, idp: DevIdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], AbstractContextManager[RunningStack]]:
    """start_stack() -> a context manager running one stack (on free ports) that trusts the session's IdP."""

    def start() -> AbstractContextManager[RunningStack]:
        return _running_stack(idp_keys_dir, tmp_path_factory.mktemp("stack") / "stack.log")

    return start


@pytest.fixture(scope="session")
def local_stack(start_stack: Callable[[], AbstractContextManager[RunningStack]]) -> Iterator[RunningStack]:
    """The whole local stack (model server + HTTP API + real handler), shared by every e2e test."""
    with start_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def fault_stack(idp_keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A second stack whose model server injects faults (``--enable-fault-injection``): a request whose
    x-correlation-id is ``fault-<kind>-...`` meets that fault at the model (local_stack.model_server). The
    answer cache is off, so that every request reaches the model server and meets its fault."""
    log_path = tmp_path_factory.mktemp("fault-stack") / "stack.log"
    extra = ("--enable-fault-injection", "--function-env", "PREDICTION_CACHE=off")
    with _running_stack(idp_keys_dir, log_path, extra) as stack:
        yield stack


@pytest.fixture(scope="module")
def uncached_stack(idp_keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose predict instances run with PREDICTION_CACHE=off: every text reaches the model server,
    so comparing two routes' answers compares the model's answers, not a cache entry with itself."""
    log_path = tmp_path_factory.mktemp("uncached-stack") / "stack.log"
    with _running_stack(idp_keys_dir, log_path, ("--function-env", "PREDICTION_CACHE=off")) as stack:
        yield stack
