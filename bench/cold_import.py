"""Cold import cost of the predict function (what a Lambda cold start pays before the first request).

Each sample imports functions/predict/app.py in a fresh interpreter, as Lambda's init phase does, and
reports the median and p95 of N runs, plus the biggest contributors from `python -X importtime`.
Run: make bench-cold (or .venv/bin/python bench/cold_import.py [runs])."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "PYTHONPATH": str(ROOT / "local"),
    "SAGEMAKER_ENDPOINT_NAME": "bench",
    "STAGE": "bench",
    "RATE_LIMIT_TABLE_NAME": "bench-rate-limits",
    "POWERTOOLS_SERVICE_NAME": "sentiment-api",
    "POWERTOOLS_METRICS_NAMESPACE": "SentimentApi",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "PYTHONDONTWRITEBYTECODE": "0",
    # Set by the Lambda runtime. The X-Ray SDK reads it at import: outside Lambda it builds a centralized
    # sampler with two botocore X-Ray clients (about 250 ms here) that a Lambda function never creates.
    "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "predict"),
}
# The handler is imported the way the Lambda runtime does it (local_stack.runtime: its code folder and its
# layers on sys.path, as template.yaml says); the template is read before the clock starts.
SNIPPET = (
    "import time; from local_stack import runtime, template; f=template.functions()['PredictFunction'];"
    "t=time.perf_counter(); runtime.import_module(f); print((time.perf_counter()-t)*1000)"
)


def sample(extra: dict[str, str]) -> float:
    env = {**os.environ, **ENV, **extra}
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def top_imports(extra: dict[str, str], n: int = 8) -> list[tuple[int, str]]:
    env = {**os.environ, **ENV, **extra}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", SNIPPET], env=env, capture_output=True, text=True, check=True
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1].strip()), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    sample({})  # warm the bytecode cache, as a deployed package ships .pyc-able code
    for label, extra in (
        ("tracing enabled (as deployed)", {}),
        ("tracing disabled (POWERTOOLS_TRACE_DISABLED)", {"POWERTOOLS_TRACE_DISABLED": "true"}),
    ):
        times = sorted(sample(extra) for _ in range(runs))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(
            f"handler cold import, {label}: median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms "
            f"(n={runs}, {sys.version.split()[0]})"
        )
    print("largest cumulative imports (us):")
    for micros, name in top_imports({}):
        print(f"  {micros:>8}  {name}")


if __name__ == "__main__":
    main()
