"""The pre-selected dataset, exported for the pipelines: ``python -m governance.datasets``.

Both files come from the pinned Hutto & Gilbert ground truth (model/DATA.md), split exactly as the
baseline model was (deterministic, stratified by label x domain):

- ``training.csv``: the train split, columns ``text,label`` (what Autopilot's TextClassificationJobConfig
  reads: ContentColumn ``text``, TargetLabelColumn ``label``);
- ``governance-eval.csv``: the held-out test split, columns ``text,label,domain,length_bucket`` (what the
  weekly governance job scores; ``domain`` and the derived ``length_bucket`` are the bias facets).

Upload them where the state machines expect them (docs/retraining.md)::

    python -m governance.datasets --out .cache/data
    aws s3 cp .cache/data/training.csv        s3://<DataBucket>/training/vader-icwsm2014-train.csv
    aws s3 cp .cache/data/governance-eval.csv s3://<DataBucket>/governance/eval/vader-icwsm2014-test.csv

The texts are not redistributed by this project (licence: model/DATA.md); they are extracted on the
machine that runs this command, from the pinned package.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from .clarify import EVAL_HEADERS
from .metrics import length_bucket

TRAINING_FILE = "training.csv"
EVAL_FILE = "governance-eval.csv"


def to_csv(rows: Iterable[Sequence[str]], header: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m governance.datasets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download/extract cache (default .cache)")
    parser.add_argument("--out", type=Path, default=Path(".cache/data"), help="output folder")
    args = parser.parse_args(argv)
    from sentiment_model.data import prepare, split_examples  # local only (pinned data package)

    dataset = prepare(args.cache)
    train, test = split_examples(dataset.examples)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / TRAINING_FILE).write_bytes(to_csv(((e.text, e.label) for e in train), ("text", "label")))
    eval_rows = ((e.text, e.label, e.domain, length_bucket(e.text)) for e in test)
    (args.out / EVAL_FILE).write_bytes(to_csv(eval_rows, EVAL_HEADERS))
    print(f"{args.out / TRAINING_FILE}  {len(train)} rows\n{args.out / EVAL_FILE}  {len(test)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
