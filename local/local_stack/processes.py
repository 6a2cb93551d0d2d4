"""The local stack's side servers as child processes (the model server, the DynamoDB stand-in): started with
the same interpreter and environment, ready once they print their URL, their output forwarded to ours, and
stopped with SIGTERM (or killed). On Linux each child also gets SIGTERM if this process dies without
stopping it (PR_SET_PDEATHSIG), so no server outlives the stack."""

from __future__ import annotations

import ctypes
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
_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A side server exited or did not print its URL in time."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the stack still stops its children on SIGINT/SIGTERM


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


def _forward(stream: IO[str], out: IO[str]) -> None:
    for line in stream:
        out.write(line)
        out.flush()


def start_child(name: str, module_args: Sequence[str], ready: str, out: IO[str] | None = None) -> Child:
    """``python -m <module_args>``; ready when a line of its output matches ``ready`` (group 1: its URL)."""
    out = out or sys.stdout
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module names
        [sys.executable, "-m", *module_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    assert process.stdout is not None
    pattern, deadline, seen = re.compile(ready), time.monotonic() + STARTUP_TIMEOUT_S, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break  # it exited
        out.write(line)
        seen.append(line)
        match = pattern.search(line)
        if match:
            forwarder = threading.Thread(target=_forward, args=(process.stdout, out), name=f"out:{name}", daemon=True)
            forwarder.start()
            return Child(name, process, match, forwarder)
    process.kill()
    process.wait()
    raise ChildFailed(f"{name} did not start (exit code {process.returncode}):\n{''.join(seen[-20:])}")


def stop_children(children: Sequence[Child]) -> None:
    for child in reversed(children):
        child.stop()
