"""Function instances in their own processes, as Lambda runs them: one execution environment per process,
one invocation at a time in each, as many environments as there are concurrent requests (up to a
maximum), each with its own cold start (the handler module imported once, at its first use).

``FunctionPool`` is a handler as far as the HTTP API emulator is concerned (``pool(event, context)``): it
takes an idle instance, or starts a new one when all are busy and the maximum is not reached, or waits for
one. An instance that fails to answer within the function's timeout is killed, as Lambda does, and the
invocation fails. The instance loads the handler exactly as the single-process emulator does
(local_stack.runtime, the template's code folder and layers, the function's environment).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from . import template
from .lambda_context import LocalLambdaContext

log = logging.getLogger(__name__)

#: spawn, not fork: the API emulator runs threads, and a forked child would inherit their locks.
_CONTEXT = multiprocessing.get_context("spawn")
#: Time an instance may take for its cold start (imports) on top of the function's timeout.
INIT_TIMEOUT_S = 60.0


class FunctionError(Exception):
    """The handler raised, the instance died, or it ran past the function's timeout. ``error_type`` is what
    Lambda reports (and Step Functions' Retry matches): the exception's class name when the handler raised,
    ``Sandbox.Timedout`` past the timeout, ``Lambda.ServiceException`` when the instance died."""

    def __init__(self, message: str, error_type: str = "Lambda.ServiceException") -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class InstanceSpec:
    function: template.Function  # its code folder, layers and handler, as the template says
    environment: Mapping[str, str]


def _instance_main(connection: Connection, spec: InstanceSpec) -> None:
    """The execution environment: environment first, then the handler module (its init phase), then one
    invocation after another until the connection closes."""
    from .api import apply_environment
    from .runtime import load_handler

    # Ctrl-C reaches the whole process group: the stack stops its instances itself (FunctionPool.close)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # what the Lambda runtime sets for the function's code (/var/task there): the X-Ray SDK, for one, reads
    # it at import and then skips the centralized sampler that only a non-Lambda process builds
    apply_environment({**spec.environment, "LAMBDA_TASK_ROOT": str(spec.function.code_dir)})
    handler = load_handler(spec.function)
    connection.send(("ready", None))
    while True:
        try:
            event, context = connection.recv()
        except (EOFError, OSError):
            return
        try:
            result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - as the Lambda runtime: logged in the function's log, reported
            traceback.print_exc()
            connection.send(("error", type(exc).__name__))
            continue
        connection.send(("ok", result))


class _Instance:
    def __init__(self, spec: InstanceSpec, name: str) -> None:
        self.connection, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_instance_main, args=(child, spec), name=name, daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def wait_ready(self) -> None:
        """Waits for the init phase (the handler's import), once."""
        if not self.ready:
            self._receive(INIT_TIMEOUT_S, "init")
            self.ready = True

    def invoke(self, event: dict[str, Any], context: LocalLambdaContext) -> Any:
        self.wait_ready()
        # the function's timeout runs from here, as Lambda's does: not during the cold start (init has its
        # own limit) nor while the request waited for a free instance
        context = replace(context, deadline=time.monotonic() + context.timeout_s)
        try:
            self.connection.send((event, context))
        except (OSError, ValueError, pickle.PicklingError) as exc:  # a dead instance, or an event it cannot take
            self.stop()
            raise FunctionError(f"the invocation could not be sent: {type(exc).__name__}") from None
        kind, value = self._receive(context.timeout_s, "invocation")
        if kind == "error":
            raise FunctionError(f"the handler raised {value}", error_type=str(value))
        return value

    def _receive(self, timeout_s: float, phase: str) -> tuple[str, Any]:
        if not self.connection.poll(timeout_s):
            self.stop()
            raise FunctionError(f"{phase} timed out after {timeout_s:.1f} s", error_type="Sandbox.Timedout")
        try:
            message: tuple[str, Any] = self.connection.recv()
        except (EOFError, OSError):
            self.stop()
            raise FunctionError(f"the instance exited during {phase} (code {self.process.exitcode})") from None
        return message

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class FunctionPool:
    """The execution environments of one function (see the module docstring)."""

    def __init__(self, spec: InstanceSpec, max_instances: int) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        self.spec = spec
        self.max_instances = max_instances
        self._idle: list[_Instance] = []
        self._count = 0
        self._started = 0
        self._available = threading.Condition()
        self._closed = False

    @property
    def instances(self) -> int:
        return self._count

    def prewarm(self) -> None:
        """Starts one instance and waits for its init phase (so the first request is not a cold start)."""
        instance = self._acquire()
        try:
            instance.wait_ready()
        except FunctionError:
            self._release(instance, broken=True)
            raise
        self._release(instance)

    def __call__(self, event: dict[str, Any], context: LocalLambdaContext) -> Any:
        instance = self._acquire()
        try:
            result = instance.invoke(event, context)
        except FunctionError:
            # a handler that raised leaves a healthy instance; a timed-out or dead one was stopped
            self._release(instance, broken=not instance.alive)
            raise
        self._release(instance)
        return result

    def _acquire(self) -> _Instance:
        with self._available:
            while True:
                if self._closed:
                    raise FunctionError("the local stack is stopping")
                while self._idle:
                    instance = self._idle.pop()
                    if instance.alive:
                        return instance
                    instance.stop()  # died while idle (killed, out of memory): its slot is free again
                    self._count -= 1
                if self._count < self.max_instances:
                    self._count += 1
                    self._started += 1
                    name = f"{self.spec.function.logical_id}-{self._started}"
                    break
                self._available.wait()
        try:
            return _Instance(self.spec, name)
        except Exception:
            with self._available:
                self._count -= 1
                self._available.notify()
            raise

    def _release(self, instance: _Instance, broken: bool = False) -> None:
        with self._available:
            if broken or self._closed:
                instance.stop()
                self._count -= 1
            else:
                self._idle.append(instance)
            self._available.notify()

    def close(self) -> None:
        with self._available:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._available.notify_all()
        for instance in idle:
            instance.stop()
