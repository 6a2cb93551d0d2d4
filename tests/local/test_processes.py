"""local_stack.processes (the side servers as child processes) and the stack's process tree: started when
ready, failing loudly when a child cannot start, and nothing left running after the stack stops."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import requests
from local_stack import processes
from local_stack.processes import ChildFailed, start_child
from local_stack.servers import make_wsgi_server

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack


def test_a_child_is_ready_when_it_prints_its_url_and_stops_on_request() -> None:
    out = io.StringIO()
    child = start_child("web", ["http.server", "0", "--bind", "127.0.0.1"], r"\((http://\S+?)/?\)", out)
    try:
        assert requests.get(child.url, timeout=5).status_code == 200
    finally:
        child.stop()
    assert child.process.poll() is not None
    assert "Serving HTTP" in out.getvalue()  # its output is forwarded


def test_a_child_that_exits_before_it_is_ready_fails_with_its_output() -> None:
    with pytest.raises(ChildFailed, match="Beautiful is better than ugly"):
        start_child("zen", ["this"], r"never printed", io.StringIO())


def test_a_child_that_never_gets_ready_fails_after_the_startup_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "STARTUP_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(ChildFailed, match="did not start"):
        start_child("silent", ["timeit", "-n", "1", "import time; time.sleep(60)"], r"never printed", io.StringIO())
    assert time.monotonic() - started < 30  # killed at the timeout, not after its 60 s


def test_a_side_server_exits_when_the_stack_dies_without_stopping_it() -> None:
    parent = subprocess.Popen(  # a stand-in for the stack: starts a child with --exit-with-parent, then dies
        [sys.executable, "-c", EXIT_WITH_PARENT_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while psutil.pid_exists(child_pid) and psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the DynamoDB stand-in outlived the process that started it"
        time.sleep(0.1)


EXIT_WITH_PARENT_SCRIPT = """
import subprocess, sys, time
command = [sys.executable, "-m", "local_stack.dynamodb", "--exit-with-parent"]
child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
child.stdout.readline()  # ready
print(child.pid, flush=True)
time.sleep(600)
"""


def test_the_stack_leaves_no_process_behind(
    start_stack: Callable[[], AbstractContextManager[RunningStack]], token: Callable[..., str]
) -> None:
    with start_stack() as stack:
        answer = requests.post(
            f"{stack.api_url}/predict",
            json={"text": "fine"},
            headers={"authorization": f"Bearer {token(sub='process-tree')}"},
            timeout=30,
        )
        assert answer.status_code == 200
        tree = psutil.Process(stack.process.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in tree]
        assert any("local_stack.model_server" in c for c in commands)
        assert any("local_stack.dynamodb" in c for c in commands)
        assert sum("multiprocessing" in c and "resource_tracker" not in c for c in commands) >= 2  # both functions
        assert stack.stop() == 0
    deadline = time.monotonic() + 10
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_a_host_name_with_two_addresses_is_served_on_one() -> None:
    """localhost is ::1 and 127.0.0.1 on dual-stack machines: one address is chosen, one port reported."""

    def hello(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain"), ("content-length", "2")])
        return [b"ok"]

    server = make_wsgi_server("localhost", 0, hello, threads=1, name="test")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.server_port > 0
        assert requests.get(f"http://localhost:{server.server_port}/", timeout=5).text == "ok"
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_exit_with_parent_exits_once_the_parent_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    parents = iter([100, 100, 1])  # the parent's pid, then re-parented to init
    exited = threading.Event()
    monkeypatch.setattr(processes.os, "getppid", lambda: next(parents, 1))
    monkeypatch.setattr(processes.os, "_exit", lambda code: exited.set())
    processes.exit_with_parent(poll_s=0.01)
    assert exited.wait(timeout=5)
