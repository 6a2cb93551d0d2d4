"""The SageMaker-compatible model server's WSGI app (werkzeug). Package docstring: the contract."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
from sentiment_core import wire
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from ..servers import WsgiServer, make_socket_server, make_wsgi_server

log = logging.getLogger("local_stack.model_server")  # one logger for the server, whatever module logs

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
        except ConnectionResetError:
            raise  # a connection torn down (faults.reset_connection): nothing to answer, werkzeug drops it
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
            correlation_id_of(request.headers.get(CUSTOM_ATTRIBUTES)),
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


def correlation_id_of(custom_attributes: str | None) -> str:
    """The request's correlation id, safe to log ("-" when none)."""
    value = wire.custom_attribute(custom_attributes, "correlation_id")
    return _log_safe(value, 128) if value else "-"


# --- serving --------------------------------------------------------------------------------------------


def serve(app: ModelServer, host: str, port: int, *, fault_injection: bool = False) -> WsgiServer | BaseWSGIServer:
    """A server for ``app`` (not started; port 0 picks a free port): 8 threads, as onnxruntime releases the
    GIL while it runs the model. With fault injection, werkzeug's server instead: the ``reset`` fault needs
    the connection's socket, which only it puts in the environ (local_stack.servers.make_socket_server)."""
    if fault_injection:
        return make_socket_server(host, port, app)
    return make_wsgi_server(host, port, app, threads=8, name="model-server")
