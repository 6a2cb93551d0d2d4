"""Latency and throughput of the built model artefact (in process, no HTTP).

    .venv/bin/python bench/model_latency.py [--model-dir .cache/model] [--calls 1000] [--warmup 50]

Prints: artefact size, load time, single-text ``predict_proba`` p50/p95/p99 over ``--calls`` calls after
``--warmup`` calls, and batch-32 throughput. Texts cycle through a fixed set of sentences of varied length.
Build the artefact first: ``python -m sentiment_model.build --out .cache/model``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "model"))  # a script, not a test: pytest's pythonpath does not apply

from sentiment_model.runtime import MANIFEST_FILENAME, load_model  # noqa: E402

TEXTS = [
    "I love it!",
    "This is terrible.",
    "The meeting is scheduled for Tuesday at the main office.",
    "Honestly the battery life is great, but the screen scratches far too easily and support never answered.",
    "meh",
    "Best purchase I've made all year :) would recommend to anyone looking for a reliable budget phone",
    "The service was slow, the food was cold, and the waiter was rude. Never again.",
    "It arrived on time and works as described.",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / ".cache" / "model")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    if not (args.model_dir / MANIFEST_FILENAME).is_file():
        print(f"no artefact in {args.model_dir}: python -m sentiment_model.build --out {args.model_dir}")
        return 2

    files = [p for p in args.model_dir.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    t0 = time.perf_counter()
    model = load_model(args.model_dir)
    load_s = time.perf_counter() - t0  # includes importing scikit-learn/skops on first use
    t0 = time.perf_counter()
    load_model(args.model_dir)
    reload_s = time.perf_counter() - t0

    for i in range(args.warmup):
        model.predict_proba([TEXTS[i % len(TEXTS)]])
    single_ms = []
    for i in range(args.calls):
        text = TEXTS[i % len(TEXTS)]
        t0 = time.perf_counter()
        model.predict_proba([text])
        single_ms.append((time.perf_counter() - t0) * 1000)

    batch = [TEXTS[i % len(TEXTS)] for i in range(32)]
    model.predict_proba(batch)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        model.predict_proba(batch)
    batch_s = time.perf_counter() - t0

    manifest = json.loads((args.model_dir / MANIFEST_FILENAME).read_text())
    print(f"model      {model.version} ({manifest['format']})  dir {args.model_dir}")
    machine = platform.processor() or platform.machine()
    print(f"machine    {machine}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"artefact   {size / 1e6:.2f} MB in {len(files)} files ({', '.join(sorted(p.name for p in files))})")
    print(f"load       {load_s:.2f} s first (with imports), {reload_s:.2f} s again")
    print(
        f"single     p50 {percentile(single_ms, 50):.3f} ms  p95 {percentile(single_ms, 95):.3f} ms  "
        f"p99 {percentile(single_ms, 99):.3f} ms  mean {statistics.fmean(single_ms):.3f} ms  "
        f"({args.calls} calls after {args.warmup} warm-up)"
    )
    print(
        f"batch-32   {args.batches * 32 / batch_s:.0f} texts/s  ({batch_s / args.batches * 1000:.2f} ms per batch, "
        f"{args.batches} batches)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
