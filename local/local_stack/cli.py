"""The command line of the local stack: ``python -m local_stack serve|token``.

serve  starts the model server, a local DynamoDB (moto, for the per-user rate limiter) and the HTTP API
       emulator (port 0 picks a free port; the real ones are printed), and stops them cleanly on Ctrl-C
       or SIGTERM.
token  prints a dev IdP access token, and nothing else, on stdout (``make token SUB=alice``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from . import REPO_ROOT
from .api import (
    ENDPOINT_NAME,
    JWKS_PATH,
    RATE_LIMIT_TABLE,
    apply_environment,
    create_app,
    lambda_environment,
    load_routes,
)
from .dynamodb import create_rate_limit_table, start_dynamodb
from .idp import AUDIENCE, DEFAULT_KEYS_DIR, DEFAULT_SUB, DEFAULT_TTL_S, ISSUER, PREDICT_SCOPE, load_or_create
from .servers import SIDE_HOST, QuietRequestHandler, start_serving, stop_on_signals, stop_serving, url_of

SHIPPED_MODEL_DIR = REPO_ROOT / "model" / "artefacts" / "minilm-sentiment"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the local HTTP API and model server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="HTTP API port (0: any free port)")
    serve.add_argument("--model-port", type=int, default=8080, help="model server port (0: any free port)")
    serve.add_argument(
        "--model-dir",
        type=Path,
        default=SHIPPED_MODEL_DIR,
        help="model artefact to serve (default: the shipped fine-tuned MiniLM)",
    )
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


def start_model_server(model_dir: Path, port: int, fault_injection: bool = False) -> tuple[BaseWSGIServer, str]:
    # Imported here, not at the top: `token` must not need the model's dependencies (scikit-learn …).
    from sentiment_model.runtime import load_model

    from .model_server.app import create_app as create_model_app
    from .model_server.faults import CorrelationIdFaults

    model = load_model(model_dir)
    app = create_model_app(model, ENDPOINT_NAME, faults=CorrelationIdFaults() if fault_injection else None)
    server = make_server(SIDE_HOST, port, app, threaded=True, request_handler=QuietRequestHandler)
    return server, str(getattr(model, "version", "unknown"))


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
    routes = load_routes()
    api_server = make_server(args.host, args.port, create_app(routes, idp), threaded=True)
    servers = (model_server, dynamodb_server, api_server)
    threads = start_serving(servers)
    try:
        create_rate_limit_table(url_of(dynamodb_server))
        print_banner(
            url_of(api_server, args.host),
            url_of(model_server),
            url_of(dynamodb_server),
            model_version,
            ", ".join(route.key for route in routes),
        )
        if args.enable_fault_injection:
            print("FAULT INJECTION: enabled (x-correlation-id: fault-<kind>-...; tests only)", flush=True)
        stop.wait()
        print("stopping", flush=True)
    finally:
        stop_serving(servers, threads)
    return 0


def print_banner(api_url: str, model_url: str, dynamodb_url: str, model_version: str, routes: str) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return serve(args) if args.command == "serve" else print_token(args)


if __name__ == "__main__":
    sys.exit(main())
