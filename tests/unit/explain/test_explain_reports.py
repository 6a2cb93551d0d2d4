"""explanation.reports: the report stores (filesystem, S3 under moto) and the /explain summary.

Reports are produced here by the real producer (governance.analyze on a tiny data set), so the contract
between the weekly job and the endpoint is tested, not a hand-written imitation of it."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from explanation.config import ExplainSettings
from explanation.reports import (
    SCHEMAS,
    FileReportStore,
    S3ReportStore,
    StoredReport,
    explain_summary,
    store_from_uri,
    summarize,
)
from moto import mock_aws
from sentiment_api.errors import NotFound, ReportsUnavailable, ReportUnreadable
from sentiment_core.settings import ConfigurationError

from governance.analyze import analyze, build_report
from governance.importance import Prediction, tokens
from tests.helpers import function_env

BUCKET = "sentiment-reports-test"
ROWS = [
    {"text": "good good day", "label": "positive", "domain": "a"},
    {"text": "a good one", "label": "positive", "domain": "b"},
    {"text": "bad luck today", "label": "negative", "domain": "a"},
    {"text": "so bad", "label": "negative", "domain": "b"},
    {"text": "the train leaves at noon", "label": "neutral", "domain": "a"},
    {"text": "good grief it is bad", "label": "neutral", "domain": "b"},
]


def keyword_model(texts: Sequence[str]) -> list[Prediction]:
    out = []
    for text in texts:
        words = {t for t, _, _ in tokens(text)}
        label = "positive" if "good" in words else "negative" if "bad" in words else "neutral"
        out.append(Prediction(label, {n: 0.8 if n == label else 0.1 for n in ("negative", "neutral", "positive")}))
    return out


def make_report(date: str, version: str = "model-1", endpoint: str | None = "live-endpoint") -> dict[str, Any]:
    core = analyze(ROWS, keyword_model, min_group_size=1)
    return build_report(
        core,
        engine="script",
        report_date=date,
        model_version=version,
        endpoint=endpoint,
        source="eval.csv",
        sha256="a" * 64,
        generated_at=f"{date}T03:00:00Z",
    )


def put_local(root: Path, date: str, report: dict[str, Any]) -> None:
    (root / date).mkdir(parents=True)
    (root / date / "analysis.json").write_text(json.dumps(report))
    (root / date / "report.md").write_text("# report\n")


# ---- configuration ------------------------------------------------------------------------------------
def test_reports_uri_is_required() -> None:
    base = function_env("explain")
    with pytest.raises(ConfigurationError, match="REPORTS_URI"):
        ExplainSettings.from_env({k: v for k, v in base.items() if k != "REPORTS_URI"})
    assert ExplainSettings.from_env({**base, "REPORTS_URI": " s3://b/p/ "}).reports_uri == "s3://b/p/"
    with pytest.raises(ConfigurationError, match="REPORTS_URI"):
        ExplainSettings.from_env({**base, "REPORTS_URI": "   "})


def test_store_from_uri() -> None:
    seen: list[tuple[str, str]] = []

    def fake_s3(bucket: str, prefix: str) -> FileReportStore:
        seen.append((bucket, prefix))
        return FileReportStore(Path("/unused"))

    store_from_uri("s3://reports-bucket/governance/", fake_s3)
    assert seen == [("reports-bucket", "governance/")]
    assert isinstance(store_from_uri("/tmp/reports"), FileReportStore)
    assert store_from_uri("file:///tmp/my%20reports").root == Path("/tmp/my reports")  # type: ignore[attr-defined]
    for bad in ("s3:///no-bucket", "https://example.com/reports"):
        with pytest.raises(ConfigurationError):
            store_from_uri(bad, fake_s3)


# ---- filesystem store ---------------------------------------------------------------------------------
def test_file_store_picks_the_newest_complete_report(tmp_path: Path) -> None:
    assert FileReportStore(tmp_path / "absent").latest() is None
    assert FileReportStore(tmp_path).latest() is None
    put_local(tmp_path, "2026-01-05", make_report("2026-01-05", "old"))
    put_local(tmp_path, "2026-01-12", make_report("2026-01-12", "new"))
    (tmp_path / "2026-01-19").mkdir()  # a run in progress: no analysis.json yet
    (tmp_path / "not-a-date").mkdir()
    latest = FileReportStore(tmp_path).latest()
    assert latest is not None
    assert latest.analysis["model"]["version"] == "new"
    assert latest.key == "2026-01-12/analysis.json"
    assert latest.markdown_key == "2026-01-12/report.md"
    assert latest.location == str(tmp_path / "2026-01-12" / "analysis.json")  # for the log only


def test_file_store_rejects_a_foreign_document(tmp_path: Path) -> None:
    (tmp_path / "2026-01-05").mkdir()
    (tmp_path / "2026-01-05" / "analysis.json").write_text('{"explanations": {}}')
    with pytest.raises(ReportUnreadable):
        FileReportStore(tmp_path).latest()


# ---- S3 store -----------------------------------------------------------------------------------------
@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_s3_store_lists_date_folders_and_skips_incomplete_runs(s3: Any) -> None:
    store = S3ReportStore(s3, BUCKET, "governance")
    assert store.latest() is None
    s3.put_object(Bucket=BUCKET, Key="governance/2026-01-05/analysis.json", Body=json.dumps(make_report("2026-01-05")))
    s3.put_object(Bucket=BUCKET, Key="governance/2026-01-12/report.md", Body=b"# partial")  # no analysis.json
    s3.put_object(Bucket=BUCKET, Key="governance/clarify-config/2026-01-12/analysis_config.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="lineage/model-1.json", Body=b"{}")
    latest = store.latest()
    assert latest is not None
    assert (latest.key, latest.markdown_key) == ("2026-01-05/analysis.json", "2026-01-05/report.md")
    assert latest.location == f"s3://{BUCKET}/governance/2026-01-05/analysis.json"  # for the log only


def test_s3_store_paginates(s3: Any) -> None:
    for day in range(1, 29):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"governance/2026-02-{day:02d}/analysis.json",
            Body=json.dumps(make_report(f"2026-02-{day:02d}")),
        )
    latest = S3ReportStore(s3, BUCKET, "governance/").latest()
    assert latest is not None and latest.analysis["report_date"] == "2026-02-28"


# ---- the summary --------------------------------------------------------------------------------------
def stored(report: dict[str, Any]) -> StoredReport:
    return StoredReport(
        key="2026-01-05/analysis.json",
        markdown_key="2026-01-05/report.md",
        location="s3://b/governance/2026-01-05/analysis.json",
        analysis=report,
    )


def test_summary_shape_and_content() -> None:
    report = make_report("2026-01-05")
    body = summarize(stored(report), live_endpoint="live-endpoint")
    assert set(body) == set(json.loads((SCHEMAS / "explain_response.json").read_text())["properties"])
    assert (body["model_version"], body["report_date"], body["engine"]) == ("model-1", "2026-01-05", "script")
    assert body["report_covers_live_endpoint"] is True
    assert body["top_tokens"]["positive"][0]["token"] == "good"
    assert all(len(tokens) <= 5 for tokens in body["top_tokens"].values())
    assert body["report"] == {"key": "2026-01-05/analysis.json", "markdown_key": "2026-01-05/report.md"}
    assert "s3://" not in json.dumps(body)  # internal locations stay internal
    thresholded = [
        (f, m)
        for f, r in report["bias"].items()
        for m in r["metrics"]
        if m["threshold"] is not None and m["value"] is not None
    ]
    assert len(body["bias"]["checks"]) == len(thresholded)
    assert body["bias"]["passed"] is all(c["passed"] for c in body["bias"]["checks"])


def test_pass_fail_is_recomputed_from_value_and_threshold() -> None:
    report = make_report("2026-01-05")
    forged = copy.deepcopy(report)
    for result in forged["bias"].values():
        for metric in result["metrics"]:
            if metric["threshold"] is not None:
                metric["value"], metric["passed"] = metric["threshold"] + 0.5, True  # a lying report
    body = summarize(stored(forged), live_endpoint=None)
    assert body["bias"]["checks"] and not any(c["passed"] for c in body["bias"]["checks"])
    assert body["bias"]["passed"] is False
    assert body["report_covers_live_endpoint"] is None


def test_report_of_another_endpoint_is_flagged() -> None:
    body = summarize(stored(make_report("2026-01-05", endpoint="sentiment-20260101-000000")), "sentiment-live")
    assert body["report_covers_live_endpoint"] is False


def test_malformed_report_is_unreadable() -> None:
    report = make_report("2026-01-05")
    del report["token_importance"]
    with pytest.raises(ReportUnreadable):
        summarize(stored(report), None)


def test_no_report_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        explain_summary(FileReportStore(tmp_path), "live-endpoint")


# ---- values JSON cannot carry -------------------------------------------------------------------------
@pytest.mark.parametrize("broken", [math.nan, math.inf, -math.inf])
def test_a_non_finite_bias_value_fails_its_check_and_never_reaches_json(broken: float) -> None:
    report = make_report("2026-01-05")
    metric = next(m for r in report["bias"].values() for m in r["metrics"] if m["threshold"] is not None)
    metric["value"] = broken
    body = summarize(stored(report), None)
    check = next(c for c in body["bias"]["checks"] if c["metric"] == metric["name"] and c["value"] is None)
    assert check["passed"] is False and body["bias"]["passed"] is False
    json.dumps(body, allow_nan=False)  # raises on NaN or Infinity


def test_a_non_finite_importance_ranks_nothing() -> None:
    report = make_report("2026-01-05")
    first = report["token_importance"]["per_label"]["positive"][0]
    first["importance"] = math.nan
    body = summarize(stored(report), None)
    assert first["token"] not in [t["token"] for t in body["top_tokens"]["positive"]]
    json.dumps(body, allow_nan=False)


def test_a_report_with_nan_literals_is_read_and_answered_as_valid_json(tmp_path: Path) -> None:
    report = make_report("2026-01-05")
    next(m for r in report["bias"].values() for m in r["metrics"] if m["threshold"] is not None)["value"] = math.nan
    (tmp_path / "2026-01-05").mkdir()
    (tmp_path / "2026-01-05" / "analysis.json").write_text(json.dumps(report))  # Python writes NaN literally
    assert "NaN" in (tmp_path / "2026-01-05" / "analysis.json").read_text()
    json.dumps(explain_summary(FileReportStore(tmp_path), None), allow_nan=False)


def test_a_report_nested_too_deeply_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "2026-01-05").mkdir()
    (tmp_path / "2026-01-05" / "analysis.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReportUnreadable):
        FileReportStore(tmp_path).latest()


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "AccessDenied", "Message": "arn:aws:iam::123:role/x is not allowed"}}, "Get"),
        ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "List"),
        ReadTimeoutError(endpoint_url="https://bucket.s3.amazonaws.com"),
        EndpointConnectionError(endpoint_url="https://bucket.s3.amazonaws.com"),
    ],
)
def test_s3_failures_are_a_retryable_503_without_the_aws_message(error: Exception) -> None:
    class FailingPaginator:
        def paginate(self, **_: Any) -> Any:
            raise error

    class FailingClient:
        def get_paginator(self, name: str) -> FailingPaginator:
            return FailingPaginator()

    with pytest.raises(ReportsUnavailable) as caught:
        S3ReportStore(FailingClient(), BUCKET, "governance").latest()
    assert caught.value.status == 503 and caught.value.retry_after_s
    assert "arn:" not in caught.value.message and "reduce" not in caught.value.message
    assert caught.value.detail is not None and "arn:" not in caught.value.detail  # the code, not the message


@pytest.mark.parametrize(
    ("field", "value"),
    [("engine", "clarify-v2"), ("report_date", "2024-1-1"), ("bias-value", 10**400)],
    ids=["unknown-engine", "malformed-date", "integer-too-big-for-a-float"],
)
def test_a_report_the_answer_schema_cannot_carry_is_unreadable_not_a_500(field: str, value: object) -> None:
    report = make_report("2026-01-05")
    if field == "bias-value":
        next(m for r in report["bias"].values() for m in r["metrics"] if m["threshold"] is not None)["value"] = value
    else:
        report[field] = value
    with pytest.raises(ReportUnreadable):
        summarize(stored(report), None)


class SlowClock:
    """A clock each S3 call advances by 1.3 s (one call's worst case)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_s3_call_starts_that_could_outlast_the_request(s3: Any) -> None:
    from explanation.reports import S3_CALL_S
    from sentiment_api.deadline import Deadline
    from sentiment_api.errors import ReportsUnavailable

    clock = SlowClock()
    calls: list[str] = []

    class Timed:
        def __init__(self, client: Any) -> None:
            self._client, self.exceptions = client, client.exceptions

        def get_paginator(self, name: str) -> Any:
            calls.append(name)
            clock.now += S3_CALL_S
            return self._client.get_paginator(name)

        def get_object(self, **kwargs: Any) -> Any:
            calls.append("get_object")
            clock.now += S3_CALL_S
            return self._client.get_object(**kwargs)

    for day in ("2026-11-01", "2026-11-08", "2026-11-15"):  # three folders, none with analysis.json
        s3.put_object(Bucket=BUCKET, Key=f"governance/{day}/report.md", Body=b"partial")
    store = S3ReportStore(Timed(s3), BUCKET, "governance")

    with pytest.raises(ReportsUnavailable) as raised:
        store.latest(Deadline(expires_at=3 * S3_CALL_S + 0.1, clock=clock))

    assert calls == ["list_objects_v2", "get_object", "get_object"]  # the third get could not end in time
    assert raised.value.retry_after_s == 5
    assert store.latest(Deadline(expires_at=clock.now + 10 * S3_CALL_S, clock=clock)) is None  # time enough: all
