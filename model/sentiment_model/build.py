"""Data + training in one step: ``python -m sentiment_model.build --out .cache/model [--if-missing]``.

Works on a fresh machine: the pinned sdist is fetched with the current interpreter's ``-m pip`` (cached in
``<cache>/downloads``), the normalised CSV is written to ``<cache>/data``, the artefact to ``--out``.
``--if-missing`` leaves a directory alone when it already holds an artefact that loads and verifies.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sentiment_model.runtime import ModelArtifactError, load_model

log = logging.getLogger(__name__)


def artefact_is_valid(out: Path) -> bool:
    try:
        model = load_model(out)
    except ModelArtifactError as exc:
        log.info("no valid artefact in %s: %s", out, exc)
        return False
    log.info("valid artefact in %s: %s", out, model.version)
    return True


def build(out: Path, *, cache: Path, if_missing: bool = False, n_jobs: int | None = None) -> int:
    if if_missing and artefact_is_valid(out):
        print(f"{out}: artefact present and valid, nothing to do")
        return 0
    from sentiment_model import data, train  # training imports only when we train

    t0 = time.perf_counter()
    ds = data.prepare(cache)
    t_data = time.perf_counter() - t0
    train_ex, test_ex = data.split_examples(ds.examples)
    pipeline, manifest = train.train(train_ex, test_ex, data_sha256=ds.sha256, n_jobs=n_jobs)
    manifest = train.write_artifact(pipeline, manifest, out)
    total = time.perf_counter() - t0
    print(train.summary(manifest))
    print(f"wrote {out} in {total:.1f}s (data {t_data:.1f}s, train+write {total - t_data:.1f}s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract the data and train the sentiment model.")
    parser.add_argument("--out", type=Path, default=Path(".cache") / "model", help="artefact directory")
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download/data cache (default .cache)")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when a valid artefact exists")
    parser.add_argument("--jobs", type=int, default=None, help="CV worker processes (default: min(folds, cpus))")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return build(args.out, cache=args.cache, if_missing=args.if_missing, n_jobs=args.jobs)


if __name__ == "__main__":
    raise SystemExit(main())
