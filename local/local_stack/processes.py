"""The local stack's side servers as child processes (the model server, the DynamoDB stand-in): started with
the same interpreter and environment, ready once they print their URL, their output forwarded to ours, and
stopped with SIGTERM (or killed). Each is started with ``--exit-with-parent`` (``exit_with_parent``): it
exits by itself when this process dies without stopping it, so no server outlives the stack."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

STARTUP_TIMEOUT_S = 120.0


class ChildFailed(RuntimeError):
    """A side server exited or did not print its URL in time."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    match: re.Match[str]
    _forwarder: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.match.group(1)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._forwarder is not None:
            self._forwarder.join(timeout=timeout_s)


def _forward(lines: queue.Queue[str | None], stream: IO[str], out: IO[str], ready: threading.Event) -> None:
    """Reads the child's output: into ``lines`` until it is ready, then straight to ``out``."""
    for line in stream:
        if ready.is_set():
            out.write(line)
            out.flush()
        else:
            lines.put(line)
    lines.put(None)  # it exited


def start_child(name: str, module_args: Sequence[str], ready: str, out: IO[str] | None = None) -> Child:
    """``python -m <module_args>``; ready when a line of its output matches ``ready`` (group 1: its URL), or
    ChildFailed when it exits first or does not get there within STARTUP_TIMEOUT_S."""
    out = out or sys.stdout
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module names
        [sys.executable, "-m", *module_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    is_ready = threading.Event()
    forwarder = threading.Thread(
        target=_forward, args=(lines, process.stdout, out, is_ready), name=f"out:{name}", daemon=True
    )
    forwarder.start()
    pattern, deadline, seen = re.compile(ready), time.monotonic() + STARTUP_TIMEOUT_S, []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break  # it exited
        out.write(line)
        seen.append(line)
        match = pattern.search(line)
        if match:
            is_ready.set()
            while not lines.empty():  # lines read between the match and the switch
                late = lines.get_nowait()
                if late is not None:
                    out.write(late)
            return Child(name, process, match, forwarder)
    process.kill()
    process.wait()
    raise ChildFailed(f"{name} did not start (exit code {process.returncode}):\n{''.join(seen[-20:])}")


def stop_children(children: Sequence[Child]) -> None:
    for child in reversed(children):
        child.stop()


def exit_with_parent(poll_s: float = 1.0) -> None:
    """In a child: exits (code 0) once the process that started it is gone (it is re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
