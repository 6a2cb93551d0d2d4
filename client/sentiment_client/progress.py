"""Progress on stderr and the closing summary.

On a terminal: one line redrawn in place (``\\r``) at most 10 times a second: percentage, bar, rows, rate,
ETA, and a rate-limit pause when there is one. Elsewhere (a log, CI): a plain line each time another 10 %
is done, or every 5 s when the percentage moves slowly (a pause says so)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TextIO

from .api import Clock

BAR_WIDTH = 24
REDRAW_S = 0.1


class Progress:
    def __init__(
        self,
        stream: TextIO,
        clock: Clock,
        *,
        tty: bool | None = None,
        paused_s: Callable[[], float] = lambda: 0.0,
        interval_s: float = 5.0,
        step_pct: int = 10,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._tty = stream.isatty() if tty is None else tty
        self._paused_s = paused_s
        self._interval_s = interval_s
        self._step_pct = step_pct
        self.total = 0
        self.done = 0
        self._start = self._last = clock.now()
        self._last_step = 0
        self._width = 0
        self._started = False

    def start(self, total: int, kept: int) -> None:
        self._started = True
        self.total, self.done = total, 0
        self._start = self._last = self._clock.now()
        if kept:
            self._print(f"resuming: {kept:,} rows kept from the previous run, {total:,} to score")

    def advance(self, rows: int) -> None:
        self.done += rows
        self._report(force=False)

    def tick(self) -> None:
        """Called while waiting: the ETA and a pause stay current."""
        self._report(force=False)

    def finish(self) -> None:
        """The last redraw, and the line ended (also when the run stops early)."""
        if self._tty and self._started:
            self._report(force=True)
            if self._width:
                self._stream.write("\n")
                self._stream.flush()
                self._width = 0

    # ---- figures -------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return max(0.0, self._clock.now() - self._start)

    @property
    def rate(self) -> float:
        """Rows per second so far (0 before the first second's worth)."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0

    def _percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _eta(self) -> str:
        rate = self.rate
        if self.done >= self.total:
            return "0:00"
        return clock_time((self.total - self.done) / rate) if rate > 0 else "--:--"

    def _pause_note(self) -> str:
        paused = self._paused_s()
        return f", paused {math.ceil(paused)} s (rate limit)" if paused > 0 else ""

    # ---- output --------------------------------------------------------------------------------
    def _report(self, *, force: bool) -> None:
        now = self._clock.now()
        if self._tty:
            if force or now - self._last >= REDRAW_S or self.done >= self.total:
                self._redraw()
                self._last = now
            return
        step = int(self._percent() // self._step_pct) if self.total else 0
        if step > self._last_step or now - self._last >= self._interval_s:
            self._last_step = max(step, self._last_step)
            self._last = now
            self._print(
                f"progress: {self.done:,}/{self.total:,} rows ({self._percent():.0f} %), "
                f"{self.rate:,.1f} texts/s, ETA {self._eta()}{self._pause_note()}"
            )

    def _redraw(self) -> None:
        filled = round(BAR_WIDTH * self._percent() / 100)
        line = (
            f"{self._percent():3.0f}% |{'#' * filled}{'.' * (BAR_WIDTH - filled)}| {self.done:,}/{self.total:,} rows"
            f"  {self.rate:,.1f} texts/s  ETA {self._eta()}{self._pause_note()}"
        )
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def _print(self, line: str) -> None:
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self._stream.write(line + "\n")
        self._stream.flush()


def clock_time(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    total = round(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else clock_time(seconds)


def mix(counts: Counter[str], order: Iterable[str] = (), total: int | None = None) -> str:
    """'positive 40 (40.0 %), negative 10 (10.0 %)': the given names first, then the others by count; shares of
    `total` (default: the counts' sum)."""
    whole = total or sum(counts.values())
    names = [name for name in order if counts[name]]
    names += [name for name, _ in counts.most_common() if name not in names]
    return ", ".join(f"{name} {counts[name]:,} ({100 * counts[name] / whole:.1f} %)" for name in names) or "none"
