"""What a job writes: its chunks (rows to score, internal), the scored chunks (internal), and the result
file the owner downloads, in the input's format, one record per input row, in input order.

Result, CSV: ``row,[id,]sentiment,score_negative,score_neutral,score_positive,model_version,error,error_message``
(``id`` only when the job names an id field); a row that was not scored has an empty sentiment and scores
and its code in ``error``. Result, JSON Lines: ``{"row": 1, ["id": "...",] "sentiment": "positive",
"scores": {"negative": 0.01, "neutral": 0.02, "positive": 0.97}, "model_version": "...", "error": null}``,
with ``"error": {"code": "...", "message": "..."}`` and null sentiment and scores for a row not scored.
The texts are not copied into the result: the row number (and id) joins it to the input."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sentiment_core.contract import LABELS
from sentiment_jobs.store import COUNT_NAMES

from .rows import Row

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Scored:
    number: int
    id: str
    sentiment: str | None = None
    scores: Sequence[float] | None = None  # in LABELS order
    model_version: str | None = None
    error: str | None = None
    message: str | None = None


# ---- chunks and scored chunks (internal: one JSON array per line) ---------------------------------------------
def encode_chunk(rows: Iterable[Row]) -> bytes:
    # ASCII JSON: a text's own U+2028, U+0085 ... are escaped, so a line is a record whatever the text holds
    lines = [json.dumps([row.number, row.id, row.text, row.error, row.message]) for row in rows]
    return ("\n".join(lines) + "\n").encode("ascii")


def _records(body: bytes) -> list[list[object]]:
    return [json.loads(line) for line in body.split(b"\n") if line]


def decode_chunk(body: bytes) -> list[Row]:
    return [Row(*record) for record in _records(body)]  # type: ignore[arg-type]


def encode_scored(rows: Iterable[Scored]) -> bytes:
    lines = [
        json.dumps(
            [r.number, r.id, r.sentiment, list(r.scores) if r.scores else None, r.model_version, r.error, r.message]
        )
        for r in rows
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def decode_scored(body: bytes) -> list[Scored]:
    return [Scored(*record) for record in _records(body)]  # type: ignore[arg-type]


def count(rows: Iterable[Scored]) -> dict[str, int]:
    counts = dict.fromkeys(COUNT_NAMES, 0)
    for row in rows:
        counts["errors" if row.error else str(row.sentiment)] += 1
    return counts


# ---- the result file ------------------------------------------------------------------------------------------
def csv_header(with_id: bool) -> list[str]:
    scores = [f"score_{label}" for label in LABELS]
    return ["row", *(["id"] if with_id else []), "sentiment", *scores, "model_version", "error", "error_message"]


def result_lines(input_format: str, with_id: bool, chunks: Iterable[Sequence[Scored]]) -> Iterator[bytes]:
    """The result file, a piece per chunk (the CSV header first)."""
    if input_format == "csv":
        yield _csv([csv_header(with_id)])
        for rows in chunks:
            yield _csv(_csv_row(row, with_id) for row in rows)
    else:
        for rows in chunks:
            yield "".join(_json_line(row, with_id) for row in rows).encode("utf-8")


def _csv(rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _csv_row(row: Scored, with_id: bool) -> list[str]:
    scores = [repr(float(score)) for score in row.scores] if row.scores else ["", "", ""]
    return [
        str(row.number),
        *([row.id] if with_id else []),
        row.sentiment or "",
        *scores,
        row.model_version or "",
        row.error or "",
        row.message or "",
    ]


def _json_line(row: Scored, with_id: bool) -> str:
    record: dict[str, object] = {"row": row.number}
    if with_id:
        record["id"] = row.id
    record |= {
        "sentiment": row.sentiment,
        "scores": dict(zip(LABELS, row.scores, strict=True)) if row.scores else None,
        "model_version": row.model_version,
        "error": {"code": row.error, "message": row.message} if row.error else None,
    }
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
