"""local_stack.instances: function instances in their own processes, as Lambda runs them. A tiny handler
(written per test) stands in for the functions, loaded exactly as the real ones are (the template's layers
on the path, the handler imported by file path)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from local_stack.api import api_functions
from local_stack.instances import FunctionError, FunctionPool, InstanceSpec
from local_stack.lambda_context import new_context

HANDLER = """
import os, time
def lambda_handler(event, context):
    action = event.get("action")
    if action == "sleep":
        time.sleep(event["seconds"])
    elif action == "raise":
        raise ValueError("a handler bug")
    elif action == "exit":
        os._exit(3)
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(), "env": os.environ.get("MARK")}
"""


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator[Callable[[int], FunctionPool]]:
    (tmp_path / "app.py").write_text(HANDLER)
    function = replace(api_functions()[0], code_dir=tmp_path, handler="app.lambda_handler")
    pools: list[FunctionPool] = []

    def make(max_instances: int) -> FunctionPool:
        pool = FunctionPool(InstanceSpec(function, {"MARK": "the function's environment"}), max_instances)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def invoke(pool: FunctionPool, timeout_s: float = 10.0, **event: Any) -> Any:
    return pool(event, new_context("test-function", timeout_s))


def concurrently(pool: FunctionPool, count: int, **event: Any) -> list[Any]:
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        results[i] = invoke(pool, **event)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_an_instance_is_its_own_process_with_the_functions_environment(make_pool: Any) -> None:
    pool = make_pool(2)
    answer = invoke(pool)
    assert answer["pid"] != os.getpid()
    assert answer["env"] == "the function's environment"
    assert 0 < answer["remaining_ms"] <= 10_000  # the context's clock runs in the instance too
    assert invoke(pool)["pid"] == answer["pid"]  # warm: the same environment serves the next request


def test_concurrent_requests_get_their_own_instances(make_pool: Any) -> None:
    pool = make_pool(4)
    pids = {r["pid"] for r in concurrently(pool, 4, action="sleep", seconds=1.0)}
    assert len(pids) == 4 and pool.instances == 4


def test_the_number_of_instances_is_bounded(make_pool: Any) -> None:
    pool = make_pool(2)
    results = concurrently(pool, 6, action="sleep", seconds=0.2)
    assert all(r is not None for r in results)  # the others waited for a free instance
    assert len({r["pid"] for r in results}) <= 2 and pool.instances <= 2


def test_a_handler_error_fails_the_invocation_and_keeps_the_instance(make_pool: Any) -> None:
    pool = make_pool(1)
    pid = invoke(pool)["pid"]
    with pytest.raises(FunctionError, match="ValueError"):
        invoke(pool, action="raise")
    assert invoke(pool)["pid"] == pid


def test_an_instance_past_its_timeout_is_killed_and_replaced(make_pool: Any) -> None:
    pool = make_pool(1)
    pid = invoke(pool)["pid"]
    with pytest.raises(FunctionError, match="timed out"):
        invoke(pool, timeout_s=0.5, action="sleep", seconds=30)
    assert invoke(pool)["pid"] != pid


def test_an_instance_that_dies_is_replaced(make_pool: Any) -> None:
    pool = make_pool(1)
    pid = invoke(pool)["pid"]
    with pytest.raises(FunctionError, match="exited"):
        invoke(pool, action="exit")
    assert invoke(pool)["pid"] != pid


def test_a_closed_pool_refuses_invocations(make_pool: Any) -> None:
    pool = make_pool(1)
    invoke(pool)
    pool.close()
    with pytest.raises(FunctionError, match="stopping"):
        invoke(pool)


def test_an_instance_that_died_while_idle_is_replaced_and_frees_its_slot(make_pool: Any) -> None:
    pool = make_pool(1)
    pid = invoke(pool)["pid"]
    os.kill(pid, signal.SIGKILL)  # the OOM killer, or an operator
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    answer = invoke(pool)
    assert answer["pid"] != pid and pool.instances == 1


def test_the_timeout_runs_from_the_invocation_not_from_the_cold_start(make_pool: Any) -> None:
    """The context was made before the instance existed (its cold start takes a while): the handler must
    still see (nearly) the whole timeout, as in Lambda, where init has its own limit."""
    pool = make_pool(1)
    context = new_context("test-function", 10.0)
    time.sleep(1.0)  # e.g. waiting for a cold start or for a free instance
    assert pool({}, context)["remaining_ms"] > 9_500


def test_an_instance_in_this_process_serves_until_its_connection_closes(tmp_path: Path) -> None:
    """_instance_main, the instance's side of the pipe, run in a thread here (the pool runs it in a child)."""
    import multiprocessing

    from local_stack.instances import _instance_main

    (tmp_path / "app.py").write_text(HANDLER)
    function = replace(api_functions()[0], code_dir=tmp_path, handler="app.lambda_handler")
    parent, child = multiprocessing.Pipe()
    saved = dict(os.environ)
    thread = threading.Thread(target=_instance_main, args=(child, InstanceSpec(function, {"MARK": "here"})))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("signal.signal", lambda *_: None)  # only the main thread may set handlers
            thread.start()
            assert parent.recv() == ("ready", None)
        parent.send(({}, new_context("test-function", 5.0)))
        kind, value = parent.recv()
        assert kind == "ok" and value["env"] == "here" and value["pid"] == os.getpid()
        parent.send(({"action": "raise"}, new_context("test-function", 5.0)))
        assert parent.recv() == ("error", "ValueError")
    finally:
        parent.close()
        thread.join(timeout=10)
        os.environ.clear()
        os.environ.update(saved)
    assert not thread.is_alive()
