"""The SageMaker-compatible model server's WSGI app (werkzeug). Package docstring: the contract."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sentiment_core import wire
from sentiment_model import serving
from sentiment_model.serving import CSV, JSON, MAX_PAYLOAD_BYTES, InvocationError, model_error
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from ..servers import WsgiServer, make_socket_server, make_wsgi_server

log = logging.getLogger("local_stack.model_server")  # one logger for the server, whatever module logs

DEFAULT_ENDPOINT_NAME = "sentiment-local"
ACCOUNT_ID = "000000000000"  # what appears in "Endpoint x of account ... not found."
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


# The protocol (request parsing, errors, answers) is sentiment_model.serving's, shared with the bootstrap
# endpoint's container: one implementation.


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
        if request.mimetype not in serving.PARSERS:
            shown = request.mimetype or "(none)"
            raise model_error(415, f"unsupported Content-Type {shown}; use {CSV} or {JSON}")
        serving.check_accept(request.headers.get("Accept"))
        if (request.content_length or 0) > MAX_PAYLOAD_BYTES:
            raise model_error(413, f"the body exceeds {MAX_PAYLOAD_BYTES} bytes")
        body = request.stream.read(MAX_PAYLOAD_BYTES + 1)
        parsed = serving.parse_request(body, request.mimetype)
        stats["texts"] = len(parsed.texts)
        return self.json_response(200, serving.answer(parsed, self.predict(parsed.texts)))

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        return serving.predict(self.model, texts)

    def json_response(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        response = Response(serving.encode(payload), status=status, mimetype=JSON)
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
