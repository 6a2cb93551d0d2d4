"""Texts per second through the local API: single POST /predict against POST /predict/batch, and what the
answer cache does to a stream with repeated texts, measured in one run on one local stack.

Starts the local stack (``python -m local_stack serve``, the shipped model), warms it up, then with one
client on one keep-alive connection:

  single      POST /predict, one text per request                                  (--single texts)
  batch       POST /predict/batch, 25 texts per request                            (--batch texts)
  repeated    POST /predict/batch, 25 per request, 30 % of the texts repeating a text sent earlier in
              the stream (--stream texts): once on this stack (cache on), once on a second stack started
              with --function-env PREDICTION_CACHE=off

Every text of single and batch is a different real text (the VADER test split, which `make model` builds),
so the cache answers none of them: single vs batch compares the request path alone. The two runs of the
stream differ only in the cache, so their ratio is the cache's effect. Each
run uses its own users, renewed before the per-user burst (200 requests) runs out, so no run becomes a 429
benchmark. Prints texts/s, the batch/single ratio (target: at least 4) and the cache's effect.
Run: make bench (or .venv/bin/python bench/batch.py)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local"), str(ROOT / "layers" / "core"), str(ROOT / "model")]

from local_latency import SHIPPED_MODEL_DIR, start_stack  # noqa: E402
from local_stack.idp import load_or_create  # noqa: E402

BATCH = 25
REQUESTS_PER_USER = 150  # below the burst of 200
REPEAT_SHARE = 0.30
TARGET_RATIO = 4.0
DATASET = ROOT / ".cache" / "data" / "vader_icwsm2014.csv"


@dataclass
class Result:
    name: str
    texts: int
    requests: int
    seconds: float
    statuses: Counter[int]

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds


def real_texts() -> list[str]:
    from sentiment_model.data import read_dataset_csv, split_examples

    if not DATASET.exists():
        raise SystemExit(f"{DATASET} is missing: run `make model` first")
    _, test = split_examples(read_dataset_csv(DATASET))
    texts = sorted({ex.text for ex in test if ex.text.strip() and len(ex.text) <= 1024})
    random.Random(12).shuffle(texts)
    return texts


def with_repeats(fresh: Iterator[str], n: int, share: float, seed: int = 5) -> list[str]:
    """``n`` texts, ``share`` of them repeating an earlier text of the stream (templated answers, "Thanks!")."""
    rng, stream = random.Random(seed), [next(fresh)]
    while len(stream) < n:
        stream.append(rng.choice(stream) if rng.random() < share else next(fresh))
    return stream


def drive(name: str, api: str, users: Callable[[], str], payloads: list[tuple[str, str, int]]) -> Result:
    """Sends ``payloads`` ((path, JSON body, texts in it)) one after the other on one connection."""
    statuses: Counter[int] = Counter()
    session, token, sent_as_user = requests.Session(), users(), 0
    started = time.perf_counter()
    for path, body, _ in payloads:
        if sent_as_user == REQUESTS_PER_USER:
            token, sent_as_user = users(), 0
        response = session.post(
            f"{api}{path}",
            data=body.encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
            timeout=30,
        )
        statuses[response.status_code] += 1
        sent_as_user += 1
    seconds = time.perf_counter() - started
    session.close()
    return Result(name, sum(n for *_, n in payloads), len(payloads), seconds, statuses)


def singles(texts: list[str]) -> list[tuple[str, str, int]]:
    import json

    return [("/predict", json.dumps({"text": t}), 1) for t in texts]


def batches(texts: list[str]) -> list[tuple[str, str, int]]:
    import json

    return [
        ("/predict/batch", json.dumps({"texts": texts[i : i + BATCH]}), len(texts[i : i + BATCH]))
        for i in range(0, len(texts), BATCH)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--single", type=int, default=400, help="texts sent one per request")
    parser.add_argument("--batch", type=int, default=1000, help="texts sent 25 per request")
    parser.add_argument("--stream", type=int, default=1000, help="texts of each cache stream")
    args = parser.parse_args()
    pool = iter(real_texts())
    warmup = [next(pool) for _ in range(50)]
    single_texts = [next(pool) for _ in range(args.single)]
    batch_texts = [next(pool) for _ in range(args.batch)]
    repeated = with_repeats(pool, args.stream, REPEAT_SHARE)
    repeats = args.stream - len(set(repeated))
    share = f"{repeats / args.stream:.0%}"

    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        idp = load_or_create(keys)
        counter = iter(range(1_000_000))

        def users() -> str:
            return idp.mint(sub=f"bench-batch-{next(counter)}")

        cache_on = [
            ("single /predict", singles(single_texts)),
            ("/predict/batch (25 per request)", batches(batch_texts)),
            (f"stream with {share} repeats, cache on", batches(repeated)),
        ]
        cache_off = [(f"stream with {share} repeats, cache off", batches(repeated))]
        results = []
        for extra, runs in (((), cache_on), (("--function-env", "PREDICTION_CACHE=off"), cache_off)):
            process, api, _ = start_stack(args.model_dir, keys, Path(tmp) / "stack.log", extra)
            try:
                drive("warm-up", api, users, singles(warmup[:25]) + batches(warmup[25:]))
                results += [drive(name, api, users, payloads) for name, payloads in runs]
            finally:
                process.terminate()
                process.wait(timeout=30)

    print("\n## Batch vs single, and the answer cache (local stack, 1 client, one run)\n")
    print("| run | texts | requests | texts/s | statuses |")
    print("|---|---:|---:|---:|---|")
    for r in results:
        print(f"| {r.name} | {r.texts} | {r.requests} | {r.texts_per_s:.1f} | {dict(r.statuses)} |")
    single, batch, cached, uncached = results
    ratio, effect = batch.texts_per_s / single.texts_per_s, cached.texts_per_s / uncached.texts_per_s
    errors = sum(n for r in results for status, n in r.statuses.items() if status != 200)
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"\nbatch / single: {ratio:.2f}x (target >= {TARGET_RATIO:.0f}x: {verdict})")
    print(f"cache: a stream with {repeats} repeats in {args.stream} texts runs {effect:.2f}x as fast with the cache on")
    print(f"non-200 answers: {errors}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
