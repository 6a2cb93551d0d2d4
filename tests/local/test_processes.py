"""local_stack.processes (the side servers as child processes) and the stack's process tree: started when
ready, failing loudly when a child cannot start, and nothing left running after the stack stops."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import psutil
import pytest
import requests
from local_stack.processes import ChildFailed, start_child

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
