"""Serving helpers shared by the local stack's servers (HTTP API, model server, DynamoDB).

Every server is waitress (a production WSGI server, pure Python): HTTP/1.1 keep-alive, so clients keep
their connections as boto3 does with AWS and clients with API Gateway, and a fixed pool of worker threads.
werkzeug's development server, used before, closes every connection after one answer ("Connection:
close", always) and starts a thread per connection: each request paid a new TCP connection and a new
thread (bench/throughput.py measures the difference)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from waitress.server import create_server
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

SIDE_HOST = "127.0.0.1"  # the model server and DynamoDB serve only the local functions
#: The dummy access key and secret of every local AWS stand-in (moto accepts any; the local S3 checks
#: presigned URLs against them).
LOCAL_KEY = "local"
# waitress warns when requests wait for a free thread: under a load test that is the point, not a fault.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class WsgiServer:
    """One waitress server, with the small interface the stack uses (port, serve_forever, shutdown)."""

    def __init__(self, host: str, port: int, app: WSGIApplication, threads: int, name: str) -> None:
        # one address: waitress serves a name that resolves to several (localhost: ::1 and 127.0.0.1) with a
        # multi-socket server that has no single port
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
        self._server = create_server(
            app,
            host=address,
            port=port,
            threads=threads,
            ident=name,
            channel_timeout=120,
            connection_limit=1000,
            clear_untrusted_proxy_headers=True,
        )
        self.server_port: int = int(self._server.effective_port)
        self._stopped = threading.Event()

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        try:
            self._server.run()
        except OSError:
            if not self._stopped.is_set():
                raise  # closed by shutdown(): the loop ends with a closed socket

    def shutdown(self) -> None:
        """Closes the listening socket and every open connection, in the server's own loop thread (waitress's
        trigger), so that its loop ends even while clients keep idle keep-alive connections open."""
        self._stopped.set()
        server = self._server

        def close_everything() -> None:
            for channel in list(server._map.values()):  # waitress keeps its channels there
                channel.close()

        server.trigger.pull_trigger(close_everything)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)

    def server_close(self) -> None:
        pass  # shutdown() closed it


def local_client(service: str, url: str, config: Any = None) -> Any:
    """A boto3 client of one local stand-in (DynamoDB, S3) at ``url``, with the dummy credentials."""
    import boto3

    from .lambda_context import REGION

    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id=LOCAL_KEY, aws_secret_access_key=LOCAL_KEY,
        config=config,
    )  # fmt: skip


def make_wsgi_server(host: str, port: int, app: WSGIApplication, threads: int = 8, name: str = "local") -> WsgiServer:
    """A server for ``app`` (not started; port 0 picks a free port)."""
    return WsgiServer(host, port, app, threads, name)


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the model server logs its own line per request


def make_socket_server(host: str, port: int, app: WSGIApplication) -> BaseWSGIServer:
    """werkzeug's threaded server, whose environ carries the connection's socket (``werkzeug.socket``):
    only for the model server's fault injection (tests), which resets that socket for real. It closes
    every connection after one answer, which is why it serves nothing else."""
    return make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)


def url_of(server: WsgiServer | BaseWSGIServer, host: str = SIDE_HOST) -> str:
    return f"http://{host}:{server.server_port}"


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT (Ctrl-C) or SIGTERM."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def start_serving(servers: Sequence[WsgiServer]) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"serve:{server.server_port}")
        for server in servers
    ]
    for thread in threads:
        thread.start()
    return threads


def stop_serving(servers: Sequence[WsgiServer], threads: Sequence[threading.Thread]) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=10)


def serve_side_server(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, name: str, make: Callable[[int], WsgiServer]
) -> int:
    """``python -m local_stack.<name>``: the stand-in made by ``make(port)`` in its own process; prints
    ``<name>: <url>`` once it listens (what local_stack.processes.start_child waits for)."""
    from .processes import exit_with_parent

    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the starting process dies")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        exit_with_parent()
    server = make(args.port)
    stop = stop_on_signals()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"{name}: {url_of(server)}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
