"""Fault injection (tests only; off unless the server is started with --enable-fault-injection)."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
from typing import NoReturn

from werkzeug.wrappers import Request, Response

from .app import CUSTOM_ATTRIBUTES, JSON, Faults, InvocationError, correlation_id_of

log = logging.getLogger("local_stack.model_server")  # one logger for the server, whatever module logs


FAULT_PREFIX = "fault-"


class InjectedConnectionReset(ConnectionResetError):
    """Raised after the connection was torn down on purpose. A ``ConnectionError``: werkzeug treats it as a
    dropped connection (nothing to answer, nothing logged at ERROR)."""


class CorrelationIdFaults(Faults):
    """Injects the fault named by the invocation's correlation id: ``fault-<kind>-<anything>``.

    The kinds mirror what the SageMaker runtime can do to a caller (error codes and statuses from the
    ``sagemaker-runtime`` API model); an unknown kind injects nothing, so a client cannot make the server
    fail in an undocumented way. ``timeout_s`` is how long ``timeout`` sleeps: longer than the predict
    function's read timeout (0.5 s) on every attempt.
    """

    def __init__(self, timeout_s: float = 1.5, slow_s: float = 0.15) -> None:
        self.timeout_s = timeout_s
        self.slow_s = slow_s

    def kind_of(self, request: Request) -> str | None:
        correlation_id = correlation_id_of(request.headers.get(CUSTOM_ATTRIBUTES))
        if not correlation_id.startswith(FAULT_PREFIX):
            return None
        kind = correlation_id[len(FAULT_PREFIX) :].split("-", 1)[0]
        return kind if kind in FAULT_KINDS else None

    def before_invocation(self, request: Request, endpoint_name: str | None) -> Response | None:
        kind = self.kind_of(request)
        if kind is None:
            return None
        log.warning(
            "fault injected: %s correlation_id=%s", kind, correlation_id_of(request.headers.get(CUSTOM_ATTRIBUTES))
        )
        if kind in _ERROR_FAULTS:
            raise InvocationError(*_ERROR_FAULTS[kind])
        if kind == "timeout":
            time.sleep(self.timeout_s)  # the caller gives up first; the late answer goes nowhere
            return None
        if kind == "slow":
            time.sleep(self.slow_s)  # within the caller's budget: still a 200
            return None
        if kind == "reset":
            reset_connection(request)
        if kind == "garbage":
            return Response(b"\x00not json\xff", status=200, mimetype=JSON)
        if kind == "badlabel":
            return Response(json.dumps({"predicted_label": "sarcastic", "probability": 0.9}), status=200, mimetype=JSON)
        return None


#: kind -> (status, SageMaker error type, message) for the faults that are error answers.
_ERROR_FAULTS: dict[str, tuple[int, str, str]] = {
    "throttle": (400, "ThrottlingException", "Rate exceeded (injected)."),
    "unavailable": (503, "ServiceUnavailable", "Service unavailable (injected)."),
    "notready": (429, "ModelNotReadyException", "Model not ready (injected)."),
    "internal": (500, "InternalFailure", "An internal error occurred (injected)."),
    "modelerror": (424, "ModelError", "The model container failed (injected)."),
    "dependency": (530, "InternalDependencyException", "Internal dependency failed (injected)."),
}
FAULT_KINDS = frozenset({*_ERROR_FAULTS, "timeout", "slow", "reset", "garbage", "badlabel"})


def reset_connection(request: Request) -> NoReturn:
    """Aborts the TCP connection: SO_LINGER 0 makes the close a reset, shutdown stops both directions now.
    The request body is consumed first, so that the server cannot mistake its bytes for a next request."""
    request.get_data()
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    raise InjectedConnectionReset("connection reset (injected)")
