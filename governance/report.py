"""The report: ``analysis.json`` (schema ``sentiment-api/governance-report/v1``) and ``report.md``.

analysis.json::

    {"schema", "engine", "report_date", "generated_at",
     "model": {"version", "endpoint"},
     "data": {"source", "sha256", "rows", "label_counts", "facets": {facet: {group: n}}, "mean_words"},
     "performance": {"n", "accuracy", "macro_f1", "per_label": {...}},
     "token_importance": {"method", "sample_size", "per_label": {label: [{"token", "importance", "count"}]}},
     "bias": {facet: {"groups", "excluded_groups", "min_group_size", "metrics": [{"name", "kind", "value",
              "threshold", "passed", "groups", "description"}]}},
     "thresholds": {...}, "summary": {"passed", "failed_checks"}}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sentiment_core.contract import LABELS

ANALYSIS_FILE = "analysis.json"
MARKDOWN_FILE = "report.md"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_markdown(analysis: Mapping[str, Any]) -> str:
    model, data, perf = analysis["model"], analysis["data"], analysis["performance"]
    summary = analysis["summary"]
    lines = [
        f"# Governance report {analysis['report_date']}",
        "",
        f"- model version: `{model['version']}`"
        + (f" (endpoint `{model['endpoint']}`)" if model.get("endpoint") else ""),
        f"- engine: {analysis['engine']}; generated {analysis['generated_at']}",
        f"- data: `{data['source']}` ({data['rows']} rows, sha256 `{data['sha256'][:12]}…`)",
        f"- bias checks: **{'PASS' if summary['passed'] else 'FAIL'}**"
        + (f" ({', '.join(summary['failed_checks'])})" if summary["failed_checks"] else ""),
        "",
        "## Data summary",
        "",
        "| label | rows |",
        "|---|---|",
        *[f"| {label} | {n} |" for label, n in data["label_counts"].items()],
        "",
    ]
    for facet, groups in data["facets"].items():
        lines += [f"Facet `{facet}`: " + ", ".join(f"{g} {n}" for g, n in groups.items()), ""]
    lines += ["## Performance", ""]
    if perf is None:
        lines += ["Not measured by this engine.", ""]
    else:
        lines += [
            f"accuracy {_fmt(perf['accuracy'])}, macro-F1 {_fmt(perf['macro_f1'])} (n = {perf['n']})",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
            *[
                f"| {label} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | {m['support']} |"
                for label, m in perf["per_label"].items()
            ],
            "",
        ]
    lines += [
        "## Token importance",
        "",
        f"Method: {analysis['token_importance']['method']} "
        f"(sample of {analysis['token_importance']['sample_size']} texts).",
        "",
    ]
    for label, entries in analysis["token_importance"]["per_label"].items():
        tokens = ", ".join(f"`{e['token']}` {e['importance']:.3f}" for e in entries) or "-"
        lines += [f"- **{label}**: {tokens}"]
    lines += ["", "## Bias by facet", ""]
    for facet, result in analysis["bias"].items():
        lines += [f"### {facet}", ""]
        if result["groups"]:
            lines += [
                "| group | n | accuracy | " + " | ".join(f"acc. on {label}" for label in LABELS) + " |",
                "|---|---|---|" + "---|" * len(LABELS),
            ]
            for group, stats in result["groups"].items():
                recall = stats["class_conditional_accuracy"]
                lines.append(
                    f"| {group} | {stats['n']} | {_fmt(stats['accuracy'])} | "
                    + " | ".join(_fmt(recall[label]) for label in LABELS)
                    + " |"
                )
            lines.append("")
        lines += ["| metric | kind | value | threshold | result |", "|---|---|---|---|---|"]
        for metric in result["metrics"]:
            verdict = {True: "pass", False: "**FAIL**", None: "info"}[metric["passed"]]
            lines.append(
                f"| {metric['name']} | {metric['kind']} | {_fmt(metric['value'])} | "
                f"{_fmt(metric['threshold'])} | {verdict} |"
            )
        if result["excluded_groups"]:
            lines.append(
                f"\nGroups under {result['min_group_size']} rows, left out of the gaps: "
                + ", ".join(result["excluded_groups"])
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(analysis: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes report.md first and analysis.json last: a folder with analysis.json is complete."""
    markdown = out_dir / MARKDOWN_FILE
    document = out_dir / ANALYSIS_FILE
    _atomic_write(markdown, render_markdown(analysis))
    _atomic_write(document, json.dumps(analysis, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    return document, markdown
