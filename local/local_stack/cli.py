"""The command line of the local stack: ``python -m local_stack serve|token``.

serve  starts the model server and a local DynamoDB (moto, for the per-user rate limiter), each in its
       own process, then the HTTP API emulator, whose functions run in their own processes too (up to
       --concurrency instances each, one request at a time per instance, like Lambda); port 0 picks a
       free port (the real ones are printed). Ctrl-C or SIGTERM stops everything.
token  prints a dev IdP access token, and nothing else, on stdout (``make token SUB=alice``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import REPO_ROOT
from .api import (
    ENDPOINT_NAME,
    JOBS_BUCKET,
    JOBS_STATE_MACHINE_ARN,
    JOBS_TABLE,
    JWKS_PATH,
    RATE_LIMIT_TABLE,
    api_functions,
    create_app,
    function_name,
    lambda_environment,
    pooled_routes,
    worker_functions,
)
from .dynamodb import create_jobs_table, create_rate_limit_table
from .idp import AUDIENCE, DEFAULT_KEYS_DIR, DEFAULT_SUB, DEFAULT_TTL_S, ISSUER, PREDICT_SCOPE, load_or_create
from .instances import FunctionPool, InstanceSpec
from .jobs_engine import JobsDefinition, JobsEngine
from .processes import Child, ChildFailed, start_child, stop_children
from .servers import SIDE_HOST, local_client, make_wsgi_server, start_serving, stop_on_signals, stop_serving, url_of

DEFAULT_CONCURRENCY = 8
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
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="most instances (processes) per function, as Lambda's concurrency; one request at a time each",
    )
    serve.add_argument(
        "--function-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=function_env_setting,
        help="set one of the template's function variables for this run (e.g. PREDICTION_CACHE=off); repeatable",
    )
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


def function_env_setting(value: str) -> tuple[str, str]:
    """``NAME=VALUE`` for a variable the template sets on a function (others are refused: a typo would
    otherwise change nothing, silently)."""
    name, sep, setting = value.partition("=")
    known = {name for function in [*api_functions(), *worker_functions()] for name in function.environment}
    if not sep or name not in known:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
    return name, setting


def print_token(args: argparse.Namespace) -> int:
    print(load_or_create(args.keys_dir).mint(sub=args.sub, scope=args.scope, ttl_s=args.ttl))
    return 0


def start_side_servers(args: argparse.Namespace) -> tuple[Child, Child, Child]:
    """The model server and the DynamoDB and S3 stand-ins, each in its own process."""
    model_args = ["local_stack.model_server", "--port", str(args.model_port), "--model-dir", str(args.model_dir),
                  "--endpoint-name", ENDPOINT_NAME, "--exit-with-parent"]  # fmt: skip
    if args.enable_fault_injection:
        model_args.append("--enable-fault-injection")
    model = start_child("model server", model_args, r"^model server: (http://\S+) .*model_version=(\S+)")
    started = [model]
    try:
        for name in ("dynamodb", "s3"):
            started.append(start_child(name, [f"local_stack.{name}", "--exit-with-parent"], rf"^{name}: (http://\S+)"))
    except ChildFailed:
        stop_children(started)
        raise
    model, dynamodb, s3 = started
    return model, dynamodb, s3


def jobs_engine(environment: dict[str, str], max_instances: int) -> tuple[JobsEngine, FunctionPool]:
    """The jobs state machine's local engine and the worker's instances (at most the Map's concurrency)."""
    (worker,) = worker_functions()
    substitutions = {
        "MaxConcurrency": worker.parameter_defaults["JobMaxConcurrency"],
        "WorkerFunctionArn": function_name(worker),
        "JobsBucket": JOBS_BUCKET,
    }
    definition = JobsDefinition.load(substitutions)
    pool = FunctionPool(InstanceSpec(worker, environment), max(max_instances, definition.max_concurrency))
    engine = JobsEngine(definition, pool, function_name(worker), worker.timeout_s, JOBS_STATE_MACHINE_ARN)
    return engine, pool


class _Late:
    """A WSGI app set after its server exists (the engine needs the functions' environment, which needs the
    engine server's URL)."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


def prewarm(pools: list[FunctionPool]) -> None:
    """One warm instance per function before the banner (each imports its handler in parallel)."""
    threads = [threading.Thread(target=pool.prewarm, name=f"prewarm:{pool.spec.function.logical_id}") for pool in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


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
    try:
        model, dynamodb, s3 = start_side_servers(args)
    except ChildFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    children, pools = [model, dynamodb, s3], list[FunctionPool]()
    engine_app = _Late()
    engine_server = make_wsgi_server(SIDE_HOST, 0, engine_app, threads=4, name="sfn")
    servers = [engine_server]
    try:
        create_rate_limit_table(dynamodb.url)
        create_jobs_table(dynamodb.url)
        local_client("s3", s3.url).create_bucket(Bucket=JOBS_BUCKET)
        sfn_url = url_of(engine_server)
        environment = lambda_environment(model.url, dynamodb.url, s3.url, sfn_url) | dict(args.function_env)
        engine_app.app, worker_pool = jobs_engine(environment, args.concurrency)
        routes, pools = pooled_routes(environment, args.concurrency)
        pools.append(worker_pool)
        prewarm(pools)
        app = create_app(routes, load_or_create(args.keys_dir))
        # a thread per possible concurrent invocation of each function, and a few for JWKS and refusals
        api_server = make_wsgi_server(args.host, args.port, app, threads=args.concurrency * len(pools) + 4, name="api")
        servers.append(api_server)
        threads = start_serving(servers)
        try:
            print_banner(
                url_of(api_server, args.host),
                model.url,
                dynamodb.url,
                s3.url,
                model.match.group(2),
                ", ".join(route.key for route in routes),
                args.concurrency,
            )
            if args.enable_fault_injection:
                print("FAULT INJECTION: enabled (x-correlation-id: fault-<kind>-...; tests only)", flush=True)
            stop.wait()
            print("stopping", flush=True)
        finally:
            stop_serving(servers, threads)
    finally:
        for pool in pools:
            pool.close()
        stop_children(children)
    return 0


def print_banner(
    api_url: str,
    model_url: str,
    dynamodb_url: str,
    s3_url: str,
    model_version: str,
    routes: str,
    concurrency: int,
) -> None:
    print(
        f"API: {api_url}  ({routes}; GET {JWKS_PATH})\n"
        f"FUNCTIONS: up to {concurrency} instances per function, each its own process (--concurrency)\n"
        f"MODEL: {model_url}  (endpoint {ENDPOINT_NAME}, model version {model_version})\n"
        f"DYNAMODB: {dynamodb_url}  (tables {RATE_LIMIT_TABLE}, {JOBS_TABLE}; in memory)\n"
        f"S3: {s3_url}  (bucket {JOBS_BUCKET}, in memory; presigned URLs checked)\n"
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
