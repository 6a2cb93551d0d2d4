"""Serving helpers shared by the local stack's servers (HTTP API, model server, DynamoDB)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

SIDE_HOST = "127.0.0.1"  # the model server and DynamoDB serve only the local functions


class QuietRequestHandler(WSGIRequestHandler):
    """The side servers do not log each request with werkzeug's access line: the API's access log (and the
    model server's own line per request) are the ones to read."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def url_of(server: BaseWSGIServer, host: str = SIDE_HOST) -> str:
    return f"http://{host}:{server.server_port}"


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
