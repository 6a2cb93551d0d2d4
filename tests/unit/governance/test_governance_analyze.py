"""governance.analyze: data checks, the analysis on a known model, and a real run on the local artefact."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sentiment_core.contract import REPORT_SCHEMA

from governance.analyze import DataError, analyze, build_report, cap_rows, main, read_rows
from governance.importance import Prediction, tokens
from governance.report import render_markdown, write_report

ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = ROOT / ".cache" / "model"
DATASET = ROOT / ".cache" / "data" / "vader_icwsm2014.csv"


def keyword_model(texts: Sequence[str]) -> list[Prediction]:
    out = []
    for text in texts:
        words = {t for t, _, _ in tokens(text)}
        label = "positive" if "good" in words else "negative" if "bad" in words else "neutral"
        scores = {name: 0.8 if name == label else 0.1 for name in ("negative", "neutral", "positive")}
        out.append(Prediction(label, scores))
    return out


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


ROWS = [
    {"text": "good good day", "label": "positive", "domain": "a"},
    {"text": "a good one", "label": "positive", "domain": "b"},
    {"text": "bad luck today", "label": "negative", "domain": "a"},
    {"text": "so bad", "label": "negative", "domain": "b"},
    {"text": "the train leaves at noon", "label": "neutral", "domain": "a"},
    {"text": "good grief it is bad", "label": "neutral", "domain": "b"},
]


def test_read_rows_checks_columns_and_labels(tmp_path: Path) -> None:
    rows, sha256 = read_rows(write_csv(tmp_path / "ok.csv", ROWS), ["domain", "missing"])
    assert rows[0] == {"text": "good good day", "label": "positive", "domain": "a"} and len(sha256) == 64
    with pytest.raises(DataError, match="missing column"):
        read_rows(write_csv(tmp_path / "no-label.csv", [{"text": "x"}]), [])
    with pytest.raises(DataError, match="line 2"):
        read_rows(write_csv(tmp_path / "bad.csv", [{"text": "x", "label": "happy"}]), [])


def test_cap_rows_keeps_each_label_share() -> None:
    rows = [{"text": f"t{i}", "label": "positive" if i % 4 else "negative"} for i in range(400)]
    capped = cap_rows(rows, 100)
    assert len(capped) == 100
    assert sum(r["label"] == "negative" for r in capped) == 25
    assert cap_rows(rows, 1000) is rows


def test_analyze_known_model() -> None:
    core = analyze(ROWS, keyword_model, facets=("domain",), sample_per_label=10, min_count=2, min_group_size=1)
    assert core["performance"]["accuracy"] == round(5 / 6, 6)
    assert core["data"]["label_counts"] == {"negative": 2, "neutral": 2, "positive": 2}
    assert core["data"]["facets"]["domain"] == {"a": 3, "b": 3}
    assert set(core["bias"]) == {"domain", "length_bucket"}
    assert core["token_importance"]["per_label"]["positive"][0]["token"] == "good"
    assert core["token_importance"]["per_label"]["negative"][0]["token"] == "bad"
    report = build_report(
        core,
        engine="script",
        report_date="2026-01-05",
        model_version="kw-1",
        endpoint=None,
        source="rows.csv",
        sha256="f" * 64,
        generated_at="2026-01-05T00:00:00Z",
    )
    assert report["schema"] == REPORT_SCHEMA and report["model"] == {"version": "kw-1", "endpoint": None}
    assert report["summary"]["passed"] is (not report["summary"]["failed_checks"])
    markdown = render_markdown(report)
    assert "# Governance report 2026-01-05" in markdown and "`good`" in markdown


def test_write_report_writes_both_files(tmp_path: Path) -> None:
    core = analyze(ROWS, keyword_model, min_group_size=1)
    report = build_report(
        core,
        engine="script",
        report_date="2026-01-05",
        model_version="kw-1",
        endpoint=None,
        source="rows.csv",
        sha256="f" * 64,
    )
    document, markdown = write_report(report, tmp_path / "2026-01-05")
    assert json.loads(document.read_text())["report_date"] == "2026-01-05"
    assert markdown.read_text().startswith("# Governance report")
    assert sorted(p.name for p in (tmp_path / "2026-01-05").iterdir()) == ["analysis.json", "report.md"]


def test_cli_rejects_unusable_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.skipif(not (MODEL_DIR.is_dir() and DATASET.is_file()), reason="no local model artefact: run `make model`")
def test_real_report_from_the_local_model(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "2026-01-05"
    assert (
        main(
            [
                "--model-dir",
                str(MODEL_DIR),
                "--data",
                str(DATASET),
                "--out",
                str(out),
                "--max-rows",
                "900",
                "--sample-per-label",
                "20",
                "--report-date",
                "2026-01-05",
            ]
        )
        == 0
    )
    analysis = json.loads((out / "analysis.json").read_text())
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert analysis["model"]["version"] == manifest["version"]
    assert analysis["data"]["rows"] == 900
    assert set(analysis["data"]["facets"]["domain"]) == {"amazon", "movie", "nyt", "tweets"}
    assert analysis["performance"]["accuracy"] > 0.5
    assert all(analysis["token_importance"]["per_label"][label] for label in ("negative", "neutral", "positive"))
    names = {m["name"] for m in analysis["bias"]["domain"]["metrics"]}
    assert names >= {"accuracy_gap", "prediction_rate_shift[neutral]"}
