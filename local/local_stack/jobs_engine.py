"""A local Step Functions for the bulk jobs state machine (statemachines/jobs.asl.json): the one call the jobs
API function makes (``StartExecution``, the JSON 1.0 protocol botocore speaks, at AWS_ENDPOINT_URL_SFN), and
the executions, run by the unchanged worker handler in its own processes (a FunctionPool, as Lambda runs it).

It follows the definition instead of interpreting ASL: ``JobsDefinition.load`` reads the states it relies on
(Configure's MaxConcurrency, the tasks' ``step`` payloads, each task's Retry, the Map's ToleratedFailure and
Catch) and refuses a definition of another shape, so a change of the state machine that this engine does
not follow breaks the local stack and its tests rather than passing unnoticed. The definition itself runs
under moto's Step Functions interpreter in tests/statemachines/test_jobs_execution.py.

What it does per execution, as the definition says: Prepare; when the worker refused the file, stop
(succeeded); else score every chunk of the manifest, at most MaxConcurrency at once, each retried per
its Retry; the first chunk that still fails stops new ones (ToleratedFailurePercentage 0); then Finish;
any task that still fails runs MarkFailed. Retry waits are the definition's, times RETRY_SCALE (locally
a retry waits a tenth of the cloud's interval).

StartExecution semantics are Step Functions' (Standard): the same name and input as a running execution
answers that execution again; a closed one, or another input, is ``ExecutionAlreadyExists`` (400)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import REPO_ROOT
from .instances import FunctionError
from .lambda_context import ACCOUNT_ID, REGION, new_context
from .runtime import Handler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

DEFINITION = REPO_ROOT / "statemachines" / "jobs.asl.json"
RETRY_SCALE = 0.1
_TARGET = "AWSStepFunctions."


@dataclass(frozen=True, slots=True)
class Retry:
    errors: frozenset[str]
    interval_s: float
    max_attempts: int
    backoff_rate: float
    max_delay_s: float | None

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> Retry:
        rules = state.get("Retry") or []
        if len(rules) != 1:
            raise ValueError(f"expected one Retry rule, found {len(rules)}")
        (rule,) = rules
        return cls(
            frozenset(rule["ErrorEquals"]),
            float(rule.get("IntervalSeconds", 1)),
            int(rule.get("MaxAttempts", 3)),
            float(rule.get("BackoffRate", 2.0)),
            float(rule["MaxDelaySeconds"]) if "MaxDelaySeconds" in rule else None,
        )

    def retries(self, error_type: str) -> bool:
        return "States.ALL" in self.errors or error_type in self.errors

    def wait_s(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1-based), before jitter (the engine does not jitter)."""
        wait_s = self.interval_s * self.backoff_rate ** (retry - 1)
        return min(wait_s, self.max_delay_s) if self.max_delay_s is not None else wait_s


@dataclass(frozen=True, slots=True)
class JobsDefinition:
    max_concurrency: int
    prepare: Retry
    score: Retry
    finish: Retry
    mark_failed: Retry

    @classmethod
    def load(cls, substitutions: Mapping[str, str], path: Path = DEFINITION) -> JobsDefinition:
        text = re.sub(r"\$\{(\w+)\}", lambda m: substitutions[m.group(1)], path.read_text("utf-8"))
        states = json.loads(text)["States"]
        try:
            return cls._read(states)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path.name} is not the shape the local jobs engine follows: {exc}") from None

    @classmethod
    def _read(cls, states: Mapping[str, Any]) -> JobsDefinition:
        configure = states["Configure"]
        concurrency = re.fullmatch(r"States\.StringToJson\('(\d+)'\)", configure["Parameters"]["max_concurrency.$"])
        if concurrency is None or configure["Next"] != "Prepare":
            raise ValueError("Configure must set max_concurrency and go to Prepare")
        score_map = states["Score"]
        processor = score_map["ItemProcessor"]
        chunk_task = processor["States"][processor["StartAt"]]
        expected = {
            "Prepare payload": (states["Prepare"]["Parameters"]["Payload"]["step"], "prepare"),
            "Prepare next": (states["Prepare"]["Next"], "InputAccepted"),
            "refused": (states["InputAccepted"]["Choices"][0]["StringEquals"], "FAILED"),
            "accepted": (states["InputAccepted"]["Default"], "Score"),
            "Score items": (score_map["ItemSelector"]["step"], "score"),
            "Score payload": (chunk_task["Parameters"]["Payload.$"], "$"),
            "Score concurrency": (score_map["MaxConcurrencyPath"], "$.max_concurrency"),
            "Score tolerance": (score_map.get("ToleratedFailurePercentage", 0), 0),  # the default: none
            "Score next": (score_map["Next"], "Finish"),
            "Finish payload": (states["Finish"]["Parameters"]["Payload"]["step"], "finish"),
            "MarkFailed payload": (states["MarkFailed"]["Parameters"]["Payload"]["step"], "fail"),
            "MarkFailed next": (states[states["MarkFailed"]["Next"]]["Type"], "Fail"),
        }
        for what, (found, want) in expected.items():
            if found != want:
                raise ValueError(f"{what} is {found!r}, expected {want!r}")
        for name in ("Prepare", "Score", "Finish"):
            if states[name]["Catch"][0]["Next"] != "MarkFailed":
                raise ValueError(f"{name} must catch into MarkFailed")
        return cls(
            max_concurrency=int(concurrency.group(1)),
            prepare=Retry.of(states["Prepare"]),
            score=Retry.of(chunk_task),
            finish=Retry.of(states["Finish"]),
            mark_failed=Retry.of(states["MarkFailed"]),
        )


class TaskFailed(Exception):
    def __init__(self, error_type: str) -> None:
        super().__init__(error_type)
        self.error_type = error_type


@dataclass
class Execution:
    arn: str
    name: str
    input: str
    started_at: float
    status: str = "RUNNING"  # RUNNING, SUCCEEDED, FAILED


class JobsEngine:
    """StartExecution over HTTP (``__call__`` is the WSGI app) and the executions, each in its own thread."""

    def __init__(
        self,
        definition: JobsDefinition,
        invoke: Handler,
        function_name: str,
        timeout_s: float,
        state_machine_arn: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.definition = definition
        self._invoke = invoke
        self._function_name = function_name
        self._timeout_s = timeout_s
        self._arn = state_machine_arn
        self._sleep = sleep
        self._lock = threading.Lock()
        self.executions: dict[str, Execution] = {}
        self._threads: list[threading.Thread] = []

    # ---- the API --------------------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            return _answer(start_response, 400, {"__type": "SerializationException", "message": "not JSON"})
        if target != _TARGET + "StartExecution":
            return _answer(start_response, 400, {"__type": "UnknownOperationException", "message": target[:64]})
        status, body = self.start_execution(request)
        return _answer(start_response, status, body)

    def start_execution(self, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if request.get("stateMachineArn") != self._arn:
            return 400, {"__type": "StateMachineDoesNotExist", "message": "State Machine Does Not Exist"}
        name, payload = str(request.get("name", "")), str(request.get("input", "{}"))
        with self._lock:
            execution = self.executions.get(name)
            if execution is not None:
                if execution.status == "RUNNING" and execution.input == payload:
                    return 200, self._started(execution)
                return 400, {"__type": "ExecutionAlreadyExists", "message": f"Execution Already Exists: {name}"}
            arn = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{self._arn.rsplit(':', 1)[1]}:{name}"
            execution = Execution(arn, name, payload, time.time())
            self.executions[name] = execution
            thread = threading.Thread(target=self._run, args=(execution,), name=f"job:{name}", daemon=True)
            self._threads.append(thread)
        thread.start()
        return 200, self._started(execution)

    @staticmethod
    def _started(execution: Execution) -> dict[str, Any]:
        return {"executionArn": execution.arn, "startDate": execution.started_at}

    def join(self, timeout_s: float = 30.0) -> None:
        for thread in list(self._threads):
            thread.join(timeout=timeout_s)

    # ---- an execution ---------------------------------------------------------------------------------------
    def _run(self, execution: Execution) -> None:
        job = json.loads(execution.input)
        job = {"owner": job["owner"], "job_id": job["job_id"]}
        try:
            prepared = self._task({"step": "prepare", **job}, self.definition.prepare)
            if prepared.get("status") != "FAILED":
                self._score_all(job, int(prepared["chunks"]))
                self._task({"step": "finish", **job}, self.definition.finish)
        except TaskFailed as failure:
            log.warning("job %s: a task failed (%s); marking the job failed", job["job_id"], failure.error_type)
            try:
                error = {"Error": failure.error_type, "Cause": "local jobs engine"}
                self._task({"step": "fail", **job, "error": error}, self.definition.mark_failed)
            except TaskFailed:
                log.error("job %s: MarkFailed failed too", job["job_id"])
            execution.status = "FAILED"
            return
        except Exception:  # a bug of the engine: the execution fails, the stack goes on
            log.exception("job %s: the local engine failed", job["job_id"])
            execution.status = "FAILED"
            return
        execution.status = "SUCCEEDED"

    def _score_all(self, job: Mapping[str, Any], chunks: int) -> None:
        stop = threading.Event()

        def score(chunk: int) -> None:
            if not stop.is_set():  # once a chunk failed for good, no new chunk starts
                self._task({"step": "score", **job, "chunk": chunk}, self.definition.score)

        with ThreadPoolExecutor(self.definition.max_concurrency, thread_name_prefix="chunk") as pool:
            futures = [pool.submit(score, chunk) for chunk in range(chunks)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f.exception() for f in done if f.exception() is not None]
            if failed:
                stop.set()
                wait(futures)
                raise failed[0]  # type: ignore[misc]

    def _task(self, payload: dict[str, Any], retry: Retry) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                result: dict[str, Any] = self._invoke(payload, new_context(self._function_name, self._timeout_s))
                return result
            except FunctionError as exc:
                error_type = exc.error_type
            if attempt >= retry.max_attempts + 1 or not retry.retries(error_type):
                raise TaskFailed(error_type)
            self._sleep(retry.wait_s(attempt) * RETRY_SCALE)
            attempt += 1


def _answer(start_response: StartResponse, status: int, body: Mapping[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Bad Request"
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))]
    start_response(f"{status} {reason}", headers)
    return [data]
