"""End-to-end latency of the local stack: 1,000 sequential POST /predict over real HTTP with real JWTs
(HTTP API emulator -> JWT checks -> unchanged predict handler -> DynamoDB rate limiter (moto, its writes on
local_stack.dynamodb_fast_path) -> boto3 -> local model server -> model). Prints p50/p95/p99 and the status mix.

Each batch of 150 requests uses a new user (sub), so the per-user limit (100/min, burst 200) does not
turn the benchmark into a 429 benchmark. The answer cache is off (``NO_ANSWER_CACHE``): the six texts repeat, and
with it on every request after the first six would be answered without a model call, which measures the cache,
not the path (bench/batch.py measures the cache). Run: make bench (or .venv/bin/python bench/local_latency.py)."""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
#: The artefact `make run` serves; the stack benchmarks default to it.
SHIPPED_MODEL_DIR = ROOT / "model" / "artefacts" / "minilm-sentiment"
#: ``start_stack`` arguments that turn the predict function's answer cache off, so that every request of a
#: path benchmark reaches the model server.
NO_ANSWER_CACHE = ("--function-env", "PREDICTION_CACHE=off")
TEXTS = [
    "I absolutely love this product, the support team was wonderful!",
    "Terrible experience. The app crashes constantly and nobody answers my emails.",
    "The package was delivered on Tuesday.",
    "Not bad at all, though the battery could last longer.",
    "Worst purchase I have made this year.",
    "It works as described.",
]


def start_stack(
    model_dir: Path, keys_dir: Path, log: Path, extra_args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str, str]:
    """``python -m local_stack serve`` on free ports; (process, API URL, model server URL) once it is ready."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("local", "layers/core", "model"))}
    command = [sys.executable, "-m", "local_stack", "serve", "--port", "0", "--model-port", "0",
               "--model-dir", str(model_dir), "--keys-dir", str(keys_dir), *extra_args]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        api, model = re.search(r"^API: (http://\S+)", text, re.M), re.search(r"^MODEL: (http://\S+)", text, re.M)
        if api and model:
            return process, api.group(1), model.group(1)
        if process.poll() is not None:
            raise SystemExit(f"stack exited:\n{text}")
        time.sleep(0.1)
    raise SystemExit("stack did not start in 120 s")


def token(keys_dir: Path, sub: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("local", "layers/core"))}
    out = subprocess.run(
        [sys.executable, "-m", "local_stack", "token", "--sub", sub, "--keys-dir", str(keys_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        process, api, _ = start_stack(args.model_dir, keys, Path(tmp) / "stack.log", NO_ANSWER_CACHE)
        try:
            session = requests.Session()
            statuses: collections.Counter[int] = collections.Counter()
            latencies: list[float] = []
            headers: dict[str, str] = {}
            for i in range(args.warmup + args.requests):
                if i % 150 == 0:
                    headers = {
                        "Authorization": f"Bearer {token(keys, f'bench-user-{i // 150}')}",
                        "content-type": "application/json",
                    }
                started = time.perf_counter()
                response = session.post(
                    f"{api}/predict", json={"text": TEXTS[i % len(TEXTS)]}, headers=headers, timeout=10
                )
                elapsed = (time.perf_counter() - started) * 1000
                if i >= args.warmup:
                    latencies.append(elapsed)
                    statuses[response.status_code] += 1
            latencies.sort()
            print(f"local stack, {args.requests} sequential POST /predict (model {args.model_dir.name}):")
            print(
                f"  p50 {percentile(latencies, 0.50):.1f} ms  p95 {percentile(latencies, 0.95):.1f} ms  "
                f"p99 {percentile(latencies, 0.99):.1f} ms  mean {statistics.fmean(latencies):.1f} ms  "
                f"max {latencies[-1]:.1f} ms"
            )
            print(f"  statuses: {dict(statuses)}")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
