"""Dependency faults through the local HTTP API: the model server of a second stack, started with
--enable-fault-injection, throttles, fails, hangs, resets the connection or answers garbage when the request's
correlation id names the fault (``fault-<kind>-...``). Each maps to the documented 502/503/504, with
Retry-After where a retry can help; never a 500; and the stack logs nothing at ERROR without a correlation id.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import requests
from local_stack.idp import DevIdentityProvider
from local_stack.model_server.faults import FAULT_KINDS

from tests.helpers import rate_limit_fields

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

TIMEOUT_S = 30

# kind -> (status, error code, Retry-After). The SageMaker side of each kind: local_stack.model_server.
FAULTS: dict[str, tuple[int, str | None, str | None]] = {
    "throttle": (503, "MODEL_UNAVAILABLE", "1"),  # ThrottlingException
    "unavailable": (503, "MODEL_UNAVAILABLE", "2"),  # 503 ServiceUnavailable
    "notready": (503, "MODEL_UNAVAILABLE", "5"),  # 429 ModelNotReadyException
    "internal": (502, "MODEL_ERROR", None),  # 500 InternalFailure (after botocore's retry)
    "modelerror": (502, "MODEL_ERROR", None),  # 424 ModelError (the container failed)
    "dependency": (502, "MODEL_ERROR", None),  # 530 InternalDependencyException
    "timeout": (504, "MODEL_TIMEOUT", None),  # no answer within the read timeout, every attempt
    "reset": (502, "MODEL_ERROR", None),  # TCP reset before any answer
    "garbage": (502, "MODEL_ERROR", None),  # 200 with a body that is not JSON
    "badlabel": (502, "MODEL_ERROR", None),  # 200 with a label outside the contract
    "slow": (200, None, None),  # slower, but within the budget: still a prediction
}


def test_every_injectable_fault_has_an_expectation() -> None:
    assert set(FAULTS) == set(FAULT_KINDS)


def predict(stack: RunningStack, idp: DevIdentityProvider, correlation_id: str) -> requests.Response:
    return requests.post(
        f"{stack.api_url}/predict",
        data=b'{"text": "The delivery was fine."}',
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {idp.mint(sub=f'faults-{uuid.uuid4()}')}",
            "x-correlation-id": correlation_id,
        },
        timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def log_offset(fault_stack: RunningStack) -> int:
    """Where this module's part of the fault stack's log starts."""
    return len(fault_stack.log())


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_dependency_fault_maps_to_its_documented_answer(
    kind: str, fault_stack: RunningStack, idp: DevIdentityProvider, log_offset: int
) -> None:
    status, code, retry_after = FAULTS[kind]
    correlation_id = f"fault-{kind}-{uuid.uuid4().hex[:12]}"

    response = predict(fault_stack, idp, correlation_id)

    assert response.status_code == status, response.text
    assert response.headers["x-correlation-id"] == correlation_id
    assert rate_limit_fields(response.headers)[0]["q"] == 200
    assert response.headers.get("retry-after") == retry_after
    if code is None:
        assert response.json()["sentiment"] in {"positive", "neutral", "negative"}
        return
    body = response.json()
    assert body == {"error": {"code": code, "message": body["error"]["message"], "correlation_id": correlation_id}}
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]


def test_without_the_flag_no_fault_is_injected(local_stack: RunningStack, idp: DevIdentityProvider) -> None:
    """The default stack (no --enable-fault-injection) ignores fault-* correlation ids."""
    for kind in ("internal", "reset", "timeout"):
        response = predict(local_stack, idp, f"fault-{kind}-{uuid.uuid4().hex[:12]}")
        assert response.status_code == 200, response.text
    assert "FAULT INJECTION" not in local_stack.log()


def test_an_unknown_fault_kind_injects_nothing(fault_stack: RunningStack, idp: DevIdentityProvider) -> None:
    assert predict(fault_stack, idp, f"fault-explode-{uuid.uuid4().hex[:12]}").status_code == 200


# ---- the logs ---------------------------------------------------------------------------------------
_PLAIN_ERROR = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")


def error_lines(log: str) -> list[tuple[str, dict[str, Any] | None]]:
    """Lines logged at ERROR or above: powertools JSON lines, plain logging lines, bare tracebacks."""
    found: list[tuple[str, dict[str, Any] | None]] = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and str(record.get("level", "")).upper() in {"ERROR", "CRITICAL"}:
                found.append((line, record))
        elif _PLAIN_ERROR.match(line) or line.startswith("Traceback"):
            found.append((line, None))
    return found


def test_nothing_is_logged_at_error_without_a_correlation_id(fault_stack: RunningStack, log_offset: int) -> None:
    """Runs after the fault cases (pytest keeps file order): their whole log is inspected."""
    log = fault_stack.log()[log_offset:]
    assert "fault injected: reset" in log, "the fault cases must have run first"

    for line, record in error_lines(log):
        if record is not None:
            assert record.get("correlation_id"), line
        else:
            assert "correlation_id=" in line, line

    # Each handled fault left a WARNING from the function that carries its correlation id.
    warnings = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"level":"WARNING"' in line.replace(" ", "")
    ]
    failed = {w["correlation_id"].split("-")[1] for w in warnings if w.get("message") == "request failed"}
    assert failed == {kind for kind, (status, _, _) in FAULTS.items() if status >= 500}
    assert "Internal Server Error" not in log
