"""Throughput and latency of the local API against the bare model server, measured in one run.

Starts the local stack (``python -m local_stack serve``: the API emulator, function instances in their own
processes, the model server and the DynamoDB stand-in in theirs), then, in this order, with every client
on its own keep-alive connection:

  bare model server  POST /endpoints/sentiment-local/invocations (the CSV body the predict function sends)
  local API          POST /predict with a real JWT (authorizer, handler, DynamoDB limiter, model server)

at 1 client (300 requests) and at 8 clients (800 requests), after a warm-up at 8 clients that starts the
function instances. Each client of the API uses its own user, and a new one every 150 requests, so the
per-user limit (burst 200) never turns this into a 429 benchmark. The predict function's answer cache is
off: the texts repeat, and with it on the API would answer them without a model call (the bare server cannot),
so the ratio would measure the cache rather than the path's overhead. Prints the table and the ratios the
issue sets: API throughput at 8 clients >= 0.5 x the bare model server's, API p50 at 1 client <= the bare
p50 + 4 ms, 0 errors. Run: make bench (or .venv/bin/python bench/throughput.py)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local"), str(ROOT / "layers" / "core")]

from local_latency import NO_ANSWER_CACHE, SHIPPED_MODEL_DIR, TEXTS, percentile, start_stack  # noqa: E402
from local_stack.idp import load_or_create  # noqa: E402
from sentiment_core import wire  # noqa: E402

ENDPOINT = "sentiment-local"


@dataclass
class Run:
    name: str
    clients: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def p50(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.50)

    @property
    def p95(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.95)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


Send = Callable[[requests.Session, int, int], int]  # (session, client, i) -> status


def drive(name: str, send: Send, clients: int, total: int) -> Run:
    per_client = total // clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[Counter[int]] = [Counter() for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(c: int) -> None:
        with requests.Session() as session:
            send(session, c, -1)  # open the connection outside the clock
            start.wait()
            for i in range(per_client):
                began = time.perf_counter()
                statuses[c][send(session, c, i)] += 1
                latencies[c].append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return Run(
        name, clients, per_client * clients, seconds, [x for xs in latencies for x in xs], sum(statuses, Counter())
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        process, api, model = start_stack(args.model_dir, keys, Path(tmp) / "stack.log", NO_ANSWER_CACHE)
        idp = load_or_create(keys)
        tokens: dict[tuple[str, int, int], str] = {}
        try:

            def bare(session: requests.Session, c: int, i: int) -> int:
                body = wire.encode_texts([TEXTS[(c + i) % len(TEXTS)]])
                response = session.post(
                    f"{model}/endpoints/{ENDPOINT}/invocations",
                    data=body,
                    headers={"content-type": wire.REQUEST_CONTENT_TYPE, "accept": wire.ACCEPT},
                    timeout=10,
                )
                return response.status_code

            def local_api(run: str) -> Send:
                def send(session: requests.Session, c: int, i: int) -> int:
                    key = (run, c, max(i, 0) // 150)
                    if key not in tokens:
                        tokens[key] = idp.mint(sub=f"bench-{run}-{c}-{key[2]}")
                    response = session.post(
                        f"{api}/predict",
                        json={"text": TEXTS[(c + i) % len(TEXTS)]},
                        headers={"authorization": f"Bearer {tokens[key]}"},
                        timeout=10,
                    )
                    return response.status_code

                return send

            drive("warm-up", local_api("warm"), 8, 160)
            drive("warm-up", bare, 8, 160)
            runs = [
                drive("bare model server", bare, 1, args.single),
                drive("local API", local_api("one"), 1, args.single),
                drive("bare model server", bare, 8, args.concurrent),
                drive("local API", local_api("eight"), 8, args.concurrent),
            ]
        finally:
            process.terminate()
            process.wait(timeout=30)
    print("throughput: bare model server vs local API (same run, this machine)")
    print("| what | clients | requests | req/s | p50 ms | p95 ms | errors |\n|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.name} | {r.clients} | {r.requests} | {r.rps:.0f} | {r.p50:.1f} | {r.p95:.1f} | {r.errors} |")
    bare1, api1, bare8, api8 = runs
    ratio, extra = api8.rps / bare8.rps, api1.p50 - bare1.p50
    print(f"API / bare throughput at 8 clients: {ratio:.2f} (target >= 0.5)")
    print(f"API p50 - bare p50 at 1 client: {extra:+.1f} ms (target <= +4 ms)")
    print(
        f"errors: {sum(r.errors for r in runs)} (target 0); statuses {dict(sum((r.statuses for r in runs), Counter()))}"
    )
    print(f"mean API latency at 8 clients {statistics.fmean(api8.latencies_ms):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
