"""Rows per second of a bulk job on the local stack, against the bare model server's batch throughput
measured in the same run.

Starts the local stack (``python -m local_stack serve``, the shipped model), then:

  model server  POST /endpoints/sentiment-local/invocations with 25 texts per call (the CSV body the worker
                sends), from as many threads as the jobs state machine scores chunks at once
                (JobMaxConcurrency, 4): the most the model can give a job
  job           POST /jobs, PUT the file to the presigned URL, POST /jobs/{id}/start, GET /jobs/{id} until
                it succeeded, GET the result: a CSV of --rows rows of real texts (the VADER test split,
                repeated to fill it), timed from the start request to SUCCEEDED (rows/s), and end to end
                (create to result downloaded)

Prints both, and the ratio (target: the job at least 0.7 x the model server). Run: make bench (or
.venv/bin/python bench/jobs.py)."""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local"), str(ROOT / "layers" / "core"), str(ROOT / "model")]

from batch import real_texts  # noqa: E402
from local_latency import SHIPPED_MODEL_DIR, start_stack  # noqa: E402
from local_stack.api import ENDPOINT_NAME  # noqa: E402
from local_stack.idp import load_or_create  # noqa: E402
from local_stack.template import parameter_defaults  # noqa: E402
from sentiment_core.wire import encode_texts  # noqa: E402

BATCH = 25
TARGET_RATIO = 0.7


def model_server_rows_per_s(model: str, texts: list[str], threads: int) -> float:
    bodies = [encode_texts(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    url = f"{model}/endpoints/{ENDPOINT_NAME}/invocations"
    headers = {"content-type": "text/csv", "accept": "application/json"}

    def send(chunk: list[bytes]) -> int:
        with requests.Session() as session:
            for body in chunk:
                response = session.post(url, data=body, headers=headers, timeout=60)
                response.raise_for_status()
        return len(chunk)

    send(bodies[:4])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, [bodies[i::threads] for i in range(threads)]))
    return len(texts) / (time.perf_counter() - started)


def job_file(texts: list[str], rows: int) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows([n, texts[n % len(texts)]] for n in range(rows))
    return buffer.getvalue().encode("utf-8")


def run_job(api: str, token: str, data: bytes) -> tuple[float, float, dict[str, object]]:
    """(seconds from start to SUCCEEDED, seconds from create to the result downloaded, the final job)."""
    headers = {"authorization": f"Bearer {token}"}
    began = time.perf_counter()
    job = requests.post(f"{api}/jobs", headers=headers, json={"input_format": "csv", "size_bytes": len(data)}).json()
    requests.put(job["upload"]["url"], data=data, headers=job["upload"]["headers"], timeout=120).raise_for_status()
    started = time.perf_counter()
    requests.post(f"{api}/jobs/{job['job_id']}/start", headers=headers, timeout=30).raise_for_status()
    while True:
        state = requests.get(f"{api}/jobs/{job['job_id']}", headers=headers, timeout=30).json()
        if state["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.25)
    done = time.perf_counter()
    if state["status"] == "SUCCEEDED":
        requests.get(state["result"]["url"], timeout=120).raise_for_status()
    return done - started, time.perf_counter() - began, state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the job's file")
    parser.add_argument("--model-texts", type=int, default=5_000, help="texts sent straight to the model server")
    args = parser.parse_args()
    texts = real_texts()
    concurrency = int(parameter_defaults()["JobMaxConcurrency"])
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        token = load_or_create(keys).mint(sub="bench-jobs")
        process, api, model = start_stack(args.model_dir, keys, Path(tmp) / "stack.log")
        try:
            bare = model_server_rows_per_s(model, (texts * 2)[: args.model_texts], concurrency)
            job_s, total_s, state = run_job(api, token, job_file(texts, args.rows))
        finally:
            process.terminate()
            process.wait(timeout=30)
    job_rate, ratio = args.rows / job_s, (args.rows / job_s) / bare
    print("\n## Bulk job vs the bare model server (local stack, one run)\n")
    print("| what | rows | rows/s |")
    print("|---|---:|---:|")
    print(f"| model server, 25 texts per call, {concurrency} threads | {args.model_texts} | {bare:.1f} |")
    print(f"| job: start to SUCCEEDED ({state['status']}) | {args.rows} | {job_rate:.1f} |")
    print(f"| job: create, upload, start, poll, download | {args.rows} | {args.rows / total_s:.1f} |")
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"\njob / model server: {ratio:.2f}x (target >= {TARGET_RATIO}x: {verdict})")
    return 0 if state["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
