"""The Clarify engine: the analysis configuration the governance state machine gives SageMaker Clarify, and
the conversion of Clarify's output into this project's report layout (``analysis.json`` + ``report.md``).

Clarify (``statemachines/governance.asl.json``, engine ``clarify``) runs against the *live* endpoint
(``predictor.endpoint_name``: no shadow endpoint), with
- SHAP for text: ``text_config`` token granularity, English, top tokens per label;
- pre-training bias (CI, DPL) and post-training bias (DPPL, AD, RD) on the facets ``domain`` (a column of
  the dataset) and ``length_bucket`` (derived, written into the evaluation CSV by governance.datasets);
  the positive outcome is the label ``positive``.

Its ``analysis.json`` (schema as read by the SageMaker Python SDK's model-card parsers)::

    {"pre_training_bias_metrics":  {"label", "label_value_or_threshold",
                                    "facets": {facet: [{"value_or_threshold", "metrics": [{"name", "value"}]}]}},
     "post_training_bias_metrics": {... the same ...},
     "explanations": {"kernel_shap": {label: {"global_shap_values": {...},
                                              "global_top_shap_text": {feature: {token: value}}}}}}

is converted by ``python -m governance.clarify`` (a second, small processing job on the scikit-learn
image) into ``analysis.json`` v1 with ``engine: clarify``. Clarify does not report accuracy, so
``performance`` is null; the data summary is computed from the same evaluation CSV.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sentiment_core.contract import LABELS, REPORT_SCHEMA, bias_check_passed

from .analyze import DataError, read_rows
from .metrics import THRESHOLDS, length_bucket
from .report import write_report

UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC is Python 3.11+; the processing image runs 3.9
EVAL_HEADERS: tuple[str, ...] = ("text", "label", "domain", "length_bucket")
FACETS: tuple[str, ...] = ("domain", "length_bucket")
POSITIVE_OUTCOME = "positive"
PRE_TRAINING_METHODS: tuple[str, ...] = ("CI", "DPL")
POST_TRAINING_METHODS: tuple[str, ...] = ("DPPL", "AD", "RD")
MAX_TOP_TOKENS = 10
#: Clarify metric -> the project's threshold it is checked against (|value| <= threshold); others are
#: informational. AD: accuracy difference (facet value vs the rest); RD: recall difference.
CLARIFY_THRESHOLDS: dict[str, str] = {"AD": "accuracy_gap", "RD": "class_conditional_accuracy_gap"}


def analysis_config(endpoint_name: str) -> dict[str, Any]:
    """The Clarify analysis configuration (the state machine writes exactly this; a test checks it)."""
    return {
        "version": "1.0",
        "dataset_type": "text/csv",
        "headers": list(EVAL_HEADERS),
        "label": "label",
        "label_values_or_threshold": [POSITIVE_OUTCOME],
        "facet": [{"name_or_index": facet} for facet in FACETS],
        "excluded_columns": list(FACETS),
        "methods": {
            "shap": {
                "baseline": [["<UNK>"]],
                "num_samples": 100,
                "agg_method": "mean_abs",
                "save_local_shap_values": False,
                "seed": 20240611,
                "text_config": {"granularity": "token", "language": "english", "max_top_tokens": MAX_TOP_TOKENS},
            },
            "pre_training_bias": {"methods": list(PRE_TRAINING_METHODS)},
            "post_training_bias": {"methods": list(POST_TRAINING_METHODS)},
            "report": {"name": "report", "title": "sentiment-api governance (Clarify)"},
        },
        "predictor": {
            "endpoint_name": endpoint_name,
            "content_type": "text/csv",
            "accept_type": "application/json",
            "label": "predictions[*].predicted_label",
            "probability": "predictions[*].probabilities",
            "label_headers": list(LABELS),
        },
    }


def _top_tokens(explanations: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    kernel = explanations.get("kernel_shap") or {}
    result: dict[str, list[dict[str, Any]]] = {}
    for label in LABELS:
        per_feature = (kernel.get(label) or {}).get("global_top_shap_text") or {}
        values: dict[str, float] = {}
        for tokens in per_feature.values():
            for token, value in (tokens or {}).items():
                values[str(token)] = max(values.get(str(token), 0.0), float(value))
        ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))[:MAX_TOP_TOKENS]
        result[label] = [{"token": token, "importance": round(value, 6), "count": None} for token, value in ranked]
    return result


def _bias(clarify: Mapping[str, Any]) -> dict[str, Any]:
    by_facet: dict[str, dict[str, Any]] = {}
    sections = (("pre_training_bias_metrics", "pre_training"), ("post_training_bias_metrics", "post_training"))
    for section, kind in sections:
        for facet, entries in ((clarify.get(section) or {}).get("facets") or {}).items():
            target = by_facet.setdefault(
                facet, {"groups": {}, "excluded_groups": [], "min_group_size": None, "metrics": []}
            )
            for entry in entries:
                group = str(entry.get("value_or_threshold"))
                for metric in entry.get("metrics") or []:
                    value = metric.get("value")
                    threshold_key = CLARIFY_THRESHOLDS.get(str(metric.get("name")))
                    threshold = THRESHOLDS.get(threshold_key) if threshold_key else None
                    passed = None if threshold is None or value is None else bias_check_passed(value, threshold)
                    target["metrics"].append(
                        {
                            "name": f"clarify:{metric.get('name')}[{group}]",
                            "kind": kind,
                            "value": None if value is None else round(float(value), 6),
                            "threshold": threshold,
                            "passed": passed,
                            "groups": {group: value},
                            "description": str(metric.get("description") or metric.get("name")),
                        }
                    )
    return by_facet


def _facet_value(row: Mapping[str, str], facet: str) -> str:
    if facet == "length_bucket":
        return row.get(facet) or length_bucket(row["text"])
    return row.get(facet) or "unknown"


def convert(
    clarify: Mapping[str, Any],
    rows: Sequence[Mapping[str, str]],
    *,
    report_date: str,
    model_version: str,
    endpoint: str | None,
    source: str,
    sha256: str,
    generated_at: str | None = None,
) -> dict[str, Any]:
    """Clarify's analysis.json (+ the evaluation rows, for the data summary) -> analysis.json v1."""
    bias = _bias(clarify)
    failed = [f"{facet}:{m['name']}" for facet, r in bias.items() for m in r["metrics"] if m["passed"] is False]
    labels = Counter(row["label"] for row in rows)
    facets = {facet: dict(sorted(Counter(_facet_value(row, facet) for row in rows).items())) for facet in FACETS}
    return {
        "schema": REPORT_SCHEMA,
        "engine": "clarify",
        "report_date": report_date,
        "generated_at": generated_at or dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {"version": model_version, "endpoint": endpoint},
        "performance": None,
        "token_importance": {
            "method": "SageMaker Clarify Kernel SHAP, token granularity (global mean |SHAP| per token)",
            "sample_size": len(rows),
            "per_label": _top_tokens(clarify.get("explanations") or {}),
        },
        "bias": bias,
        "thresholds": dict(THRESHOLDS),
        "summary": {"passed": not failed, "failed_checks": failed},
        "data": {
            "source": source,
            "sha256": sha256,
            "rows": len(rows),
            "label_counts": {label: labels[label] for label in LABELS},
            "facets": facets,
            "mean_words": round(sum(len(r["text"].split()) for r in rows) / len(rows), 2) if rows else 0.0,
        },
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m governance.clarify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clarify-dir", type=Path, required=True, help="folder with Clarify's analysis.json")
    parser.add_argument("--data", type=Path, required=True, help="the evaluation CSV Clarify analysed (or its folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-version", required=True)
    parser.add_argument("--endpoint-name")
    parser.add_argument("--report-date", default=dt.datetime.now(UTC).date().isoformat())
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        clarify = json.loads((args.clarify_dir / "analysis.json").read_text("utf-8"))
        rows, sha256 = read_rows(args.data, FACETS)
    except (OSError, ValueError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = convert(
        clarify,
        rows,
        report_date=args.report_date,
        model_version=args.model_version,
        endpoint=args.endpoint_name,
        source=str(args.data),
        sha256=sha256,
    )
    document, markdown = write_report(report, args.out)
    print(f"{document}\n{markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
