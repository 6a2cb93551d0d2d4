"""``python -m sentiment_client score IN OUT``: arguments, the token, one-line errors, exit statuses."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from .api import (
    MAX_BATCH_TEXTS,
    ApiUnreachable,
    AuthRejected,
    BatchApi,
    Clock,
    FatalApiError,
    MintedToken,
    StaticToken,
    TokenSource,
)
from .errors import ClientError
from .job import JobClient, JobTransport
from .progress import Progress
from .score import Scorer
from .transport import Transport, UrllibTransport, is_local

DEFAULT_URL = "http://127.0.0.1:3000"
TOKEN_ENV = "SENTIMENT_API_TOKEN"  # noqa: S105 - the variable's name, not a token
#: The `sub` of the development token minted for the local stack (its own rate-limit bucket).
DEV_SUBJECT = "score-client"

EXIT_OK, EXIT_RETRY, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = f"""\
The output has every input column plus sentiment, score_negative, score_neutral, score_positive,
model_version and error, one row per input row, in input order (an input that already has one of these
columns needs --overwrite-columns). A rerun with the same OUT resumes: rows already scored (or refused for
good: EMPTY_TEXT, VALIDATION_ERROR, MALFORMED_ROW) are kept, the others sent. One run at a time per OUT
(OUT.lock).

token: --token, else ${TOKEN_ENV}; against the local stack (a loopback URL) a development token is minted.
exit status: 0 every row done; 1 done, but some rows failed for a passing reason (rerun to retry them);
2 an error (message on stderr); 130 interrupted (rerun to resume)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sentiment_client", description="Sentiment API client.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score a CSV file through POST /predict/batch",
        description="Scores every row of a CSV file through the sentiment API's POST /predict/batch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("input", type=Path, metavar="IN", help="CSV file with a header row (UTF-8)")
    score.add_argument("output", type=Path, metavar="OUT", help="CSV file to write (OUT.partial while running)")
    score.add_argument("--column", default="text", help="the column holding the text (default: text)")
    score.add_argument(
        "--mode",
        choices=("batch", "job"),
        default="batch",
        help="batch: POST /predict/batch from this machine (resumable); job: one bulk job of the API (POST /jobs: "
        "upload, progress, download; for large files)",
    )
    score.add_argument("--url", default=None, help=f"the API's base URL (default: {DEFAULT_URL}, the local stack)")
    score.add_argument("--token", default=None, help=f"bearer token (default: ${TOKEN_ENV})")
    score.add_argument("--concurrency", type=int, default=4, help="batches in flight (default: 4)")
    score.add_argument(
        "--batch-size", type=int, default=MAX_BATCH_TEXTS, help=f"texts per request, at most {MAX_BATCH_TEXTS}"
    )
    score.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for one answer (default: 35)")
    score.add_argument("--restart", action="store_true", help="ignore what a previous run saved in OUT(.partial)")
    score.add_argument(
        "--overwrite-columns",
        action="store_true",
        help="let the output's columns replace input columns of the same names (a scored file scored again)",
    )
    return parser


def resolve_token(url: str, token: str | None, mint: Callable[[], str] | None = None) -> TokenSource:
    """The given token; else, for the local stack only, a development token (local_stack is imported only
    then, so the client runs without it against a deployed API)."""
    if token:
        return StaticToken(token)
    if not is_local(url):
        raise ClientError(f"no token for {url}: pass --token or set {TOKEN_ENV}")
    if mint is None:
        try:
            from local_stack.idp import load_or_create
        except ImportError:
            raise ClientError(
                f"no token: pass --token or set {TOKEN_ENV} (a development token needs the repository's local_stack "
                "on PYTHONPATH, as `make score` sets it)"
            ) from None
        provider = load_or_create()

        def mint() -> str:
            return provider.mint(sub=DEV_SUBJECT)

    return MintedToken(mint)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ClientError(f"--url must be an http(s) URL such as {DEFAULT_URL}, not {url!r}")
    return url.rstrip("/")


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: Transport | None = None,
    clock: Clock | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    mint: Callable[[], str] | None = None,
) -> int:
    """The command. The keyword arguments let tests run it against a fake API, on simulated time."""
    args = build_parser().parse_args(argv)
    err = stderr or sys.stderr
    env = os.environ if environ is None else environ
    clock = clock or Clock()
    scorer: Scorer | None = None
    try:
        url = check_url(args.url or DEFAULT_URL)
        token = resolve_token(url, args.token or env.get(TOKEN_ENV), mint)
        if args.mode == "job":
            job_transport = transport or UrllibTransport()
            if not isinstance(job_transport, JobTransport):
                raise ClientError("this transport cannot send a job's GET and PUT requests")
            job_report = JobClient(url, token, job_transport, clock, err, timeout_s=args.timeout).run(
                args.input, args.output, args.column, args.overwrite_columns
            )
            _print(err, *job_report.summary())
            return EXIT_OK
        api = BatchApi(url, token, transport or UrllibTransport(), clock, timeout_s=args.timeout)
        progress = Progress(err, clock, paused_s=api.gate.remaining_s)
        scorer = Scorer(
            args.input,
            args.output,
            api,
            clock,
            progress,
            column=args.column,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            restart=args.restart,
            overwrite_columns=args.overwrite_columns,
        )
        report = scorer.run()
    except KeyboardInterrupt:
        _print(err, *(scorer.report.summary() if scorer and scorer.started else []), "interrupted")
        return EXIT_INTERRUPTED
    except ClientError as error:
        _print(err, f"error: {_explain(error, bool(args.token or env.get(TOKEN_ENV)), scorer)}")
        return EXIT_ERROR
    except OSError as error:  # a file that cannot be read or written (permissions, a full disk)
        _print(err, f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "))
        return EXIT_ERROR
    _print(err, *report.summary())
    return EXIT_RETRY if report.transient else EXIT_OK


def _explain(error: ClientError, token_given: bool, scorer: Scorer | None) -> str:
    """The one line: the error, what to do, and where the rows done so far are."""
    message = str(error)
    if isinstance(error, ApiUnreachable):
        if error.refused and is_local(error.url):
            message += ": is the local stack running? Start it with `make run` (or pass --url)"
        else:
            message += ": check --url and the network"
    elif isinstance(error, AuthRejected):
        if token_given:
            message += f": pass a valid token with --token or ${TOKEN_ENV}"
        else:
            message += ": the development token was refused (is --url the local stack of this repository?)"
    saved_in = scorer.report.saved_in if scorer and scorer.report.handled else None
    if isinstance(error, FatalApiError) and saved_in is not None and saved_in.exists():
        message += f"; the rows done so far are in {saved_in}: rerun the same command to resume"
    return message


def _print(stream: TextIO, *lines: str) -> None:
    for line in lines:
        stream.write(line + "\n")
    stream.flush()
