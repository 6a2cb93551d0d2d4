"""The Clarify engine: its analysis configuration and the conversion of its output to the report layout."""

from __future__ import annotations

import json
from pathlib import Path

from sentiment_core.contract import REPORT_SCHEMA

from governance.clarify import analysis_config, convert, main
from governance.metrics import THRESHOLDS
from governance.report import render_markdown

# Shaped like Clarify's analysis.json (as the SageMaker Python SDK's model-card parsers read it).
CLARIFY_OUTPUT = {
    "version": "1.0",
    "pre_training_bias_metrics": {
        "label": "label",
        "label_value_or_threshold": "positive",
        "facets": {
            "domain": [
                {
                    "value_or_threshold": "nyt",
                    "metrics": [
                        {"name": "CI", "value": 0.56, "description": "Class Imbalance"},
                        {"name": "DPL", "value": 0.21},
                    ],
                },
            ]
        },
    },
    "post_training_bias_metrics": {
        "label": "label",
        "label_value_or_threshold": "positive",
        "facets": {
            "domain": [
                {
                    "value_or_threshold": "nyt",
                    "metrics": [
                        {"name": "AD", "value": -0.3},
                        {"name": "RD", "value": 0.1},
                        {"name": "DPPL", "value": 0.25},
                    ],
                },
            ]
        },
    },
    "explanations": {
        "kernel_shap": {
            "positive": {
                "global_shap_values": {"text": 0.4},
                "global_top_shap_text": {"text": {"great": 0.31, "love": 0.2, "good": 0.25}},
            },
            "negative": {"global_top_shap_text": {"text": {"bad": 0.3}}},
        }
    },
}
ROWS = [
    {"text": "a great film", "label": "positive", "domain": "movie", "length_bucket": "short"},
    {"text": "bad", "label": "negative", "domain": "nyt", "length_bucket": ""},
]


def test_analysis_config_explains_text_tokens_against_the_live_endpoint() -> None:
    config = analysis_config("sentiment-live")
    shap = config["methods"]["shap"]
    assert shap["text_config"] == {"granularity": "token", "language": "english", "max_top_tokens": 10}
    assert config["predictor"]["endpoint_name"] == "sentiment-live"
    assert "model_name" not in config["predictor"]  # no shadow endpoint
    assert [f["name_or_index"] for f in config["facet"]] == ["domain", "length_bucket"]
    assert config["excluded_columns"] == ["domain", "length_bucket"]  # the model sees the text only
    assert config["label_values_or_threshold"] == ["positive"]
    assert set(config["methods"]) == {"shap", "pre_training_bias", "post_training_bias", "report"}


def test_convert_maps_tokens_and_checks_the_mapped_metrics() -> None:
    report = convert(
        CLARIFY_OUTPUT,
        ROWS,
        report_date="2026-01-05",
        model_version="m-1",
        endpoint="live",
        source="s3://b/eval.csv",
        sha256="0" * 64,
        generated_at="2026-01-05T03:00:00Z",
    )
    assert report["schema"] == REPORT_SCHEMA and report["engine"] == "clarify"
    assert report["performance"] is None
    positive = report["token_importance"]["per_label"]["positive"]
    assert [t["token"] for t in positive] == ["great", "good", "love"]
    assert report["token_importance"]["per_label"]["neutral"] == []
    metrics = {m["name"]: m for m in report["bias"]["domain"]["metrics"]}
    assert metrics["clarify:AD[nyt]"]["threshold"] == THRESHOLDS["accuracy_gap"]
    assert metrics["clarify:AD[nyt]"]["passed"] is False  # |-0.3| > 0.15
    assert metrics["clarify:RD[nyt]"]["passed"] is True
    assert metrics["clarify:CI[nyt]"]["kind"] == "pre_training" and metrics["clarify:CI[nyt]"]["passed"] is None
    assert report["summary"] == {"passed": False, "failed_checks": ["domain:clarify:AD[nyt]"]}
    assert report["data"]["facets"]["length_bucket"] == {"short": 2}  # derived where the column is empty
    assert "Not measured by this engine." in render_markdown(report)


def test_cli_writes_the_report_layout(tmp_path: Path) -> None:
    clarify_dir = tmp_path / "clarify"
    clarify_dir.mkdir()
    (clarify_dir / "analysis.json").write_text(json.dumps(CLARIFY_OUTPUT))
    data = tmp_path / "eval.csv"
    data.write_text("text,label,domain,length_bucket\na great film,positive,movie,short\nbad,negative,nyt,short\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "--clarify-dir",
                str(clarify_dir),
                "--data",
                str(data),
                "--out",
                str(out),
                "--model-version",
                "m-1",
                "--report-date",
                "2026-01-05",
            ]
        )
        == 0
    )
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["report_date"] == "2026-01-05" and analysis["data"]["rows"] == 2
    assert (out / "report.md").read_text().startswith("# Governance report 2026-01-05")
