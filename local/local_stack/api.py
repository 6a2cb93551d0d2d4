"""A WSGI app that answers like an API Gateway HTTP API with a JWT authorizer and Lambda proxy
integrations (payload format 2.0), invoking the unchanged handlers under ``functions/``. Routes, handlers,
layers and environment variables come from template.yaml (local_stack.template).

Per request: match the route (404 ``{"message":"Not Found"}`` for an unknown path or method), run the
JWT authorizer (401/403), build the 2.0 event, invoke the handler with a LambdaContext (``serve``: in a
pool of function instances, each its own process, local_stack.instances; tests: in this process, one
invocation at a time), and turn its result into HTTP by the 2.0 response rules. A
handler that raises, or returns something API Gateway could not read, gives 500
``{"message":"Internal Server Error"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from . import REPO_ROOT, template
from .authorizer import AuthorizerConfig, Denied, authorize
from .events import HttpRequest, build_event
from .idp import AUDIENCE, DevIdentityProvider
from .instances import FunctionPool, InstanceSpec
from .lambda_context import REGION, new_context
from .runtime import Handler, load_handler
from .template import Function

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
ENDPOINT_NAME = "sentiment-local"
RATE_LIMIT_TABLE = "sentiment-local-rate-limits"
JOBS_TABLE = "sentiment-local-jobs"
JOBS_BUCKET = "sentiment-local-jobs"
JOBS_STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sentiment-api-jobs"
#: The functions the local stack runs that no route invokes: the jobs state machine's worker.
WORKER_FUNCTIONS = ("JobWorkerFunction",)
NO_AWS_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, a call fails at once
#: The HTTP API payload quota (10 MB); larger requests never reach the function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
#: What the template's references resolve to locally (parameters not named here take their defaults).
LOCAL_REFS = {
    "Stage": "local",
    "SageMakerEndpointName": ENDPOINT_NAME,
    "RateLimitTable": RATE_LIMIT_TABLE,
    "ReportsBucket": "local-reports",  # REPORTS_URI is replaced by a local folder (lambda_environment)
    "JobsTable": JOBS_TABLE,
    "JobsBucket": JOBS_BUCKET,
    "JobsStateMachine": JOBS_STATE_MACHINE_ARN,
    "AWS::StackName": "sentiment-api",
    "AWS::Region": REGION,
}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    function_name: str
    handler: Handler
    scopes: tuple[str, ...] = ()
    timeout_s: float = 3.0  # the function's Timeout in the template

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when ``method`` and ``path`` are this route's (a ``{name}`` segment matches
        one non-empty segment, as API Gateway's path variables do), else None."""
        if method != self.method:
            return None
        pattern, given = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(pattern) != len(given) or path.endswith("/") != self.path.endswith("/"):
            return None
        parameters = {}
        for expected, segment in zip(pattern, given, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                if not segment:
                    return None
                parameters[expected[1:-1]] = segment
            elif expected != segment:
                return None
        return parameters


def api_functions() -> list[Function]:
    """The template's functions behind an HttpApi route, in template order."""
    return [function for function in template.functions(LOCAL_REFS).values() if function.routes]


def worker_functions() -> list[Function]:
    """The functions the local stack invokes itself (local_stack.jobs_engine), not through a route."""
    found = template.functions(LOCAL_REFS)
    return [found[name] for name in WORKER_FUNCTIONS]


def function_name(function: Function) -> str:
    """``sentiment-api-PredictFunction``: stack name + the template's logical id."""
    return f"{LOCAL_REFS['AWS::StackName']}-{function.logical_id}"


# ---- the function runtime ---------------------------------------------------------------------------
def lambda_environment(
    model_url: str, dynamodb_url: str, s3_url: str = NO_AWS_URL, sfn_url: str = NO_AWS_URL
) -> dict[str, str]:
    """The functions' environment for local runs: the template's variables (resolved with LOCAL_REFS), boto3
    endpoint overrides for the services the functions call (SageMaker runtime, DynamoDB, and for the jobs
    S3 and Step Functions), and dummy credentials, so nothing reaches AWS. It is the union of the local
    functions' environments, which every instance gets (no two functions set one variable to different
    values: tests/local/test_api_emulator.py)."""
    env: dict[str, str] = {}
    for function in [*api_functions(), *worker_functions()]:
        env.update(function.resolved_environment(LOCAL_REFS))
    return env | {
        "POWERTOOLS_TRACE_DISABLED": "true",
        # GET /explain reads the newest local governance report (python -m governance.analyze writes it).
        "REPORTS_URI": os.environ.get("LOCAL_REPORTS_DIR") or str(REPO_ROOT / "reports" / "governance"),
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": model_url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ENDPOINT_URL_SFN": sfn_url,
        # Any other AWS service the code may call gets a closed local port instead of AWS.
        "AWS_ENDPOINT_URL": NO_AWS_URL,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # a dummy: boto3 never looks for real ones
    }


#: Variables that would make boto3 look for, or use, a real AWS identity.
_AWS_IDENTITY_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def apply_environment(env: Mapping[str, str]) -> None:
    """Sets the function environment in this process (before the handler modules are imported)."""
    for name in _AWS_IDENTITY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(env)


def load_routes(functions: Iterable[Function] | None = None) -> list[Route]:
    """One route per HttpApi event of the template, each invoking its function's unchanged handler in this
    process, one invocation at a time (one warm instance per function; tests and single-process use)."""
    routes = []
    for function in api_functions() if functions is None else functions:
        handler = single_instance(load_handler(function))
        routes += [
            Route(route.method, route.path, function_name(function), handler, route.scopes, function.timeout_s)
            for route in function.routes
        ]
    return routes


def pooled_routes(env: Mapping[str, str], max_instances: int) -> tuple[list[Route], list[FunctionPool]]:
    """One route per HttpApi event, each function running in its own processes (local_stack.instances): up
    to ``max_instances`` execution environments per function, like Lambda's concurrency."""
    routes, pools = [], []
    for function in api_functions():
        pool = FunctionPool(InstanceSpec(function, dict(env)), max_instances)
        pools.append(pool)
        routes += [
            Route(route.method, route.path, function_name(function), pool, route.scopes, function.timeout_s)
            for route in function.routes
        ]
    return routes, pools


def single_instance(handler: Handler) -> Handler:
    """``handler`` behind a lock: one invocation at a time, as in one execution environment."""
    lock = threading.Lock()

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


# ---- HTTP ⇄ Lambda ----------------------------------------------------------------------------------
class MalformedResponse(ValueError):
    """The function returned something API Gateway would answer with 500."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def http_result(result: Any) -> HttpResult:
    """Payload 2.0 response rules: an object with ``statusCode`` is read field by field; any other valid
    JSON value is a 200 ``application/json`` whose body is that value (a string as-is, the rest as JSON)."""
    if isinstance(result, dict) and "statusCode" in result:
        return _structured_result(result)
    if isinstance(result, str):
        body = result
    else:
        try:
            body = json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise MalformedResponse(f"the function returned a value that is not JSON: {exc}") from None
    return HttpResult(HTTPStatus.OK, [("content-type", "application/json")], body.encode("utf-8"))


def _structured_result(result: Mapping[str, Any]) -> HttpResult:
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an HTTP status code, not {status!r}")
    headers = [(name, _header_value(name, value)) for name, value in (result.get("headers") or {}).items()]
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(cookie, str) for cookie in cookies):
        raise MalformedResponse("cookies must be a list of strings")
    headers += [("set-cookie", cookie) for cookie in cookies]
    return HttpResult(status, headers, _body_bytes(result.get("body"), result.get("isBase64Encoded", False)))


def _header_value(name: Any, value: Any) -> str:
    if not isinstance(name, str) or isinstance(value, dict | list) or value is None:
        raise MalformedResponse(f"header {name!r} must map a name to a scalar value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _body_bytes(body: Any, is_base64_encoded: Any) -> bytes:
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, not {type(body).__name__}")
    if is_base64_encoded is not True:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedResponse("isBase64Encoded is true but body is not base64") from None


def http_request(request: Request, body: bytes) -> HttpRequest:
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return HttpRequest(
        method=request.method,
        raw_path=raw_uri.split("?", 1)[0],
        raw_query=request.query_string.decode("latin-1"),
        headers=list(request.headers.items()),
        body=body,
        source_ip=request.remote_addr or "127.0.0.1",
        protocol=request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
    )


def new_request_id() -> str:
    """Shaped like API Gateway's ``apigw-requestid`` (e.g. ``Mc7UVioPPHcEKPA=``)."""
    return base64.b64encode(os.urandom(10)).decode("ascii")


# ---- the app ----------------------------------------------------------------------------------------
class _Response(Response):
    default_mimetype = None  # API Gateway adds no content type the function did not set


class _Request(Request):
    max_content_length = MAX_PAYLOAD_BYTES


def message_response(status: HTTPStatus, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps({"message": message}, separators=(",", ":"))
    return _Response(body, status=status, headers=[("content-type", "application/json"), *headers])


def denied_response(denied: Denied) -> Response:
    body = json.dumps(denied.body, separators=(",", ":"))
    headers = [("content-type", "application/json"), ("www-authenticate", denied.www_authenticate)]
    return _Response(body, status=denied.status, headers=headers)


@dataclass
class ApiEmulator:
    routes: Mapping[tuple[str, str], Route]
    authorizer: AuthorizerConfig
    jwks: Mapping[str, Any]
    clock: Callable[[], float] = time.time

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response = self.dispatch(_Request(environ))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.method == "GET" and request.path == JWKS_PATH:
            return _Response(json.dumps(self.jwks), headers=[("content-type", "application/json")])
        found = self.route_for(request.method, request.path)
        if found is None:
            return message_response(HTTPStatus.NOT_FOUND, "Not Found")
        route, path_parameters = found
        try:
            body = request.get_data()
        except RequestEntityTooLarge:
            return message_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large")
        now = self.clock()
        auth = authorize(request.headers.get("Authorization"), route.scopes, self.authorizer, now)
        if isinstance(auth, Denied):
            return denied_response(auth)
        request_id = new_request_id()
        event = build_event(http_request(request, body), route.key, auth, request_id, now, path_parameters)
        response = self.invoke(route, event)
        response.headers["apigw-requestid"] = request_id
        return response

    def route_for(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its path parameters: a static route first, then one with path variables."""
        route = self.routes.get((method, path))
        if route is not None:
            return route, {}
        for candidate in self.routes.values():
            parameters = candidate.match(method, path)
            if parameters is not None:
                return candidate, parameters
        return None

    def invoke(self, route: Route, event: dict[str, Any]) -> Response:
        context = new_context(route.function_name, route.timeout_s)
        try:
            result = route.handler(event, context)
        except Exception:  # API Gateway answers 500 to any function error; logged in full
            log.exception("%s failed (request %s)", route.function_name, context.aws_request_id)
            return message_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
        try:
            result_http = http_result(result)
        except MalformedResponse as exc:
            log.error("%s returned a malformed response: %s", route.function_name, exc)
            return message_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")
        return _Response(result_http.body, status=result_http.status, headers=result_http.headers)


def authorizer_config(idp: DevIdentityProvider) -> AuthorizerConfig:
    """The JWT authorizer of the template, pointed at the dev IdP instead of Cognito."""
    return AuthorizerConfig(issuer=idp.issuer, audiences=frozenset({AUDIENCE}), keys=idp.public_keys())


def create_app(
    routes: Iterable[Route],
    idp: DevIdentityProvider,
    clock: Callable[[], float] = time.time,
) -> ApiEmulator:
    return ApiEmulator(
        routes={(route.method, route.path): route for route in routes},
        authorizer=authorizer_config(idp),
        jwks=idp.jwks(),
        clock=clock,
    )
