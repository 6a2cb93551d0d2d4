"""Scores a CSV file: reads the input, keeps what a previous run saved, sends the other rows in batches from
a few threads, and writes every row back in input order (see the package docstring for the design)."""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .api import LABELS, MAX_BATCH_TEXTS, MAX_BODY_BYTES, BatchApi, Clock, Outcome, body_size, text_size
from .errors import ClientError
from .files import (
    PERMANENT_ERRORS,
    InputTable,
    Layout,
    OutputLock,
    PartialWriter,
    Saved,
    copy_prefix,
    count_rows,
    merge,
    open_input,
    read_saved,
)
from .progress import Progress, duration, mix

#: A stretch of rows that needs no request (errors found locally) is written in pieces of at most this size.
MAX_CHUNK_ROWS = 500


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


@dataclass(slots=True)
class Report:
    out: Path
    #: input rows, rows kept from a previous run, rows handled by this run
    rows: int = 0
    kept: int = 0
    handled: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    complete: bool = False
    #: where the rows are when the run stopped early (OUT.partial, or OUT itself)
    saved_in: Path | None = None
    requests: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    pauses: int = 0
    paused_s: float = 0.0
    splits: int = 0
    #: blank lines of a multi-column input: not rows
    blank_lines: int = 0

    @property
    def transient(self) -> int:
        """Rows a rerun sends again."""
        return sum(count for code, count in self.errors.items() if code not in PERMANENT_ERRORS)

    def summary(self) -> list[str]:
        rate = self.handled / self.elapsed_s if self.elapsed_s > 0 else 0.0
        done = self.kept + self.handled
        lines = [
            f"{'scored' if self.complete else 'stopped after'} {done:,} of {self.rows:,} rows in "
            f"{duration(self.elapsed_s)} ({rate:,.1f} texts/s; {self.handled:,} this run, {self.kept:,} kept "
            f"from a previous run)",
            f"labels: {mix(self.labels, order=reversed(LABELS))}",
            f"errors: {mix(self.errors, total=done)}",
        ]
        if self.blank_lines:
            lines.append(f"blank lines skipped: {self.blank_lines:,} (not rows of a file with several columns)")
        if self.retries or self.pauses or self.splits:
            retries = ", ".join(f"{label}: {count}" for label, count in sorted(self.retries.items()))
            lines.append(
                f"requests: {self.requests:,}; retries: {sum(self.retries.values())}"
                f"{f' ({retries})' if retries else ''}; rate-limit pauses: {self.pauses} ({self.paused_s:.0f} s)"
                f"{f'; refused batches split: {self.splits}' if self.splits else ''}"
            )
        if self.complete:
            lines.append(f"wrote {self.out}")
            if self.transient:
                lines.append(
                    f"{self.transient:,} rows failed for a passing reason: rerun the same command to retry them"
                )
        elif self.saved_in:
            lines.append(f"saved in {self.saved_in}: rerun the same command to resume")
        return lines


@dataclass(slots=True)
class _Chunk:
    """Consecutive rows: (position, input fields, outcome if known without a request)."""

    rows: list[tuple[int, list[str], Outcome | None]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    future: Future[list[Outcome]] | None = None

    def outcomes(self, answered: list[Outcome]) -> Iterator[tuple[int, list[str], Outcome]]:
        sent = iter(answered)
        for position, fields, known in self.rows:
            yield position, fields, known if known is not None else next(sent)


class Scorer:
    """One run. `run` returns the Report; if it raises (Ctrl-C, a fatal API error), `report` says how far it
    got, and OUT / OUT.partial hold every row finished before the stop."""

    def __init__(
        self,
        source: Path,
        out: Path,
        api: BatchApi,
        clock: Clock,
        progress: Progress,
        *,
        column: str = "text",
        concurrency: int = 4,
        batch_size: int = MAX_BATCH_TEXTS,
        restart: bool = False,
        overwrite_columns: bool = False,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_TEXTS:
            raise ClientError(f"--batch-size must be 1..{MAX_BATCH_TEXTS}")
        if concurrency < 1:
            raise ClientError("--concurrency must be at least 1")
        self.source, self.out, self.partial = source, out, partial_path(out)
        self.api, self.clock, self.progress = api, clock, progress
        self.column, self.concurrency, self.batch_size, self.restart = column, concurrency, batch_size, restart
        self.overwrite_columns = overwrite_columns
        self.report = Report(out)
        self.layout: Layout | None = None
        self.saved = Saved()
        #: the input and the saved rows were read, and rows are being scored
        self.started = False
        self._replacements: dict[int, list[str]] = {}
        self._writer: PartialWriter | None = None

    # ---- the run -------------------------------------------------------------------------------
    def run(self) -> Report:
        table = open_input(self.source)
        self.layout = layout = Layout(table.header, self.column, overwrite=self.overwrite_columns)
        self._check_paths()
        with OutputLock(lock_path(self.out), self.out):  # before reading what was saved, until the last write
            return self._run(table, layout)

    def _run(self, table: InputTable, layout: Layout) -> Report:
        self.saved = saved = self._saved(layout, table)
        self.report.rows, self.report.kept = table.rows, saved.kept
        self.report.blank_lines = table.blank_lines
        self.report.labels.update(saved.labels)
        self.report.errors.update(saved.errors)
        if table.rows > saved.rows or saved.path is None:
            self._writer = self._open_writer(saved, layout)
        self.progress.start(table.rows - saved.kept, saved.kept)
        self.started = True
        start = self.clock.now()
        try:
            self._score(table.iter_rows(), saved, layout)
        except BaseException:
            self._finish(complete=False)
            raise
        finally:
            self.report.elapsed_s = self.clock.now() - start
            self._collect_api_figures()
            self.progress.finish()
        self._finish(complete=True)
        return self.report

    def _score(self, rows: Iterator[list[str]], saved: Saved, layout: Layout) -> None:
        window = 2 * self.concurrency
        pending: deque[_Chunk] = deque()
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="score")
        try:
            for chunk in self._chunks(rows, saved, layout):
                if chunk.texts:
                    chunk.future = executor.submit(self.api.score, chunk.texts)
                pending.append(chunk)
                while len(pending) > window or (pending and _ready(pending[0])):
                    self._complete(pending.popleft())
            while pending:
                self._complete(pending.popleft())
        except BaseException:
            self.clock.stop()  # every sender stops waiting; no queued batch starts
            for chunk in pending:
                if chunk.future is not None:
                    chunk.future.cancel()
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def _chunks(self, rows: Iterator[list[str]], saved: Saved, layout: Layout) -> Iterator[_Chunk]:
        """The rows to handle, in order, cut into chunks of at most one batch each."""
        chunk = _Chunk()
        for position, fields in enumerate(rows):
            if position < saved.rows and position not in saved.redo:
                continue
            error = layout.local_error(fields)
            if error:
                chunk.rows.append((position, fields, Outcome(error=error)))
                if len(chunk.rows) >= MAX_CHUNK_ROWS:
                    yield chunk
                    chunk = _Chunk()
                continue
            text = layout.text_of(fields)
            size = text_size(text)
            if chunk.texts and body_size([*chunk.sizes, size]) > MAX_BODY_BYTES:
                yield chunk
                chunk = _Chunk()
            chunk.rows.append((position, fields, None))
            chunk.texts.append(text)
            chunk.sizes.append(size)
            if len(chunk.texts) >= self.batch_size:
                yield chunk
                chunk = _Chunk()
        if chunk.rows:
            yield chunk

    def _complete(self, chunk: _Chunk) -> None:
        assert self.layout is not None
        answered = self._wait(chunk.future) if chunk.future is not None else []
        appended: list[list[str]] = []
        for position, fields, outcome in chunk.outcomes(answered):
            row = self.layout.row(fields, outcome)
            if position < self.saved.rows:
                self._replacements[position] = row
            else:
                appended.append(row)
            if outcome.error:
                self.report.errors[outcome.error] += 1
            else:
                self.report.labels[outcome.sentiment] += 1
        if appended:
            assert self._writer is not None
            self._writer.write(appended)
        self.report.handled += len(chunk.rows)
        self.progress.advance(len(chunk.rows))

    def _wait(self, future: Future[list[Outcome]]) -> list[Outcome]:
        while True:
            try:
                return future.result(timeout=0.2)
            except TimeoutError:
                self.progress.tick()

    # ---- files ---------------------------------------------------------------------------------
    def _check_paths(self) -> None:
        if self.out.exists() and self.out.resolve() == self.source.resolve():
            raise ClientError("OUT must be another file than IN")
        if not self.out.parent.is_dir():
            raise ClientError(f"the output's folder does not exist: {self.out.parent}")
        if self.out.is_dir():
            raise ClientError(f"OUT is a folder: {self.out}")

    def _saved(self, layout: Layout, table: InputTable) -> Saved:
        if self.restart:
            self.partial.unlink(missing_ok=True)
            return Saved()
        for path in (self.partial, self.out):
            if path.exists():
                return read_saved(path, layout, table)
        return Saved()

    def _open_writer(self, saved: Saved, layout: Layout) -> PartialWriter:
        """OUT.partial, ready for the rows after the saved ones (a copy of OUT's when they come from OUT)."""
        if saved.path == self.out:
            copy_prefix(self.out, self.partial, saved.end)
            saved.path = self.partial
        keep = saved.end if saved.path == self.partial else 0
        return PartialWriter(self.partial, layout.header, keep_bytes=keep)

    def _finish(self, *, complete: bool) -> None:
        """Complete: OUT gets every row (replaced atomically). Stopped early: the file the rows were saved in
        also gets the rows this run redid, so none of its work is lost."""
        if self._writer is not None:
            self._writer.close()
        base = self.saved.path if self._writer is None else self.partial
        assert base is not None  # without saved rows there is a writer
        rows = self.saved.rows + (self._writer.rows_written if self._writer else 0)
        if complete:
            found = count_rows(base)
            if rows != self.report.rows or found != self.report.rows:
                raise ClientError(
                    f"{base} holds {found:,} rows for the {self.report.rows:,} rows of {self.source} (did another "
                    f"program write to it?): {self.out} was not replaced; rerun with --restart"
                )
            if self._replacements:
                merge(base, rows, self._replacements, self.out)
                if base != self.out:
                    os.unlink(base)
            elif base != self.out:
                os.replace(base, self.out)
            self.report.complete = True
        elif rows == 0 and base == self.partial:
            base.unlink()  # nothing done yet: no file to resume from
        else:
            if self._replacements:
                merge(base, rows, self._replacements, base)
            self.report.saved_in = base

    def _collect_api_figures(self) -> None:
        self.report.requests = self.api.requests
        self.report.retries = Counter(self.api.retries)
        self.report.pauses, self.report.paused_s = self.api.gate.pauses, self.api.gate.paused_s
        self.report.splits = self.api.splits


def _ready(chunk: _Chunk) -> bool:
    return chunk.future is None or chunk.future.done()
