"""The CSV side: the input table, the output's columns, what a previous run saved, and the writes that keep
OUT and OUT.partial valid whenever the process stops (see the package docstring for the design)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from .api import MAX_TEXT_CHARS, Outcome
from .errors import ClientError

#: The columns the output adds (or overwrites, when the input already has them: a scored file scored again).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "sentiment",
    "score_negative",
    "score_neutral",
    "score_positive",
    "model_version",
    "error",
)
#: Row errors that are the row's own: the same text fails the same way again, so a rerun keeps them. Every
#: other code (RATE_LIMITED, MODEL_UNAVAILABLE, BAD_GATEWAY, MISSING_RESULT ...) is retried by a rerun.
PERMANENT_ERRORS = frozenset({"EMPTY_TEXT", "VALIDATION_ERROR", "INVALID_ENCODING", "MALFORMED_ROW"})


# ---- the input -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InputTable:
    path: Path
    header: list[str]
    #: data rows (blank lines are not rows, as for csv.DictReader)
    rows: int

    def iter_rows(self) -> Iterator[list[str]]:
        with _open_input(self.path) as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for fields in reader:
                if fields:
                    yield fields


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
            rows = sum(1 for fields in reader if fields)
        except UnicodeDecodeError as error:
            raise ClientError(f"{path} is not UTF-8 text (byte {error.start} of a read block)") from None
        except csv.Error as error:
            raise ClientError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None
    return InputTable(path, header, rows)


def _open_input(path: Path) -> TextIO:
    return path.open(encoding="utf-8-sig", newline="")


# ---- the output's columns ------------------------------------------------------------------------
class Layout:
    """The output's header (the input's columns, then the OUTPUT_COLUMNS it lacks) and its rows."""

    def __init__(self, header: Sequence[str], column: str) -> None:
        if column not in header:
            names = ", ".join(repr(name) for name in header)
            raise ClientError(f"the input has no column {column!r}; its columns: {names} (choose one with --column)")
        if column in OUTPUT_COLUMNS:
            raise ClientError(f"--column {column!r} is one of the columns the output writes: choose the text column")
        self.width = len(header)
        self.text_index = list(header).index(column)
        self.header = list(header) + [name for name in OUTPUT_COLUMNS if name not in header]
        self._at = {name: self.header.index(name) for name in OUTPUT_COLUMNS}

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
    difference (columns, a row's text, more rows than the input) refuses the file rather than mixing two
    inputs' results."""
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
        if layout.text_of(fields) != layout.text_of(source):
            raise _mismatch(path, f"its row {number} has another text than row {number} of {table.path}")
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
