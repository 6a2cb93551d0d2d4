"""The jobs API and worker functions in-process, in one moto account (tables and bucket as the template
defines them), with a scripted endpoint behind the worker. Shared by the jobs unit tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest
from local_stack import template
from moto import mock_aws
from sentiment_api.deadline import Deadline
from sentiment_core.wire import Prediction

from tests.helpers import TEST_REFS, FakeContext, create_rate_limit_table, function_env, load_event, load_function

REFS = {name: TEST_REFS[name] for name in ("JobsTable", "JobsBucket", "JobsStateMachine")}


@dataclass
class ScriptedEndpoint:
    """A SentimentEndpoint: a label from the text's first word (good/bad/else), failures on demand."""

    calls: list[list[str]] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)  # raised by the next calls, in order
    model_version: str = "model-v1"

    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
        (answer,) = self.classify_batch([text], correlation_id, deadline)
        return answer

    def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
        self.calls.append(list(texts))
        if self.failures:
            raise self.failures.pop(0)
        return [self._label(text) for text in texts]

    def _label(self, text: str) -> Prediction:
        word = text.split()[0].lower() if text.split() else ""
        label = {"good": "positive", "bad": "negative"}.get(word, "neutral")
        scores = {"negative": 0.1, "neutral": 0.1, "positive": 0.1} | {label: 0.8}
        return Prediction(label, scores, self.model_version)


@dataclass
class JobsWorld:
    api: ModuleType
    worker_module: ModuleType
    endpoint: ScriptedEndpoint
    s3: Any
    sfn: Any
    executions: list[dict[str, Any]]

    def request(
        self, method: str, path: str, body: Any = None, sub: str = "alice", iss: str | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        event = api_event(method, path, body, sub, iss)
        response = self.api.lambda_handler(event, FakeContext())
        return response["statusCode"], json.loads(response["body"]), response["headers"]

    def upload(self, job: dict[str, Any], data: bytes) -> None:
        key = f"jobs/{job['job_id']}/input"
        self.s3.put_object(Bucket=REFS["JobsBucket"], Key=key, Body=data)

    def run(self, job_id: str) -> dict[str, Any]:
        """What the state machine does for a started job (the definition itself runs in
        tests/statemachines/test_jobs_execution.py): prepare, score each chunk, finish."""
        started = [e for e in self.executions if json.loads(e["input"])["job_id"] == job_id]
        payload = json.loads(started[-1]["input"])
        handler = self.worker_module.lambda_handler
        prepared = handler({"step": "prepare", **payload}, FakeContext())
        if prepared["status"] == "FAILED":
            return prepared
        for chunk in range(prepared["chunks"]):
            handler({"step": "score", **payload, "chunk": chunk}, FakeContext())
        return handler({"step": "finish", **payload}, FakeContext())

    def result(self, job: dict[str, Any]) -> bytes:
        key = f"jobs/{job['job_id']}/result.{job['input_format']}"
        return bytes(self.s3.get_object(Bucket=REFS["JobsBucket"], Key=key)["Body"].read())


def api_event(method: str, path: str, body: Any, sub: str, iss: str | None) -> dict[str, Any]:
    event = copy.deepcopy(load_event("predict-positive"))
    route = path
    parts = path.strip("/").split("/")
    parameters = {}
    if len(parts) >= 2:
        parameters = {"job_id": parts[1]}
        route = "/jobs/{job_id}" + ("/start" if len(parts) == 3 else "")
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    if iss is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["iss"] = iss
    if parameters:
        event["pathParameters"] = parameters
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


@pytest.fixture
def jobs_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsWorld]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        api_env = function_env("JobsFunction", REFS)
        create_rate_limit_table(dynamodb, api_env["RATE_LIMIT_TABLE_NAME"])
        template.table("JobsTable").create(dynamodb, REFS["JobsTable"])
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=REFS["JobsBucket"])
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        executions: list[dict[str, Any]] = []
        api = load_function("JobsFunction", refs=REFS)
        worker_module = load_function(
            "JobWorkerFunction", env={"JOB_CHUNK_ROWS": "30", "JOB_BACKOFF_S": "0"}, refs=REFS
        )
        endpoint = ScriptedEndpoint()
        monkeypatch.setattr(worker_module.worker, "endpoint_for", lambda name: endpoint)
        monkeypatch.setattr(worker_module.worker, "sleep", lambda seconds: None)

        def start_execution(**kwargs: Any) -> dict[str, Any]:
            if any(e["name"] == kwargs["name"] for e in executions):
                if any(e["name"] == kwargs["name"] and e["input"] != kwargs["input"] for e in executions):
                    raise sfn.exceptions.ExecutionAlreadyExists(
                        {"Error": {"Code": "ExecutionAlreadyExists", "Message": "exists"}}, "StartExecution"
                    )
            executions.append(kwargs)
            return {"executionArn": f"{kwargs['stateMachineArn']}:{kwargs['name']}", "startDate": 0}

        monkeypatch.setattr(api.jobs._sfn, "start_execution", start_execution)
        yield JobsWorld(api, worker_module, endpoint, s3, sfn, executions)
