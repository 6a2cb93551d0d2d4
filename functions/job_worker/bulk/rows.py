"""A job's input file, read as a stream of rows: CSV (a header row names the columns) or JSON Lines (one
object per line). Every row of the file becomes one Row, in order, numbered from 1: either a text to score
or the error that keeps it from being scored. A row's problem never fails the job; a file-level problem
(not UTF-8 in its header, not CSV, no text field, too many rows) raises InputRefused, which fails the job
with its code.

Row errors (the codes POST /predict/batch gives the same texts):
- ``MALFORMED_ROW``: a CSV row with another number of fields than the header; a JSON line that is not an
  object, or whose text field is missing or not a string; a line over MAX_LINE_BYTES.
- ``EMPTY_TEXT``: empty or whitespace only (str.isspace, as the API).
- ``VALIDATION_ERROR``: over MAX_TEXT_CHARS characters.
- ``INVALID_ENCODING``: bytes that are not UTF-8 in this row.

Blank lines: in JSON Lines they are not rows; in CSV they are rows with an empty text when the header has one
column (the client's rule, sentiment_client.files), else skipped. Texts are never logged."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from sentiment_core.contract import MAX_TEXT_CHARS

#: A CSV field or a JSON line longer than this is not a text to score (1,024 characters are at most 4 KiB
#: of UTF-8; the rest of such a row is data the result does not keep). The CSV reader refuses a field over
#: its limit (131,072 characters by default), which would fail the file, so while a file is read the limit
#: is raised to this (and put back after: it is the csv module's one global setting).
MAX_FIELD_BYTES = 1024 * 1024
MAX_LINE_BYTES = MAX_FIELD_BYTES
#: An id is copied to the result as given, up to this many characters.
MAX_ID_CHARS = 256


class InputRefused(Exception):
    """The file as a whole cannot be read as the job's format: the job fails with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based, the row's position among the file's rows
    id: str  # the id field's value ("" without one)
    text: str | None  # None: not scored, see error
    error: str | None = None
    message: str | None = None


def row_error(text: str) -> tuple[str, str] | None:
    if not text.strip():
        return "EMPTY_TEXT", "text is empty or only whitespace: there is nothing to classify."
    if len(text) > MAX_TEXT_CHARS:
        return "VALIDATION_ERROR", f"text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}."
    if _has_surrogates(text):
        return "INVALID_ENCODING", "text holds bytes that are not UTF-8."
    return None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _row(number: int, identifier: str, text: str) -> Row:
    problem = row_error(text)
    if problem is not None:
        return Row(number, identifier, None, *problem)
    return Row(number, identifier, text)


def _malformed(number: int, identifier: str, message: str) -> Row:
    return Row(number, identifier, None, "MALFORMED_ROW", message)


def _identifier(value: object) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    # a CSV id with bytes that are not UTF-8 (surrogate escapes) is kept with those characters replaced
    return text[:MAX_ID_CHARS].encode("utf-8", "replace").decode("utf-8")


def read_rows(
    stream: IO[bytes], input_format: str, text_field: str, id_field: str | None, max_rows: int
) -> Iterator[Row]:
    """The rows of ``stream``, in order; raises InputRefused for the file (also once past ``max_rows``)."""
    rows = (
        _csv_rows(stream, text_field, id_field) if input_format == "csv" else _jsonl_rows(stream, text_field, id_field)
    )
    for row in rows:
        if row.number > max_rows:
            raise InputRefused("TOO_MANY_ROWS", f"the file has more than {max_rows:,} rows (the limit of one job).")
        yield row


def _csv_rows(stream: IO[bytes], text_field: str, id_field: str | None) -> Iterator[Row]:
    # surrogateescape: a row with bytes that are not UTF-8 becomes that row's INVALID_ENCODING, not the file's
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    previous_limit = csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        header = next(reader, None)
        if not header:
            raise InputRefused("EMPTY_INPUT", "the file is empty: its first line must name the columns.")
        if any(_has_surrogates(name) for name in header):
            raise InputRefused("INVALID_ENCODING", "the file's header is not UTF-8 text.")
        if text_field not in header:
            names = ", ".join(repr(name[:64]) for name in header[:20])
            raise InputRefused("MISSING_TEXT_FIELD", f"the header has no column {text_field!r}; its columns: {names}.")
        if id_field is not None and id_field not in header:
            raise InputRefused("MISSING_ID_FIELD", f"the header has no column {id_field!r}.")
        text_at = header.index(text_field)
        id_at = header.index(id_field) if id_field is not None else None
        width, number = len(header), 0
        for fields in reader:
            if not fields:
                if width != 1:
                    continue
                fields = [""]
            number += 1
            identifier = _identifier(fields[id_at]) if id_at is not None and id_at < len(fields) else ""
            if len(fields) != width:
                yield _malformed(number, identifier, f"the row has {len(fields)} fields; the header has {width}.")
                continue
            yield _row(number, identifier, fields[text_at])
    except csv.Error as exc:
        raise InputRefused("INVALID_CSV", f"the file is not valid CSV at line {reader.line_num}: {exc}.") from None
    finally:
        csv.field_size_limit(previous_limit)
    if number == 0:
        raise InputRefused("EMPTY_INPUT", "the file has a header but no rows.")


def _jsonl_rows(stream: IO[bytes], text_field: str, id_field: str | None) -> Iterator[Row]:
    number = objects = with_text = 0
    for raw in _lines(stream):
        if not raw.strip():
            continue
        number += 1
        if raw is _TOO_LONG:
            yield _malformed(number, "", f"the line is longer than {MAX_LINE_BYTES:,} bytes.")
            continue
        try:
            document = json.loads(raw)
        except UnicodeDecodeError:
            yield Row(number, "", None, "INVALID_ENCODING", "the line is not UTF-8 text.")
            continue
        except (ValueError, RecursionError):  # JSONDecodeError, a number over the digit cap, deep nesting
            yield _malformed(number, "", "the line is not JSON.")
            continue
        if not isinstance(document, dict):
            yield _malformed(number, "", "the line is not a JSON object.")
            continue
        objects += 1
        identifier = _identifier(document.get(id_field)) if id_field is not None else ""
        text = document.get(text_field)
        if not isinstance(text, str):
            yield _malformed(number, identifier, f"the object has no string field {text_field!r}.")
            continue
        with_text += 1
        yield _row(number, identifier, text)
    if number == 0:
        raise InputRefused("EMPTY_INPUT", "the file has no lines.")
    if objects == 0:
        raise InputRefused("INVALID_JSONL", "no line of the file is a JSON object: it is not JSON Lines.")
    if with_text == 0:
        raise InputRefused("MISSING_TEXT_FIELD", f"no object in the file has a string field {text_field!r}.")


_TOO_LONG = b"\x00too long\x00"


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The file's lines (LF or CRLF), each at most MAX_LINE_BYTES; a longer one is read to its end and given as
    the _TOO_LONG marker, so memory stays bounded whatever the file holds."""
    first = True
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if first and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        first = False
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield _TOO_LONG
            continue
        yield line
