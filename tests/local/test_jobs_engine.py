"""The local jobs engine: it reads statemachines/jobs.asl.json (and refuses another shape), answers
StartExecution as Step Functions does, and runs prepare, the chunks (at most MaxConcurrency at once, each
retried as its Retry says), finish, or MarkFailed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from local_stack.instances import FunctionError
from local_stack.jobs_engine import DEFINITION, JobsDefinition, JobsEngine

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sentiment-api-jobs"
SUBSTITUTIONS = {"MaxConcurrency": "3", "WorkerFunctionArn": "worker", "JobsBucket": "bucket"}


class Worker:
    def __init__(self, chunks: int = 7, failures: dict[tuple[str, int | None], list[str]] | None = None) -> None:
        self.chunks, self.failures = chunks, failures or {}
        self.calls: list[tuple[str, Any]] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        step, chunk = event["step"], event.get("chunk")
        with self.lock:
            self.calls.append((step, chunk))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            pending = self.failures.get((step, chunk))
            if pending:
                raise FunctionError("scripted", error_type=pending.pop(0))
            if step == "prepare":
                return {"status": "RUNNING", "chunks": self.chunks}
            return {"status": "SUCCEEDED"}
        finally:
            with self.lock:
                self.running -= 1


def engine(worker: Worker) -> JobsEngine:
    return JobsEngine(JobsDefinition.load(SUBSTITUTIONS), worker, "worker", 900.0, ARN, sleep=lambda s: None)


def start(machine: JobsEngine, name: str = "j1", payload: str = '{"owner": "o", "job_id": "j1"}') -> tuple[int, dict]:
    return machine.start_execution({"stateMachineArn": ARN, "name": name, "input": payload})


def test_the_definition_is_read_and_another_shape_is_refused(tmp_path: Path) -> None:
    definition = JobsDefinition.load(SUBSTITUTIONS)
    assert definition.max_concurrency == 3 and "ModelUnavailable" in definition.score.errors
    changed = json.loads(DEFINITION.read_text())
    changed["States"]["Score"]["Next"] = "MarkFailed"
    (tmp_path / "jobs.asl.json").write_text(json.dumps(changed))
    with pytest.raises(ValueError, match="Score next"):
        JobsDefinition.load(SUBSTITUTIONS, tmp_path / "jobs.asl.json")


def test_a_job_runs_every_chunk_within_the_concurrency_then_finishes() -> None:
    worker = Worker()
    machine = engine(worker)
    assert start(machine)[0] == 200
    machine.join()
    steps = [step for step, _ in worker.calls]
    assert steps[0] == "prepare" and steps[-1] == "finish" and steps.count("score") == 7
    assert worker.most <= 3 and machine.executions["j1"].status == "SUCCEEDED"


def test_start_execution_is_idempotent_while_running_and_refuses_another_input() -> None:
    hold = threading.Event()
    worker = Worker()
    original = worker.__call__

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        hold.wait(5)
        return original(event, context)

    machine = JobsEngine(JobsDefinition.load(SUBSTITUTIONS), slow, "worker", 900.0, ARN, sleep=lambda s: None)
    first, again = start(machine), start(machine)
    assert first == again and first[0] == 200
    status, body = start(machine, payload='{"owner": "o", "job_id": "other"}')
    assert (status, body["__type"]) == (400, "ExecutionAlreadyExists")
    hold.set()
    machine.join()
    assert start(machine)[1]["__type"] == "ExecutionAlreadyExists"  # closed: as Step Functions answers
    assert [step for step, _ in worker.calls].count("prepare") == 1


def test_a_retried_error_is_retried_and_an_unlisted_one_marks_the_job_failed() -> None:
    worker = Worker(chunks=2, failures={("score", 1): ["ModelUnavailable", "ModelUnavailable"]})
    machine = engine(worker)
    start(machine)
    machine.join()
    assert worker.calls.count(("score", 1)) == 3 and machine.executions["j1"].status == "SUCCEEDED"

    worker = Worker(chunks=2, failures={("score", 0): ["ScoredChunkMissing"]})
    machine = engine(worker)
    start(machine)
    machine.join()
    assert ("finish", None) not in worker.calls and worker.calls[-1] == ("fail", None)
    assert machine.executions["j1"].status == "FAILED"


def test_retries_stop_after_max_attempts() -> None:
    definition = JobsDefinition.load(SUBSTITUTIONS)
    worker = Worker(chunks=1, failures={("score", 0): ["ModelTimeout"] * 50})
    machine = engine(worker)
    start(machine)
    machine.join()
    assert worker.calls.count(("score", 0)) == definition.score.max_attempts + 1
    assert machine.executions["j1"].status == "FAILED"
