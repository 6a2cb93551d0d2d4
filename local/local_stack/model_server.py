"""A SageMaker-compatible model server (werkzeug WSGI) for the local stack.

``python -m local_stack.model_server --host 127.0.0.1 --port 8080 --model-dir model/artefacts/minilm-sentiment
--endpoint-name sentiment-local``

It speaks
- the SageMaker runtime API: ``POST /endpoints/{name}/invocations`` (what boto3's ``sagemaker-runtime``
  ``invoke_endpoint`` calls when ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` points here), and
- the SageMaker container contract: ``GET /ping`` and ``POST /invocations``.

Requests: ``text/csv`` (one or more RFC 4180 records, one text per record, UTF-8) or ``application/json``
(``{"text": "..."}`` or ``{"instances": [{"text": "..."}, ...]}``). Answers are ``application/json``:
one object ``{"predicted_label", "probability", "probabilities", "labels", "model_version"}`` for a single
text (one CSV record or ``{"text": ...}``), ``{"predictions": [...]}`` for several CSV records or any
``instances`` request. The model version is also sent as
``X-Amzn-SageMaker-Custom-Attributes: model_version=<v>`` (boto3's ``CustomAttributes``).

Errors are shaped like the SageMaker runtime's (rest-json: ``x-amzn-ErrorType`` header and a body
``{"__type", "message"}``), so botocore raises a ``ClientError`` with that code:

- unknown endpoint name: 400 ``ValidationError``;
- undecodable/malformed body: 400 ``ModelError`` (with ``OriginalStatusCode``/``OriginalMessage`` like
  SageMaker's, which reports container failures as ``ModelError``);
- unsupported ``Content-Type``: 415, unacceptable ``Accept``: 406, body over 6 MiB: 413 (all ``ModelError``);
- anything unexpected: 500 ``InternalFailure`` with a generic message (details only in the log).

One log line per request (method, path, status, number of texts, duration, correlation id); never the text.
Fault injection: ``app.faults`` is consulted before each invocation (see :class:`Faults`). The default injects
nothing. ``--enable-fault-injection`` (here, or on ``python -m local_stack serve``) installs
:class:`CorrelationIdFaults`: an invocation whose correlation id (``CustomAttributes: correlation_id=...``, which
the predict function fills from the client's ``x-correlation-id``) is ``fault-<kind>-<anything>`` gets that
fault (throttling, 5xx, timeout, connection reset, unusable answers; see ``FAULT_KINDS``). Never on by default.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import socket
import struct
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Protocol

import numpy as np
from sentiment_core import wire
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .servers import QuietRequestHandler

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT_NAME = "sentiment-local"
ACCOUNT_ID = "000000000000"  # what appears in "Endpoint x of account ... not found."
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time InvokeEndpoint payload limit
JSON = "application/json"
CSV = "text/csv"
CUSTOM_ATTRIBUTES = wire.CUSTOM_ATTRIBUTES_HEADER
_SAFE_LOG_VALUE = re.compile(r"[^A-Za-z0-9._:@/+=-]")


class Model(Protocol):
    """What the server needs of a model (``sentiment_model.runtime.SentimentModel`` satisfies it)."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> str: ...

    def predict_proba(self, texts: Sequence[str]) -> Any: ...


class Faults:
    """Fault-injection hook; this default injects nothing.

    ``before_invocation`` runs for every invocation (either path) after routing and before the body is
    read. Returning a :class:`~werkzeug.wrappers.Response` sends it instead of invoking the model; it may
    also sleep (latency) or raise :class:`InvocationError` (an error answer).
    """

    def before_invocation(self, request: Request, endpoint_name: str | None) -> Response | None:
        return None


class InvocationError(Exception):
    """An error answer in the SageMaker runtime's shape."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"__type": self.error_type, "message": self.message}
        if self.error_type == "ModelError":
            body.update(OriginalStatusCode=self.status, OriginalMessage=self.message)
        return body


def model_error(status: int, message: str) -> InvocationError:
    return InvocationError(status, "ModelError", message)


# --- fault injection (tests only; off unless the server is started with --enable-fault-injection) ----------

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
        correlation_id = _correlation_id(request.headers.get(CUSTOM_ATTRIBUTES))
        if not correlation_id.startswith(FAULT_PREFIX):
            return None
        kind = correlation_id[len(FAULT_PREFIX) :].split("-", 1)[0]
        return kind if kind in FAULT_KINDS else None

    def before_invocation(self, request: Request, endpoint_name: str | None) -> Response | None:
        kind = self.kind_of(request)
        if kind is None:
            return None
        log.warning(
            "fault injected: %s correlation_id=%s", kind, _correlation_id(request.headers.get(CUSTOM_ATTRIBUTES))
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


# --- request parsing ------------------------------------------------------------------------------------


def parse_csv(body: bytes) -> tuple[list[str], bool]:
    """RFC 4180 records, one text per record (sentiment_core.wire.decode_texts). Returns (texts, is_batch).
    Blank lines are skipped; an empty body is one empty text (answered like any other text)."""
    try:
        texts = wire.decode_texts(body)
    except wire.WireError as exc:
        raise model_error(400, str(exc)) from None
    return texts, len(texts) > 1


def parse_json(body: bytes) -> tuple[list[str], bool]:
    """``{"text": str}`` (single) or ``{"instances": [{"text": str}, ...]}`` (batch)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise model_error(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise model_error(400, f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if isinstance(doc, dict) and "text" in doc:
        if not isinstance(doc["text"], str):
            raise model_error(400, '"text" must be a string')
        return [doc["text"]], False
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list) or not instances:
            raise model_error(400, '"instances" must be a non-empty list')
        texts = []
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict) or not isinstance(inst.get("text"), str):
                raise model_error(400, f'instances[{i}] must be an object with a string "text"')
            texts.append(inst["text"])
        return texts, True
    raise model_error(400, 'expected {"text": "..."} or {"instances": [{"text": "..."}, ...]}')


PARSERS = {CSV: parse_csv, JSON: parse_json}


# --- the app --------------------------------------------------------------------------------------------


class ModelServer:
    """The WSGI app. ``faults`` may be replaced at any time (tests)."""

    def __init__(self, model: Model, endpoint_name: str, *, faults: Faults | None = None) -> None:
        self.model = model
        self.endpoint_name = endpoint_name
        self.labels = tuple(model.labels)
        self.version = str(model.version)
        self.faults = faults or Faults()
        self.url_map = Map(
            [
                Rule("/ping", methods=["GET"], endpoint="ping"),
                Rule("/invocations", methods=["POST"], endpoint="invoke"),
                Rule("/endpoints/<name>/invocations", methods=["POST"], endpoint="invoke"),
            ],
            strict_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        stats: dict[str, Any] = {"texts": 0}
        try:
            response = self.dispatch(request, stats)
        except InvocationError as exc:
            response = self.error_response(exc)
        except InjectedConnectionReset:
            raise  # nothing can be answered on a reset connection (werkzeug drops it quietly)
        except Exception:  # last resort: a generic 500; the traceback goes to the log only
            log.exception("unhandled error request_id=%s", request_id)
            response = self.error_response(InvocationError(500, "InternalFailure", "An internal error occurred."))
        response.headers["x-amzn-RequestId"] = request_id
        log.info(
            "%s %s status=%d texts=%d ms=%.1f correlation_id=%s request_id=%s",
            request.method,
            _log_safe(request.path, 200),
            response.status_code,
            stats["texts"],
            (time.perf_counter() - started) * 1000,
            _correlation_id(request.headers.get(CUSTOM_ATTRIBUTES)),
            request_id,
        )
        return response(environ, start_response)

    def dispatch(self, request: Request, stats: dict[str, Any]) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            route, args = adapter.match()
        except HTTPException as exc:
            raise InvocationError(
                exc.code or 404, "UnknownOperationException", f"{request.method} {request.path}: {exc.name}"
            ) from None
        if route == "ping":
            return self.json_response(200, {"status": "Healthy", "model_version": self.version})
        return self.invoke(request, args.get("name"), stats)

    def invoke(self, request: Request, endpoint_name: str | None, stats: dict[str, Any]) -> Response:
        if endpoint_name is not None and endpoint_name != self.endpoint_name:
            raise InvocationError(
                400, "ValidationError", f"Endpoint {endpoint_name} of account {ACCOUNT_ID} not found."
            )
        injected = self.faults.before_invocation(request, endpoint_name)
        if injected is not None:
            return injected
        parser = PARSERS.get(request.mimetype)
        if parser is None:
            shown = request.mimetype or "(none)"
            raise model_error(415, f"unsupported Content-Type {shown}; use {CSV} or {JSON}")
        if request.headers.get("Accept") and request.accept_mimetypes.best_match([JSON]) is None:
            raise model_error(406, f"cannot answer Accept: {request.headers['Accept']}; this model answers {JSON}")
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            raise model_error(413, f"the body exceeds {MAX_PAYLOAD_BYTES} bytes")
        body = request.stream.read(MAX_PAYLOAD_BYTES + 1)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise model_error(413, f"the body exceeds {MAX_PAYLOAD_BYTES} bytes")
        texts, batch = parser(body)
        stats["texts"] = len(texts)
        predictions = self.predict(texts)
        payload = {"predictions": predictions} if batch else predictions[0]
        return self.json_response(200, payload)

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        proba = np.asarray(self.model.predict_proba(texts), dtype=np.float64)
        if proba.shape != (len(texts), len(self.labels)):
            raise RuntimeError(f"model returned shape {proba.shape} for {len(texts)} texts")
        return [wire.answer_object([float(p) for p in row], self.labels, self.version) for row in proba]

    def json_response(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps(payload), status=status, mimetype=JSON)
        if status == 200:
            response.headers[CUSTOM_ATTRIBUTES] = wire.custom_attributes(model_version=self.version)
            response.headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response

    def error_response(self, exc: InvocationError) -> Response:
        return self.json_response(exc.status, exc.body(), {"x-amzn-ErrorType": exc.error_type})


def create_app(model: Model, endpoint_name: str, *, faults: Faults | None = None) -> ModelServer:
    """The WSGI app serving ``model`` as the endpoint ``endpoint_name``."""
    return ModelServer(model, endpoint_name, faults=faults)


def _log_safe(value: str, limit: int) -> str:
    return _SAFE_LOG_VALUE.sub("?", value[:limit])


def _correlation_id(custom_attributes: str | None) -> str:
    value = wire.custom_attribute(custom_attributes, "correlation_id")
    return _log_safe(value, 128) if value else "-"


# --- serving --------------------------------------------------------------------------------------------


def serve(app: ModelServer, host: str, port: int) -> Any:
    """A threaded werkzeug server for ``app`` (not started; port 0 picks a free port)."""
    return make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-compatible local model server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--model-dir", type=Path, default=Path(".cache") / "model")
    parser.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT_NAME)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--enable-fault-injection",
        action="store_true",
        help="tests only: inject the fault named by a correlation id fault-<kind>-... (off by default)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from sentiment_model.runtime import ModelArtifactError, load_model

    try:
        model = load_model(args.model_dir)
    except ModelArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    faults = CorrelationIdFaults() if args.enable_fault_injection else None
    server = serve(create_app(model, args.endpoint_name, faults=faults), args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        f"model server: http://{args.host}:{server.server_port} endpoint={args.endpoint_name} "
        f"model_version={model.version}" + (" FAULT INJECTION ENABLED" if faults else ""),
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
