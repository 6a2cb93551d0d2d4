"""A local DynamoDB (moto's server, in process) for the per-user rate limiter, and its table as the template
defines it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

import boto3
from werkzeug.serving import BaseWSGIServer, make_server

from . import template
from .api import RATE_LIMIT_TABLE
from .lambda_context import REGION
from .servers import SIDE_HOST, QuietRequestHandler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


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
    return make_server(SIDE_HOST, 0, app, threaded=True, request_handler=QuietRequestHandler)


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
    """The rate-limit table as template.yaml defines it (RateLimitTable: keys, TTL)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's dummy credentials
    )
    template.table("RateLimitTable").create(client, RATE_LIMIT_TABLE)
