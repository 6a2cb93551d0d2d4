"""A local DynamoDB (moto's server) for the per-user rate limiter, and its table as the template defines it.
``python -m local_stack.dynamodb`` serves it in its own process (the local stack's way); ``start_dynamodb``
makes the same server in this process (tests)."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from . import template
from .api import JOBS_TABLE, RATE_LIMIT_TABLE
from .dynamodb_fast_path import fast_path
from .servers import SIDE_HOST, WsgiServer, local_client, make_wsgi_server, serve_side_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def start_dynamodb(port: int = 0, fast: bool = True, on_fast_answer: Callable[[], None] | None = None) -> WsgiServer:
    """moto's DynamoDB server (not started): the per-user rate limiter runs its real code against it.
    ``fast``: the limiter's two conditional writes are answered by local_stack.dynamodb_fast_path on moto's
    own tables (the same answers as moto's, about 1 ms instead of 4.4; that module says how it is checked);
    ``on_fast_answer`` is called after each answer it gave.

    Requests are served one at a time (``_serialized``). The limiter's exactness rests on DynamoDB
    evaluating a conditional UpdateItem atomically: the condition and the write happen as one step, so two
    callers can never both pass ``tat <= :limit`` on the same old value. moto's backend does not: its
    update_item reads the item, checks the condition and writes in separate Python steps, with no lock,
    and the server runs requests in parallel threads, so two requests can interleave
    between the check and the write. Measured (tests/unit/api/test_ratelimit_concurrency.py: 8 threads with
    their own clients, 240 requests at one frozen instant, burst 200): 204 to 214 allowed without the lock
    when threads switch often (201 to 203 on a loaded machine at the default switch interval), exactly 200
    with it. One lock around the whole backend app restores DynamoDB's per-item atomicity (more than
    DynamoDB promises, never less) while the threaded server still accepts connections concurrently.

    Only DynamoDB is served: moto's own server dispatches every request among all its services by host
    and signature (listing its service modules on disk each time), which cost 1.2 ms of the 4.3 ms CPU an
    UpdateItem took (measured: 4.3 -> 3.1 ms).
    """
    from moto.moto_server.werkzeug_app import create_backend_app

    backend = create_backend_app("dynamodb")
    app = _serialized(fast_path(backend, on_fast_answer) if fast else backend)
    return make_wsgi_server(SIDE_HOST, port, app, threads=8, name="dynamodb")


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
                forget_tracked_instances()

    return serialized


def forget_tracked_instances() -> None:
    """moto appends every model object it ever creates to a class-level list (``instances_tracked``, for its
    server's dashboard, which the stack does not serve): every Item of every UpdateItem, copies included,
    is kept forever. Measured in a 10-minute soak (bench/soak.py): the DynamoDB process grew from 89.5 to
    157 MiB at 88 requests/s, about 1.4 KB per request. The table's own items are not in those lists, so
    dropping them after each request (under the lock) loses no state."""
    from moto.core.model_instances import model_data

    for model in model_data.get("dynamodb", {}).values():
        model.instances_tracked = []  # type: ignore[attr-defined]


def create_rate_limit_table(dynamodb_url: str) -> None:
    """The rate-limit table as template.yaml defines it (RateLimitTable: keys, TTL)."""
    template.table("RateLimitTable").create(local_client("dynamodb", dynamodb_url), RATE_LIMIT_TABLE)


def create_jobs_table(dynamodb_url: str) -> None:
    """The bulk jobs' table as template.yaml defines it (JobsTable: keys, TTL)."""
    template.table("JobsTable").create(local_client("dynamodb", dynamodb_url), JOBS_TABLE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.dynamodb", description=__doc__)
    return serve_side_server(parser, argv, "dynamodb", start_dynamodb)


if __name__ == "__main__":
    raise SystemExit(main())
