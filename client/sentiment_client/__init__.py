"""A client of the sentiment API that scores a CSV file: ``python -m sentiment_client score IN OUT``
(``make score IN=... OUT=...``). Standard library only, so it runs from any Python 3.12 without the
project's virtualenv; ``local_stack`` is imported only to mint a development token for the local stack.

Modules: ``cli`` (arguments, token, one-line errors), ``score`` (the run), ``api`` (one batch: limits,
retries, rate limits), ``transport`` (the HTTP exchange, an interface tests fake), ``files`` (CSV in and
out, resume), ``progress`` (progress bar or lines, summary).

Rows
    Every input row becomes one output row, in input order: all its columns, then ``sentiment``,
    ``score_negative``, ``score_neutral``, ``score_positive``, ``model_version`` and ``error`` (an error
    code, empty for a scored row). An input that already has a column of those names is refused, unless
    ``--overwrite-columns`` (a scored file scored again): then the output's values replace the input's in
    those columns. The input is read as UTF-8 with an optional BOM. A blank line is a row with an empty
    text when the header has one column (so it gets EMPTY_TEXT); in a file with several columns it is not
    a row (it has no fields to keep), and the summary counts the blank lines skipped. Some rows get their
    error without a request, with the API's own codes: a row with another number of fields than the
    header ``MALFORMED_ROW`` (fields beyond the header have no column and are not written), an empty or
    whitespace-only text ``EMPTY_TEXT``, a text over 1,024 characters ``VALIDATION_ERROR`` (such a text
    could not even fit a 32 KiB body). The API's item errors give their codes. A 200 answer that does not
    give every index of the batch exactly once (across results and errors), or gives an unknown label, is
    retried, then gives its rows ``BAD_RESPONSE``. A batch refused as a whole with 400 or 413 (or any code
    that is a text's own, such as VALIDATION_ERROR) is split in halves and sent again, down to single
    texts, so only a text refused on its own keeps that code; another refusal (415 ...) gives its code to
    each of the batch's rows, and so does a batch whose retries ran out (RATE_LIMITED, MODEL_UNAVAILABLE,
    BAD_GATEWAY ...). Those codes are the API's or the client's fault, not the rows': a rerun retries them.

Batches
    Up to 25 texts (``--batch-size``), cut earlier when the body (compact JSON, UTF-8, not ASCII-escaped)
    would pass 32,768 bytes, so 25 texts of 1,024 four-byte characters go as four requests. ``--concurrency``
    threads (4) send them; a window of twice that many batches is in flight or waiting, so memory stays
    flat whatever the file's size. Retries and rate limits: see ``api``.

Resume: OUT.lock, OUT.partial, then OUT
    One run at a time per OUT: a run locks ``OUT.lock`` (fcntl.flock, which the kernel frees whenever the
    process ends; where there is no flock, the file's exclusive creation is the lock and a killed run's
    file must be removed by hand) before it reads what was saved, and holds it until its last write; a
    second run refuses with a one-line error.
    Rows are written in input order only: a batch's rows are appended to ``OUT.partial`` (one flushed
    write) once every row before them is written, so OUT.partial always holds the output of a prefix of the
    input. When every row is done, OUT.partial is renamed onto OUT. OUT is only ever replaced whole (a new
    file written next to it, synced, renamed onto it) and always with every row: whatever stops the process,
    OUT is complete or as it was, and OUT.partial is a prefix. Before that last replace, the file's rows
    are counted: any other number than the input's rows refuses the replace (OUT stays as it was).
    A run first reads OUT.partial if it exists, else OUT, and checks it against the input: the same
    columns, and each saved row's input fields (every column but the overwritten output columns) equal to
    those of the input row at the same position (and MALFORMED_ROW exactly where the input row has another
    number of fields). A file written for another input is refused with a message, never mixed
    (``--restart`` ignores it). A last row cut short by a crash (no line end, or too few fields) is not a
    row: it is truncated away and sent again.
    Saved rows with a sentiment, or with a permanent error (EMPTY_TEXT, VALIDATION_ERROR, INVALID_ENCODING,
    MALFORMED_ROW), are kept as they are; every other saved row (a passing failure: 5xx, rate limit, no
    answer, any code the client does not know as permanent) is sent again, and so is every row after them.
    Rows after the saved ones are appended to OUT.partial (which starts as a copy of OUT's rows when they
    come from OUT). Saved rows sent again cannot be appended: their new results are kept in memory and
    merged when the run ends, into OUT when it is complete, else into the file they came from (Ctrl-C, a
    fatal API error), both by the same write-and-rename. Only a hard kill (SIGKILL, power loss) loses those
    redone rows, and the next run sends them again.

Stopping
    Ctrl-C cuts every wait short, writes what is finished and exits 130; a refused connection (nothing
    listens at the URL), a refused token (401/403), a URL that is not the API (404), an API that stopped
    answering or failed three batches in a row after their retries stop the run with a one-line error
    (exit 2). Both leave a resumable OUT.partial. Exit 1: every row handled, but some failed for a passing
    reason and a rerun would retry them; 0: every row done.

Progress (stderr)
    On a terminal one line redrawn in place with a bar, rows, texts/s, ETA and any rate-limit pause; else a
    line every 10 % or 5 s. At the end a summary: rows (this run, kept), label mix, errors by code, texts/s,
    elapsed, requests, retries and rate-limit pauses.
"""
