"""``python -m local_stack serve|token``.

serve  starts the model server, a local DynamoDB (moto, for the per-user rate limiter) and the HTTP API
       emulator (port 0 picks a free port; the real ones are printed), and stops them cleanly on Ctrl-C
       or SIGTERM.
token  prints a dev IdP access token, and nothing else, on stdout (``make token SUB=alice``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import boto3
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import REPO_ROOT
from .api import (
    ENDPOINT_NAME,
    JWKS_PATH,
    RATE_LIMIT_TABLE,
    ROUTE_TABLE,
    apply_environment,
    create_app,
    lambda_environment,
    load_routes,
)
from .idp import AUDIENCE, DEFAULT_KEYS_DIR, DEFAULT_SUB, DEFAULT_TTL_S, ISSUER, PREDICT_SCOPE, load_or_create
from .lambda_context import REGION

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SHIPPED_MODEL_DIR = REPO_ROOT / "model" / "artefacts" / "minilm-sentiment"
SIDE_HOST = "127.0.0.1"  # the model server and DynamoDB serve only the local function


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the local HTTP API and model server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="HTTP API port (0: any free port)")
    serve.add_argument("--model-port", type=int, default=8080, help="model server port (0: any free port)")
    serve.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR,
                       help="model artefact to serve (default: the shipped fine-tuned MiniLM)")
    serve.add_argument("--keys-dir", type=Path, default=DEFAULT_KEYS_DIR)
    serve.add_argument(
        "--enable-fault-injection",
        action="store_true",
        help="tests only: the model server injects the fault named by a correlation id fault-<kind>-... "
        "(see local_stack.model_server; off by default)",
    )

    token = commands.add_parser("token", help="print an access token of the dev identity provider")
    token.add_argument("--sub", default=DEFAULT_SUB)
    token.add_argument("--scope", default=PREDICT_SCOPE, help="space-separated scopes")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="lifetime in seconds")
    token.add_argument("--keys-dir", type=Path, default=DEFAULT_KEYS_DIR)
    return parser.parse_args(argv)


def print_token(args: argparse.Namespace) -> int:
    print(load_or_create(args.keys_dir).mint(sub=args.sub, scope=args.scope, ttl_s=args.ttl))
    return 0


class _QuietRequestHandler(WSGIRequestHandler):
    """The side servers do not log each request; the API's access log is the one to read."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def start_model_server(model_dir: Path, port: int, fault_injection: bool = False) -> tuple[BaseWSGIServer, str]:
    # Imported here, not at the top: `token` must not need the model's dependencies (scikit-learn …).
    from sentiment_model.runtime import load_model

    from .model_server import CorrelationIdFaults
    from .model_server import create_app as create_model_app

    model = load_model(model_dir)
    app = create_model_app(model, ENDPOINT_NAME, faults=CorrelationIdFaults() if fault_injection else None)
    server = make_server(SIDE_HOST, port, app, threaded=True, request_handler=_QuietRequestHandler)
    return server, str(getattr(model, "version", "unknown"))


def start_dynamodb() -> BaseWSGIServer:
    """moto's DynamoDB, in process: the per-user rate limiter runs its real code against it.

    Requests are served one at a time (``_serialized``). The limiter's exactness rests on DynamoDB
    evaluating a conditional UpdateItem atomically: the condition and the write happen as one step, so two
    callers can never both pass ``tat <= :limit`` on the same old value. moto's backend does not: its
    update_item reads the item, checks the condition and writes in separate Python steps, with no lock,
    and werkzeug's threaded server runs requests in parallel threads, so two requests can interleave
    between the check and the write. Measured (tests/unit/test_ratelimit_concurrency.py: 8 threads with
    their own clients, 240 requests at one frozen instant, burst 200): 204 to 214 allowed without the lock
    when threads switch often (201 to 203 on a loaded machine at the default switch interval), exactly 200
    with it. One lock around the whole backend app restores DynamoDB's per-item atomicity (more than
    DynamoDB promises, never less) while the threaded server still accepts connections concurrently.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = _serialized(DomainDispatcherApplication(create_backend_app))
    return make_server(SIDE_HOST, 0, app, threaded=True, request_handler=_QuietRequestHandler)


def _serialized(app: WSGIApplication) -> WSGIApplication:
    """``app`` behind one lock: one request at a time inside the backend (see start_dynamodb)."""
    lock = threading.Lock()

    def serialized(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with lock:
            # moto answers with a fully built body: materialise it inside the lock all the same, so no
            # backend code can run outside it (and close the iterable there, as WSGI asks).
            iterable = app(environ, start_response)
            try:
                return list(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if callable(close):
                    close()

    return serialized


def create_rate_limit_table(dynamodb_url: str) -> None:
    """The rate-limit table as the function expects it: key ``pk`` (S), TTL on ``expires_at``."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
    )
    client.create_table(
        TableName=RATE_LIMIT_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=RATE_LIMIT_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def url_of(server: BaseWSGIServer, host: str = SIDE_HOST) -> str:
    return f"http://{host}:{server.server_port}"


def serve(args: argparse.Namespace) -> int:
    if not args.model_dir.is_dir():
        print(
            f"error: no model artefact at {args.model_dir}; the shipped one is {SHIPPED_MODEL_DIR}, "
            "a TF-IDF baseline is built by `make model` into .cache/model",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = stop_on_signals()
    model_server, model_version = start_model_server(args.model_dir, args.model_port, args.enable_fault_injection)
    dynamodb_server = start_dynamodb()
    apply_environment(lambda_environment(url_of(model_server), url_of(dynamodb_server)))
    idp = load_or_create(args.keys_dir)
    api_server = make_server(args.host, args.port, create_app(load_routes(), idp), threaded=True)
    servers = (model_server, dynamodb_server, api_server)
    threads = start_serving(servers)
    try:
        create_rate_limit_table(url_of(dynamodb_server))
        print_banner(url_of(api_server, args.host), url_of(model_server), url_of(dynamodb_server), model_version)
        if args.enable_fault_injection:
            print("FAULT INJECTION: enabled (x-correlation-id: fault-<kind>-...; tests only)", flush=True)
        stop.wait()
        print("stopping", flush=True)
    finally:
        stop_serving(servers, threads)
    return 0


def print_banner(api_url: str, model_url: str, dynamodb_url: str, model_version: str) -> None:
    routes = ", ".join(f"{spec.method} {spec.path}" for spec in ROUTE_TABLE)
    print(
        f"API: {api_url}  ({routes}; GET {JWKS_PATH})\n"
        f"MODEL: {model_url}  (endpoint {ENDPOINT_NAME}, model version {model_version})\n"
        f"DYNAMODB: {dynamodb_url}  (table {RATE_LIMIT_TABLE}, in memory)\n"
        f"ISSUER: {ISSUER}  (audience {AUDIENCE}, scope {PREDICT_SCOPE})\n"
        "token: make token SUB=alice   (or: python -m local_stack token --sub alice)\n"
        f'try:   curl -s {api_url}/predict -H "Authorization: Bearer $(make -s token)" '
        "-H 'content-type: application/json' -d '{\"text\": \"I love it\"}'",
        flush=True,
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT (Ctrl-C) or SIGTERM."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def start_serving(servers: Sequence[BaseWSGIServer]) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"serve:{server.server_port}")
        for server in servers
    ]
    for thread in threads:
        thread.start()
    return threads


def stop_serving(servers: Sequence[BaseWSGIServer], threads: Sequence[threading.Thread]) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return serve(args) if args.command == "serve" else print_token(args)


if __name__ == "__main__":
    sys.exit(main())
