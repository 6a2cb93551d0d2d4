"""The CSV side: the input table, the output's columns, what a previous run saved, and the writes that keep
OUT and OUT.partial valid whenever the process stops (see the package docstring for the design)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TextIO

from .api import MAX_TEXT_CHARS, PERMANENT_ERRORS, Outcome
from .errors import ClientError

#: The columns the output adds (or overwrites with --overwrite-columns, when the input has them: a scored file
#: scored again).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "sentiment",
    "score_negative",
    "score_neutral",
    "score_positive",
    "model_version",
    "error",
)


# ---- the input -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InputTable:
    path: Path
    header: list[str]
    #: data rows
    rows: int
    #: blank lines skipped: not rows when the header has several columns (in a one-column file a blank line is
    #: a row with an empty text)
    blank_lines: int = 0

    def iter_rows(self) -> Iterator[list[str]]:
        with _open_input(self.path) as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for fields in reader:
                if fields:
                    yield fields
                elif len(self.header) == 1:  # a blank line (csv's empty record): a row with an empty text
                    yield [""]


def open_input(path: Path) -> InputTable:
    """Reads the header and counts the rows: a file that is missing, not UTF-8 or not CSV fails here, before
    any request is sent."""
    if not path.exists():
        raise ClientError(f"input file not found: {path}")
    if not path.is_file():
        raise ClientError(f"input is not a file: {path}")
    with _open_input(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise ClientError(f"{path} is empty: the first line must name the columns")
            rows = blank_lines = 0
            for fields in reader:
                if fields or len(header) == 1:  # as iter_rows
                    rows += 1
                else:
                    blank_lines += 1
        except UnicodeDecodeError as error:
            raise ClientError(f"{path} is not UTF-8 text (byte {error.start} of a read block)") from None
        except csv.Error as error:
            raise ClientError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None
    return InputTable(path, header, rows, blank_lines)


def _open_input(path: Path) -> TextIO:
    return path.open(encoding="utf-8-sig", newline="")


# ---- the output's columns ------------------------------------------------------------------------
class Layout:
    """The output's header (the input's columns, then the OUTPUT_COLUMNS it lacks) and its rows.

    An input column named like an output column is refused, unless `overwrite` (--overwrite-columns: a scored
    file scored again), when the output's value replaces the input's in that column."""

    def __init__(self, header: Sequence[str], column: str, *, overwrite: bool = False) -> None:
        if column not in header:
            names = ", ".join(repr(name) for name in header)
            raise ClientError(f"the input has no column {column!r}; its columns: {names} (choose one with --column)")
        if column in OUTPUT_COLUMNS:
            raise ClientError(f"--column {column!r} is one of the columns the output writes: choose the text column")
        taken = [name for name in OUTPUT_COLUMNS if name in header]
        if taken and not overwrite:
            names = ", ".join(repr(name) for name in taken)
            raise ClientError(
                f"the input already has the output's column{'s' if len(taken) > 1 else ''} {names}: rename "
                "them, or pass --overwrite-columns to write the output's values in them (a scored file scored again)"
            )
        self.width = len(header)
        self.text_index = list(header).index(column)
        self.header = list(header) + [name for name in OUTPUT_COLUMNS if name not in header]
        self._at = {name: self.header.index(name) for name in OUTPUT_COLUMNS}
        #: the input's columns that the output keeps as they are (not overwritten)
        self._kept = [index for index, name in enumerate(header) if name not in OUTPUT_COLUMNS]

    def text_of(self, fields: Sequence[str]) -> str:
        return fields[self.text_index] if self.text_index < len(fields) else ""

    def local_error(self, fields: Sequence[str]) -> str:
        """The error a row gets without a request: the API's own codes for what it would refuse."""
        if len(fields) != self.width:
            return "MALFORMED_ROW"
        text = self.text_of(fields)
        if not text.strip():  # as the API's check: str.isspace whitespace
            return "EMPTY_TEXT"
        if len(text) > MAX_TEXT_CHARS:
            return "VALIDATION_ERROR"
        return ""

    def row(self, fields: Sequence[str], outcome: Outcome) -> list[str]:
        """Every input field (a short row padded; fields beyond the header have no column) plus the outcome."""
        row = [*fields[: self.width], *[""] * (len(self.header) - min(len(fields), self.width))]
        scores = [repr(score) for score in outcome.scores] if outcome.scores else ["", "", ""]
        values = (outcome.sentiment, *scores, outcome.model_version, outcome.error)
        for name, value in zip(OUTPUT_COLUMNS, values, strict=True):
            row[self._at[name]] = value
        return row

    def status_of(self, row: Sequence[str]) -> tuple[str, str]:
        """(sentiment, error) of an output row."""
        return row[self._at["sentiment"]], row[self._at["error"]]

    def difference(self, row: Sequence[str], fields: Sequence[str]) -> str:
        """How output `row` was not written for input `fields`: the first input column whose value differs
        (fields beyond the header are not written, so not compared), else "" (written for them)."""
        for index in self._kept:
            if row[index] != (fields[index] if index < len(fields) else ""):
                return f"column {self.header[index]!r}"
        if (self.status_of(row)[1] == "MALFORMED_ROW") != (len(fields) != self.width):
            return "the number of fields"
        return ""


def is_done(sentiment: str, error: str) -> bool:
    """A row a rerun keeps: scored, or failed for a reason of its own."""
    return (bool(sentiment) and not error) or error in PERMANENT_ERRORS


# ---- what a previous run saved -------------------------------------------------------------------
@dataclass(slots=True)
class Saved:
    """The rows of OUT or OUT.partial that match the input, position by position."""

    path: Path | None = None
    #: complete data rows; the file's first `end` bytes hold the header and them
    rows: int = 0
    end: int = 0
    #: positions (below `rows`) that a rerun sends again
    redo: set[int] = field(default_factory=set)
    labels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.rows - len(self.redo)


def read_saved(path: Path, layout: Layout, table: InputTable) -> Saved:
    """Checks a previous output against the input and says which of its rows a rerun keeps.

    A last row cut short (no line end, too few fields: the write a crash interrupted) is not a row; any other
    difference (columns, any input field of a row, more rows than the input) refuses the file rather than
    mixing two inputs' results."""
    saved = Saved(path)
    inputs = table.iter_rows()
    torn = False
    for number, (fields, end, complete) in enumerate(_records(path)):
        if torn:
            raise _mismatch(path, f"its line {number} follows an incomplete row")
        if number == 0:  # written whole (atomic_write) with the file
            if fields != layout.header or not complete:
                raise _mismatch(path, f"its columns are {fields}, this input's output has {layout.header}")
            saved.end = end
            continue
        if not complete or len(fields) != len(layout.header):
            torn = True
            continue
        source = next(inputs, None)
        if source is None:
            raise _mismatch(path, f"it has more rows than {table.path}")
        if difference := layout.difference(fields, source):
            raise _mismatch(path, f"its row {number} differs from row {number} of {table.path} in {difference}")
        sentiment, error = layout.status_of(fields)
        if is_done(sentiment, error):
            if error:
                saved.errors[error] += 1
            else:
                saved.labels[sentiment] += 1
        else:
            saved.redo.add(saved.rows)
        saved.rows += 1
        saved.end = end
    return saved


def _mismatch(path: Path, why: str) -> ClientError:
    return ClientError(
        f"{path} was not written for this input ({why}): remove it, choose another OUT, or pass --restart"
    )


def _records(path: Path) -> Generator[tuple[list[str], int, bool]]:
    """(fields, byte offset of the record's end, whether it ended with a line end) per CSV record."""
    offset = 0
    ended = True

    def lines(handle: io.BufferedReader) -> Iterator[str]:
        nonlocal offset, ended
        for raw in handle:
            offset += len(raw)
            ended = raw.endswith(b"\n")
            yield raw.decode("utf-8", errors="replace")  # a cut inside a character: a torn (or foreign) row

    with path.open("rb") as handle:
        for fields in csv.reader(lines(handle)):
            if fields:
                yield fields, offset, ended


def count_rows(path: Path) -> int:
    """The data rows of an output file (complete records after the header)."""
    return max(0, sum(1 for _, _, complete in _records(path) if complete) - 1)


# ---- one run per OUT -----------------------------------------------------------------------------
#: fcntl.flock where there is one (POSIX): the kernel frees the lock when its process ends, however it ends,
#: so a lock file left behind by a killed run is no obstacle. Elsewhere the lock file's existence is the lock.
USE_FLOCK = sys.platform != "win32"


class OutputLock:
    """OUT.lock, held from before a run reads what was saved until its last write: two runs on the same OUT
    would otherwise both append to OUT.partial and both rename it. The file holds the holder's process id; it
    is removed when the run ends."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path, self.out = path, out
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        if USE_FLOCK:
            self._fd = self._flock()
        else:
            self._create()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # still locked (flock): a run that opened it meanwhile sees it gone and retries
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _flock(self) -> int:
        import fcntl  # POSIX only

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy(f"{self.path} is locked: wait for that run to end, or choose another OUT") from None
            except OSError as error:  # a file system without locks
                os.close(fd)
                raise ClientError(
                    f"cannot lock {self.path} ({error.strerror}): choose an OUT on another disk"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return fd
            os.close(fd)  # the run that held it removed it as it ended: lock the one in its place

    def _create(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise self._busy(
                f"{self.path} exists; if no other run is active (one was killed), remove {self.path} and rerun"
            ) from None
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def _busy(self, why: str) -> ClientError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (process {int(self.path.read_text(encoding='ascii'))})"
        return ClientError(f"another run is writing {self.out}{holder}: {why}")


# ---- writing -------------------------------------------------------------------------------------
class PartialWriter:
    """Appends rows to OUT.partial, one flushed write per completed stretch of rows."""

    def __init__(self, path: Path, header: Sequence[str], *, keep_bytes: int = 0) -> None:
        """keep_bytes: what a previous run saved (header included); 0 starts the file afresh."""
        self.path = path
        if keep_bytes:
            with path.open("r+b") as handle:
                handle.truncate(keep_bytes)  # drops a row a crash left half-written
        else:
            with atomic_write(path) as handle:
                csv.writer(handle).writerow(header)
        self._handle = path.open("a", encoding="utf-8", newline="")
        self.rows_written = 0

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        self._handle.write(buffer.getvalue())
        self._handle.flush()
        self.rows_written += len(rows)

    def close(self) -> None:
        self._handle.close()


def copy_prefix(source: Path, target: Path, length: int) -> None:
    """target = the first `length` bytes of source, written atomically."""
    with source.open("rb") as handle, atomic_write(target, binary=True) as out:
        remaining = length
        while remaining and (chunk := handle.read(min(remaining, 1 << 20))):
            out.write(chunk)
            remaining -= len(chunk)


def merge(base: Path, rows: int, replacements: Mapping[int, Sequence[str]], target: Path) -> None:
    """target = base's header and first `rows` rows, with the replaced ones replaced (atomically)."""
    with atomic_write(target) as out, contextlib.closing(_records(base)) as records:
        writer = csv.writer(out)
        header, _, _ = next(records)
        writer.writerow(header)
        for position in range(rows):
            fields, _, _ = next(records)
            writer.writerow(replacements.get(position, fields))


@contextlib.contextmanager
def atomic_write(target: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A handle on a temporary file next to target that replaces target only once it is complete and on
    disk; an error leaves target as it was."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    handle = tmp.open("wb") if binary else tmp.open("w", encoding="utf-8", newline="")
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(target.parent)


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/file system syncs a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
