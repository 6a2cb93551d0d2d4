"""Latency and throughput of a model artefact, in process (no HTTP): by default the shipped fine-tuned
MiniLM (model/artefacts/minilm-sentiment, int8 ONNX); ``--tfidf`` benchmarks the TF-IDF artefact instead.

    .venv/bin/python bench/model_latency.py [--tfidf | --model-dir DIR] [--calls 1000] [--warmup 50]
                                            [--threads 1,2] [--json out.json]

Prints: artefact size, load time (first, with imports, and again), single-text ``predict_proba`` p50/p95/p99
over ``--calls`` calls after ``--warmup`` calls, for short texts (a fixed set of 1-25 word sentences) and for
1024-character texts (the API's longest), and batch-32 throughput. For the ONNX artefact, every thread count
in ``--threads`` (``SENTIMENT_MODEL_THREADS``) is measured, interleaved in blocks of 100 calls so that other
load on the machine hits each setting alike, and batch-32 throughput is measured both at the runtime default
(one text per graph run) and with length-sorted, padded batches of 32 (``SENTIMENT_MODEL_BATCH=32``).
The 1-minute load average is printed before and after: figures from a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "model"))  # a script, not a test: pytest's pythonpath does not apply

from sentiment_model.runtime import MANIFEST_FILENAME, load_model  # noqa: E402

SHIPPED_DIR = ROOT / "model" / "artefacts" / "minilm-sentiment"
TFIDF_DIR = ROOT / ".cache" / "model"

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
_LONG_SOURCES = [
    "The delivery was late again and nobody from support answered my emails, which is frustrating. ",
    "I have used this app every day for a year; it is fast, reliable and the new design is lovely. ",
    "Das ist ein Test mit 中文字符 и русским текстом, plus emoji 😀🔥 and a URL https://example.com/x ",
]
LONG_TEXTS = [(s * 20)[:1024] for s in _LONG_SOURCES]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def stats(ms: list[float]) -> dict[str, float]:
    return {"p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "mean": statistics.fmean(ms), "n": len(ms)}  # fmt: skip


def env(**values: str | None) -> Any:
    """The process environment with ``values`` set (None: left as it is), restored afterwards."""
    return patch.dict(os.environ, {k: v for k, v in values.items() if v is not None})


def timed_calls(predict: Callable[[list[str]], Any], texts: list[str], calls: int, offset: int = 0) -> list[float]:
    out = []
    for i in range(calls):
        text = texts[(offset + i) % len(texts)]
        t0 = time.perf_counter()
        predict([text])
        out.append((time.perf_counter() - t0) * 1000)
    return out


def interleaved(models: dict[str, Any], texts: list[str], calls: int, warmup: int, block: int = 100) -> dict:
    """Single-text latency of each model, measured in alternating blocks of ``block`` calls."""
    for model in models.values():
        timed_calls(model.predict_proba, texts, warmup)
    ms: dict[str, list[float]] = {name: [] for name in models}
    done = 0
    while done < calls:
        n = min(block, calls - done)
        for name, model in models.items():
            ms[name] += timed_calls(model.predict_proba, texts, n, offset=done)
        done += n
    return {name: stats(values) for name, values in ms.items()}


def throughput(model: Any, batches: int) -> float:
    batch = [(TEXTS + LONG_TEXTS)[i % (len(TEXTS) + len(LONG_TEXTS))] for i in range(32)]
    model.predict_proba(batch)
    t0 = time.perf_counter()
    for _ in range(batches):
        model.predict_proba(batch)
    return batches * 32 / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model-dir", type=Path, default=None, help=f"artefact directory (default {SHIPPED_DIR})")
    group.add_argument("--tfidf", action="store_true", help=f"benchmark the TF-IDF artefact ({TFIDF_DIR})")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="batch-32 calls for the throughput figure")
    parser.add_argument("--threads", default="1,2", help="ONNX: SENTIMENT_MODEL_THREADS values to compare")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    model_dir = TFIDF_DIR if args.tfidf else (args.model_dir or SHIPPED_DIR)
    if not (model_dir / MANIFEST_FILENAME).is_file():
        print(f"no artefact in {model_dir}: python -m sentiment_model.build --out {model_dir}")
        return 2
    manifest = json.loads((model_dir / MANIFEST_FILENAME).read_text())
    onnx = manifest["format"].startswith("onnx")
    files = [p for p in model_dir.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    load_before = os.getloadavg()[0]

    threads = [t.strip() for t in args.threads.split(",") if t.strip()] if onnx else [None]
    with env(SENTIMENT_MODEL_THREADS=threads[0]):
        t0 = time.perf_counter()
        first = load_model(model_dir)
        load_s = time.perf_counter() - t0  # includes importing onnxruntime/tokenizers or scikit-learn/skops
        t0 = time.perf_counter()
        load_model(model_dir)
        reload_s = time.perf_counter() - t0
    models = {f"threads={threads[0]}" if onnx else "model": first}
    for t in threads[1:]:
        with env(SENTIMENT_MODEL_THREADS=t):
            models[f"threads={t}"] = load_model(model_dir)

    short = interleaved(models, TEXTS, args.calls, args.warmup)
    long = interleaved(models, LONG_TEXTS, max(100, args.calls // 5), max(5, args.warmup // 5))
    batch = {name: throughput(m, args.batches) for name, m in models.items()}
    padded: dict[str, float] = {}
    if onnx:
        for t in threads:
            with env(SENTIMENT_MODEL_THREADS=t, SENTIMENT_MODEL_BATCH="32"):
                padded[f"threads={t}"] = throughput(load_model(model_dir), args.batches)
    load_after = os.getloadavg()[0]

    print(f"model      {first.version} ({manifest['format']})  dir {model_dir}")
    machine = platform.processor() or platform.machine()
    print(f"machine    {machine}, {os.cpu_count()} cpus, python {platform.python_version()}; "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after")  # fmt: skip
    print(f"artefact   {size / 1e6:.2f} MB in {len(files)} files ({', '.join(sorted(p.name for p in files))})")
    print(f"load       {load_s:.2f} s first (with imports), {reload_s:.2f} s again")
    for name in models:
        s, lg = short[name], long[name]
        print(f"{name:10s} single short    p50 {s['p50']:.2f} ms  p95 {s['p95']:.2f} ms  p99 {s['p99']:.2f} ms  "
              f"mean {s['mean']:.2f} ms  ({s['n']} calls after {args.warmup} warm-up)")  # fmt: skip
        print(f"{name:10s} single 1024-chr p50 {lg['p50']:.2f} ms  p95 {lg['p95']:.2f} ms  p99 {lg['p99']:.2f} ms  "
              f"mean {lg['mean']:.2f} ms  ({lg['n']} calls)")  # fmt: skip
        line = f"{name:10s} batch-32        {batch[name]:.0f} texts/s"
        if onnx:
            line += f" (one text per graph run); {padded[name]:.0f} texts/s padded batches of 32"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({
            "model": first.version, "format": manifest["format"], "artefact_bytes": size, "load_s": load_s,
            "reload_s": reload_s, "short": short, "long_1024": long, "batch32_texts_per_s": batch,
            "batch32_padded_texts_per_s": padded, "load_average": [load_before, load_after],
            "machine": f"{machine}, {os.cpu_count()} cpus",
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
