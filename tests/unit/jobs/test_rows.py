"""bulk.rows: a job's file as rows, numbered as the client numbers them, with each row's problem its own."""

from __future__ import annotations

import csv
import io
import json

import pytest
from bulk.rows import MAX_LINE_BYTES, InputRefused, read_rows


def rows(data: bytes, fmt: str = "csv", text: str = "text", id_field: str | None = None, max_rows: int = 100):
    return list(read_rows(io.BytesIO(data), fmt, text, id_field, max_rows))


def test_bom_crlf_and_quoted_newlines_keep_the_row_count() -> None:
    data = '\ufeffid,text\r\n1,"two\r\nlines"\r\n2,plain\r\n'.encode()
    found = rows(data, id_field="id")
    assert [(r.number, r.id, r.text) for r in found] == [(1, "1", "two\r\nlines"), (2, "2", "plain")]


def test_blank_lines_are_rows_in_a_one_column_file_only() -> None:
    assert [r.error for r in rows(b"text\ngood\n\nbad\n")] == [None, "EMPTY_TEXT", None]
    assert [r.number for r in rows(b"text,x\ngood,1\n\nbad,2\n")] == [1, 2]


def test_a_long_field_is_that_rows_error_and_the_csv_limit_is_put_back() -> None:
    limit = csv.field_size_limit()
    found = rows(("text\n" + "x" * 200_000 + "\nfine\n").encode())
    assert [r.error for r in found] == ["VALIDATION_ERROR", None]
    assert csv.field_size_limit() == limit


def test_bytes_that_are_not_utf8_are_that_rows_error() -> None:
    found = rows(b"id,text\n1,caf\xe9\n2,ok\n", id_field="id")
    assert [(r.id, r.error) for r in found] == [("1", "INVALID_ENCODING"), ("2", None)]


def test_an_unterminated_quote_fails_the_file_with_its_line() -> None:
    with pytest.raises(InputRefused) as refused:
        rows(b'text\n"never closed\nmore\n')
    assert refused.value.code == "INVALID_CSV"


def test_past_the_row_limit_the_file_is_refused() -> None:
    with pytest.raises(InputRefused) as refused:
        rows(b"text\n" + b"a\n" * 11, max_rows=10)
    assert refused.value.code == "TOO_MANY_ROWS"


def test_jsonl_odd_lines_are_malformed_rows_and_ids_are_copied() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        json.dumps({"text": "hi", "id": 7}),
        deep,
        json.dumps({"text": 5}),
        "x" * (MAX_LINE_BYTES + 10),
        json.dumps({"text": "bye", "id": {"nested": 1}}),
    ]
    found = rows(("\n".join(lines) + "\n").encode(), "jsonl", id_field="id")
    assert [(r.number, r.id, r.error) for r in found] == [
        (1, "7", None),
        (2, "", "MALFORMED_ROW"),
        (3, "", "MALFORMED_ROW"),
        (4, "", "MALFORMED_ROW"),
        (5, "", None),
    ]


@pytest.mark.parametrize(
    ("data", "fmt", "code"),
    [
        (b"", "jsonl", "EMPTY_INPUT"),
        (b"\x00\x01\x02\n", "jsonl", "INVALID_JSONL"),
        (b'{"body": 1}\n', "jsonl", "MISSING_TEXT_FIELD"),
        (b"a,b\n1,2\n", "csv", "MISSING_TEXT_FIELD"),
        (b"\xff\xfe,text\n1,2\n", "csv", "INVALID_ENCODING"),
    ],
)
def test_file_level_problems_have_their_code(data: bytes, fmt: str, code: str) -> None:
    with pytest.raises(InputRefused) as refused:
        rows(data, fmt)
    assert refused.value.code == code
