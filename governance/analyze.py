"""Weekly governance analysis: ``python -m governance.analyze``.

Local (embedded default; the local stack's model server, or the artefact in-process)::

    python -m governance.analyze --endpoint-url http://127.0.0.1:8080 --endpoint-name sentiment-local \\
        --data .cache/data/governance-eval.csv --out reports/governance/$(date -u +%F)
    python -m governance.analyze --model-dir .cache/model --data .cache/data/governance-eval.csv

Cloud (SageMaker Processing job, scikit-learn image, started by statemachines/governance.asl.json)::

    python3 -m governance.analyze --endpoint-name <live endpoint> --model-version <model name> \\
        --data /opt/ml/processing/input/data/eval.csv --out /opt/ml/processing/output

The data is a CSV with ``text`` and ``label`` columns and, optionally, facet columns (``domain`` by default);
``length_bucket`` is derived from the text. See governance/metrics.py and governance/importance.py for the
metrics and the token-importance method.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sentiment_core.contract import LABELS, REPORT_SCHEMA

from .importance import Predict, stratified_sample, token_importance
from .metrics import THRESHOLDS, classification_report, facet_bias, failed_checks, length_bucket
from .report import write_report

log = logging.getLogger("governance.analyze")
UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC is Python 3.11+; the processing image runs 3.9

DERIVED_FACET = "length_bucket"
DEFAULT_FACETS = ("domain",)
METHOD = "leave-one-token-out occlusion (mean change of the label probability when the token is removed)"


class DataError(ValueError):
    """The evaluation CSV is unusable."""


def resolve_csv(path: Path) -> Path:
    """The CSV itself, or the only ``*.csv`` in a folder (a processing job's input folder)."""
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.csv"))
    if len(found) != 1:
        raise DataError(f"{path}: expected exactly one .csv file, found {[p.name for p in found]}")
    return found[0]


def read_rows(path: Path, facets: Sequence[str]) -> tuple[list[dict[str, str]], str]:
    """Rows with text, label and the facet columns present in the file (or the folder's only CSV); and the
    file's sha256."""
    path = resolve_csv(path)
    raw = path.read_bytes()
    reader = csv.DictReader(raw.decode("utf-8-sig").splitlines())
    columns = set(reader.fieldnames or ())
    missing = {"text", "label"} - columns
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {sorted(columns)}")
    keep = ["text", "label", *[f for f in facets if f in columns]]
    rows = []
    for n, row in enumerate(reader, start=2):
        label = (row.get("label") or "").strip().lower()
        if label not in LABELS:
            raise DataError(f"{path}: line {n}: label {row.get('label')!r} is not one of {LABELS}")
        rows.append({key: (row.get(key) or "").strip() for key in keep} | {"label": label})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows, hashlib.sha256(raw).hexdigest()


def cap_rows(rows: list[dict[str, str]], max_rows: int) -> list[dict[str, str]]:
    """At most max_rows rows, the same share of each label, chosen by a hash of the text (deterministic)."""
    if len(rows) <= max_rows:
        return rows
    keep: set[int] = set()
    for label in LABELS:
        idx = [i for i, row in enumerate(rows) if row["label"] == label]
        quota = round(max_rows * len(idx) / len(rows))
        ranked = sorted(idx, key=lambda i: (hashlib.sha256(rows[i]["text"].encode()).hexdigest(), i))
        keep.update(ranked[:quota])
    return [row for i, row in enumerate(rows) if i in keep]


def analyze(
    rows: Sequence[Mapping[str, str]],
    predict: Predict,
    *,
    facets: Sequence[str] = DEFAULT_FACETS,
    sample_per_label: int = 40,
    max_tokens: int = 40,
    top_k: int = 10,
    min_count: int = 2,
    min_group_size: int = 30,
) -> dict[str, Any]:
    """Performance, bias by facet, token importance and a data summary (without model/report metadata)."""
    texts = [row["text"] for row in rows]
    truth = [row["label"] for row in rows]
    predicted = [p.label for p in predict(texts)]
    facet_columns = [f for f in facets if rows and f in rows[0]]
    facet_values: dict[str, list[str]] = {f: [row[f] or "unknown" for row in rows] for f in facet_columns}
    facet_values[DERIVED_FACET] = [length_bucket(text) for text in texts]
    sample = stratified_sample(texts, truth, sample_per_label, max_tokens)
    importance = token_importance([texts[i] for i in sample], predict, top_k=top_k, min_count=min_count)
    bias = {
        facet: facet_bias(truth, predicted, values, min_group_size=min_group_size)
        for facet, values in facet_values.items()
    }
    failed = failed_checks(bias)
    label_counts = Counter(truth)
    return {
        "data": {
            "rows": len(rows),
            "label_counts": {label: label_counts[label] for label in LABELS},
            "facets": {facet: dict(sorted(Counter(values).items())) for facet, values in facet_values.items()},
            "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 2) if texts else 0.0,
        },
        "performance": classification_report(truth, predicted),
        "token_importance": {
            "method": METHOD,
            "sample_size": len(sample),
            "max_tokens": max_tokens,
            "min_count": min_count,
            "per_label": importance,
        },
        "bias": bias,
        "thresholds": dict(THRESHOLDS),
        "summary": {"passed": not failed, "failed_checks": failed},
    }


def build_report(
    core: Mapping[str, Any],
    *,
    engine: str,
    report_date: str,
    model_version: str,
    endpoint: str | None,
    source: str,
    sha256: str,
    generated_at: str | None = None,
) -> dict[str, Any]:
    generated = generated_at or dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"source": source, "sha256": sha256, **core["data"]}
    return {
        "schema": REPORT_SCHEMA,
        "engine": engine,
        "report_date": report_date,
        "generated_at": generated,
        "model": {"version": model_version, "endpoint": endpoint},
        **{key: value for key, value in core.items() if key != "data"},
        "data": data,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m governance.analyze", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="CSV with text,label[,domain] (or its folder)")
    parser.add_argument("--out", type=Path, help="output folder (default reports/governance/<report date>)")
    parser.add_argument("--endpoint-name", help="SageMaker endpoint to analyse (the live one in the cloud)")
    parser.add_argument("--endpoint-url", help="endpoint URL override, e.g. the local model server")
    parser.add_argument("--region", help="AWS region of the endpoint")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(".cache/model"),
        help="model artefact to load in-process when no --endpoint-name is given",
    )
    parser.add_argument("--model-version", help="model version to record (default: what the model reports)")
    parser.add_argument("--engine", default="script", help="engine name recorded in the report")
    parser.add_argument("--report-date", default=dt.datetime.now(UTC).date().isoformat())
    parser.add_argument("--facet", action="append", dest="facets", help="facet column (repeatable; default domain)")
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--sample-per-label", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--min-group-size", type=int, default=30)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    facets = tuple(args.facets or DEFAULT_FACETS)
    try:
        rows, sha256 = read_rows(args.data, facets)
    except (OSError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = cap_rows(rows, args.max_rows)
    predictor: Any
    if args.endpoint_name:
        from .predictors import EndpointPredictor

        predictor = EndpointPredictor.create(args.endpoint_name, args.endpoint_url, args.region)
    else:
        from .predictors import ArtefactPredictor

        predictor = ArtefactPredictor.load(args.model_dir)
    log.info("analysing %d rows with %s", len(rows), args.endpoint_name or args.model_dir)
    core = analyze(
        rows,
        predictor,
        facets=facets,
        sample_per_label=args.sample_per_label,
        max_tokens=args.max_tokens,
        top_k=args.top_k,
        min_count=args.min_count,
        min_group_size=args.min_group_size,
    )
    report = build_report(
        core,
        engine=args.engine,
        report_date=args.report_date,
        model_version=args.model_version or predictor.model_version or "unknown",
        endpoint=args.endpoint_name,
        source=str(args.data),
        sha256=sha256,
    )
    out = args.out or Path("reports") / "governance" / args.report_date
    document, markdown = write_report(report, out)
    print(
        f"{document}\n{markdown}\nbias checks: {'PASS' if report['summary']['passed'] else 'FAIL'} "
        f"{report['summary']['failed_checks']}"
    )
    return 0


__all__ = ["analyze", "build_report", "cap_rows", "main", "read_rows", "resolve_csv"]

if __name__ == "__main__":
    raise SystemExit(main())
