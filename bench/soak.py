"""A bounded soak of the local stack: POST /predict through the whole stack (API emulator, function
instances, DynamoDB stand-in, model server) for a fixed time, on loopback only, then the figures:

  - every answer must be a 200 (no error of any kind, no 5xx): each client changes user every 150
    requests, so the per-user limit (burst 200, 100/min) is never reached;
  - the resident memory (RSS) of every process of the stack is sampled every few seconds; after the
    warm-up, each process's RSS must stay within 10 % of its value at the end of the warm-up (a leak in
    the handler, the limiter's memory, the model server or moto shows as growth);
  - every text is new (a counter is appended), so every request reaches the model server and the predict
    function's answer cache fills up to its bounds (a cache that does not evict shows as growth).

Run: make soak (10 minutes), or .venv/bin/python bench/soak.py --seconds 120. Exit code 1 when a target
is missed."""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "local"), str(ROOT / "layers" / "core")]

from local_latency import SHIPPED_MODEL_DIR, TEXTS, start_stack  # noqa: E402
from local_stack.idp import load_or_create  # noqa: E402

FLAT_WITHIN = 0.10


@dataclass
class Memory:
    """RSS samples (bytes) per process of the stack, by pid."""

    names: dict[int, str] = field(default_factory=dict)
    samples: dict[int, list[tuple[float, int]]] = field(default_factory=dict)

    def sample(self, root: psutil.Process, now: float) -> None:
        for process in [root, *root.children(recursive=True)]:
            try:
                rss = process.memory_info().rss
                name = self.names.get(process.pid) or describe(process)
            except psutil.NoSuchProcess:
                continue
            self.names[process.pid] = name
            self.samples.setdefault(process.pid, []).append((now, rss))


def describe(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    for marker, name in (
        ("local_stack.model_server", "model server"),
        ("local_stack.dynamodb", "dynamodb (moto)"),
        ("resource_tracker", "multiprocessing resource tracker"),
        ("multiprocessing", "function instance"),
        ("local_stack serve", "API emulator"),
    ):
        if marker in command:
            return f"{name} (pid {process.pid})"
    return f"{command[:40]} (pid {process.pid})"


def growth(samples: list[tuple[float, int]], warm_until: float) -> tuple[int, int, float] | None:
    """(RSS at the end of the warm-up, the largest RSS after it, growth ratio); None if not sampled both."""
    after = [rss for t, rss in samples if t >= warm_until]
    before = [rss for t, rss in samples if t < warm_until]
    if not after or not before:
        return None
    base = before[-1]
    return base, max(after), max(after) / base - 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the memory baseline")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL_DIR)
    args = parser.parse_args()
    statuses: Counter[int] = Counter()
    memory = Memory()
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        process, api, _ = start_stack(args.model_dir, keys, Path(tmp) / "stack.log")
        idp = load_or_create(keys)
        root = psutil.Process(process.pid)
        started = time.monotonic()
        stop_at = started + args.seconds
        lock = threading.Lock()

        def client(c: int) -> None:
            with requests.Session() as session:
                i = 0
                while time.monotonic() < stop_at:
                    if i % 150 == 0:
                        token = idp.mint(sub=f"soak-{c}-{i // 150}")
                    try:
                        status = session.post(
                            f"{api}/predict",
                            json={"text": f"{TEXTS[(c + i) % len(TEXTS)]} (#{c}-{i})"},
                            headers={"authorization": f"Bearer {token}"},
                            timeout=10,
                        ).status_code
                    except requests.RequestException:
                        status = 0  # no answer at all
                    with lock:
                        statuses[status] += 1
                    i += 1

        try:
            threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(args.clients)]
            for thread in threads:
                thread.start()
            while time.monotonic() < stop_at:
                memory.sample(root, time.monotonic() - started)
                time.sleep(args.sample_every)
            for thread in threads:
                thread.join(timeout=15)
            memory.sample(root, time.monotonic() - started)
        finally:
            process.terminate()
            process.wait(timeout=30)
    total = sum(statuses.values())
    errors = total - statuses[200]
    fivexx = sum(n for status, n in statuses.items() if status >= 500)
    print(f"soak: {args.seconds:.0f} s, {args.clients} clients, {total} requests ({total / args.seconds:.0f} req/s)")
    print(f"statuses: {dict(statuses)}; errors {errors} (target 0), 5xx {fivexx} (target 0)")
    print(f"resident memory after the {args.warmup:.0f} s warm-up (target: each within {FLAT_WITHIN:.0%}):")
    print("| process | RSS at warm-up end | largest RSS after | growth |\n|---|---|---|---|")
    flat = True
    for pid, samples in sorted(memory.samples.items()):
        measured = growth(samples, args.warmup)
        if measured is None:
            print(f"| {memory.names[pid]} | - | - | not sampled before and after the warm-up |")
            continue
        base, peak, ratio = measured
        flat &= ratio <= FLAT_WITHIN
        print(f"| {memory.names[pid]} | {base / 2**20:.1f} MiB | {peak / 2**20:.1f} MiB | {ratio:+.1%} |")
    ok = errors == 0 and fivexx == 0 and flat
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
