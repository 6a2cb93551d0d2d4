"""Governance reports behind GET /explain: where the latest report is (a small ReportStore interface with an
S3 and a filesystem implementation) and the compact summary the endpoint answers.

Layout (written by the weekly governance job, or locally by ``python -m governance.analyze``)::

    <REPORTS_URI>/<YYYY-MM-DD>/analysis.json    schema sentiment-api/governance-report/v1
    <REPORTS_URI>/<YYYY-MM-DD>/report.md

``REPORTS_URI`` is ``s3://<bucket>/<prefix>/`` in the cloud and a folder (or ``file://`` URI) locally. The
latest report is the greatest date folder that holds an ``analysis.json`` (the job writes it last). Pass/fail
of each bias check is re-evaluated here from the report's value and the documented threshold
(sentiment_core.contract.bias_check_passed), never read from a stored boolean.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from sentiment_api import aws
from sentiment_api.deadline import Deadline
from sentiment_api.errors import InvalidResponse, NotFound, ReportsUnavailable, ReportUnreadable
from sentiment_api.schemas import compile_schema, validate_output
from sentiment_core.contract import LABELS, REPORT_SCHEMA, bias_check_passed
from sentiment_core.settings import ConfigurationError

ANALYSIS_FILE = "analysis.json"
MARKDOWN_FILE = "report.md"
TOP_TOKENS = 5
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
S3_CONNECT_TIMEOUT_S = 0.3
S3_READ_TIMEOUT_S = 1.0
#: The worst case of one S3 call (one attempt): a call starts only when this much of the deadline is left.
S3_CALL_S = S3_CONNECT_TIMEOUT_S + S3_READ_TIMEOUT_S

SCHEMAS = Path(__file__).with_name("schemas")
_EXPLAIN_RESPONSE = compile_schema(SCHEMAS / "explain_response.json")


@dataclass(frozen=True, slots=True)
class StoredReport:
    key: str  # "<date>/analysis.json", relative to REPORTS_URI: what clients see
    markdown_key: str  # "<date>/report.md", relative to REPORTS_URI
    location: str  # full URI or path of analysis.json: for the log only, never for clients
    analysis: dict[str, Any]


class ReportStore(Protocol):
    def latest(self, deadline: Deadline | None = None) -> StoredReport | None:
        """The newest complete report, or None when there is none; a store with remote calls starts none
        that cannot end before ``deadline``."""
        ...


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportUnreadable(f"{where}: not JSON: {exc}") from None
    except RecursionError:
        raise ReportUnreadable(f"{where}: JSON nested too deeply") from None
    if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA:
        raise ReportUnreadable(f"{where}: not a {REPORT_SCHEMA} document")
    return document


class S3ReportStore:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def create(cls, bucket: str, prefix: str) -> S3ReportStore:
        # One attempt per call (S3_CALL_S at worst): the request's deadline decides whether a call may start,
        # not botocore's retries, so GET /explain answers 503 of its own before Lambda's timeout.
        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
        return cls(aws.client("s3", config), bucket, prefix)

    def _date_folders(self, deadline: Deadline | None) -> list[str]:
        folders: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        _check(deadline)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(self.prefix) :].rstrip("/")
                if _DATE_DIR.match(name):
                    folders.append(name)
            _check(deadline)  # before the next page, if there is one
        return sorted(folders, reverse=True)

    def latest(self, deadline: Deadline | None = None) -> StoredReport | None:
        try:
            return self._latest(deadline)
        except (ClientError, BotoCoreError) as exc:
            # the code and type only: an AWS message may name the bucket or the role
            code = aws.error_code(exc) if isinstance(exc, ClientError) else ""
            raise ReportsUnavailable(retry_after_s=5, detail=f"S3: {type(exc).__name__} {code}".strip()) from None

    def _latest(self, deadline: Deadline | None) -> StoredReport | None:
        for folder in self._date_folders(deadline):
            key = f"{self.prefix}{folder}/{ANALYSIS_FILE}"
            _check(deadline)
            try:
                body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except self._client.exceptions.NoSuchKey:
                continue  # a run in progress or a failed one: fall back to the previous date
            return _stored(folder, f"s3://{self.bucket}/{key}", body)
        return None


def _check(deadline: Deadline | None) -> None:
    """No S3 call that could outlast the request: a 503 with Retry-After now (the list of date folders or a
    fallback to an older date took the time)."""
    if deadline is not None and not deadline.allows(S3_CALL_S):
        raise ReportsUnavailable(retry_after_s=5, detail="S3: no time left in the request's deadline")


class FileReportStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def latest(self, deadline: Deadline | None = None) -> StoredReport | None:  # local files: no deadline
        if not self.root.is_dir():
            return None
        folders = sorted((p for p in self.root.iterdir() if p.is_dir() and _DATE_DIR.match(p.name)), reverse=True)
        for folder in folders:
            document = folder / ANALYSIS_FILE
            if document.is_file():
                return _stored(folder.name, str(document), document.read_bytes())
        return None


def _stored(folder: str, location: str, raw: bytes) -> StoredReport:
    return StoredReport(
        key=f"{folder}/{ANALYSIS_FILE}",
        markdown_key=f"{folder}/{MARKDOWN_FILE}",
        location=location,
        analysis=_parse(raw, location),
    )


def store_from_uri(uri: str, s3_store: Callable[[str, str], ReportStore] = S3ReportStore.create) -> ReportStore:
    """``s3://bucket/prefix`` -> S3ReportStore; ``file:///path`` or a plain path -> FileReportStore."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigurationError(f"REPORTS_URI={uri!r} has no bucket")
        return s3_store(parsed.netloc, parsed.path.lstrip("/"))
    if parsed.scheme == "file":
        return FileReportStore(Path(unquote(parsed.path)))
    if parsed.scheme:
        raise ConfigurationError(f"REPORTS_URI={uri!r}: use s3://bucket/prefix or a local folder")
    return FileReportStore(Path(uri))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checks(bias: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One check per metric with a numeric value and threshold. A value or threshold that is NaN or
    infinite (a computation that broke, e.g. 0/0) is a check that did not pass: its value is null and it
    fails the report, rather than a NaN reaching JSON or a broken check counting as passed."""
    checks = []
    for facet, result in sorted(bias.items()):
        for metric in result.get("metrics", []):
            value, threshold = metric.get("value"), metric.get("threshold")
            if not _number(value) or not _number(threshold):
                continue  # informational metric, or not computable (too few groups)
            finite = math.isfinite(value) and math.isfinite(threshold)
            checks.append(
                {
                    "facet": facet,
                    "metric": str(metric["name"]),
                    "value": float(value) if math.isfinite(value) else None,
                    "threshold": float(threshold) if math.isfinite(threshold) else None,
                    "passed": finite and bias_check_passed(value, threshold),
                }
            )
    return checks


def _top_tokens(per_label: Mapping[str, Any], top_n: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``top_n`` tokens per label with a finite importance (a NaN importance ranks nothing)."""
    tokens: dict[str, list[dict[str, Any]]] = {}
    for label in LABELS:
        entries = [(str(t["token"]), float(t["importance"])) for t in per_label.get(label, [])]
        tokens[label] = [
            {"token": token, "importance": importance} for token, importance in entries if math.isfinite(importance)
        ][:top_n]
    return tokens


def summarize(report: StoredReport, live_endpoint: str | None, top_n: int = TOP_TOKENS) -> dict[str, Any]:
    """The GET /explain body for one stored report (validated against schemas/explain_response.json)."""
    analysis = report.analysis
    try:
        per_label = analysis["token_importance"]["per_label"]
        checks = _checks(analysis["bias"])
        report_endpoint = analysis["model"].get("endpoint")
        body = {
            "model_version": str(analysis["model"]["version"]),
            "report_date": str(analysis["report_date"]),
            "generated_at": str(analysis["generated_at"]),
            "engine": str(analysis["engine"]),
            "report_covers_live_endpoint": None
            if not report_endpoint or not live_endpoint
            else report_endpoint == live_endpoint,
            "top_tokens": _top_tokens(per_label, top_n),
            "bias": {"passed": all(c["passed"] for c in checks), "checks": checks},
            "report": {"key": report.key, "markdown_key": report.markdown_key},
        }
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise ReportUnreadable(f"{report.location}: missing or malformed field: {exc!r}") from None
    try:
        return validate_output(_EXPLAIN_RESPONSE, body, "explain response")
    except InvalidResponse as exc:  # e.g. an engine or a date the schema does not know: the producer's fault
        raise ReportUnreadable(f"{report.location}: {exc.detail}") from None


def explain_summary(store: ReportStore, live_endpoint: str | None, deadline: Deadline | None = None) -> dict[str, Any]:
    """The use case of GET /explain: the latest report's summary, or NotFound (404) when there is none."""
    report = store.latest(deadline)
    if report is None:
        raise NotFound(
            "No governance report exists yet: the weekly governance job writes the first one "
            "(locally: python -m governance.analyze)."
        )
    return summarize(report, live_endpoint)
