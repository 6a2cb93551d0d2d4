"""statemachines/jobs.asl.json executed by moto's Step Functions interpreter (the Distributed Map included:
ItemReader from S3, MaxConcurrencyPath, child executions), with the unchanged worker handler in-process
against moto's DynamoDB and S3, and a scripted endpoint. The orders that hurt: an answer lost after a chunk
succeeded (the chunk runs twice), an endpoint busy for a while (retried), an endpoint down for good (the job
fails, nothing half-written is served), a refused file (the job fails, the execution does not)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from local_stack import template
from sentiment_api.errors import ModelUnavailable
from sentiment_jobs.store import QUEUED, Job, JobStore

from tests.helpers import load_function
from tests.statemachines.conftest import Execution, LambdaRuntime, deploy_function, run_state_machine, substitute
from tests.unit.jobs.conftest import ScriptedEndpoint

TABLE, BUCKET, WORKER = "sentiment-test-jobs", "sentiment-test-jobs-bucket", "sentiment-api-test-JobWorkerFunction"
OWNER = "owner-key"


@dataclass
class JobsWorld:
    runtime: LambdaRuntime
    endpoint: ScriptedEndpoint
    store: JobStore
    arn: str

    def job(self, job_id: str, data: bytes, input_format: str = "csv") -> Job:
        job = Job(OWNER, job_id, QUEUED, input_format, "text", 1, 4_000_000_000, endpoint_name="sentiment-test")
        self.store.create(job)
        boto3.client("s3").put_object(Bucket=BUCKET, Key=job.input_key, Body=data)
        return job

    def run(self, job: Job, max_concurrency: int = 3) -> Execution:
        definition = substitute(
            "jobs", {"WorkerFunctionArn": self.arn, "JobsBucket": BUCKET, "MaxConcurrency": str(max_concurrency)}
        )
        return run_state_machine(definition, f"jobs-{job.job_id[:8]}", {"owner": OWNER, "job_id": job.job_id})

    def status(self, job: Job) -> Job:
        found = self.store.get(OWNER, job.job_id)
        assert found is not None
        return found

    def result(self, job: Job) -> list[list[str]]:
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=job.result_key)["Body"].read().decode()
        return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch) -> JobsWorld:
    template.table("JobsTable").create(boto3.client("dynamodb"), TABLE)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    refs = {"JobsTable": TABLE, "JobsBucket": BUCKET}
    module = load_function("JobWorkerFunction", env={"JOB_CHUNK_ROWS": "25", "JOB_BACKOFF_S": "0"}, refs=refs)
    endpoint = ScriptedEndpoint()
    monkeypatch.setattr(module.worker, "endpoint_for", lambda name: endpoint)
    monkeypatch.setattr(module.worker, "sleep", lambda seconds: None)
    arn = deploy_function(aws, WORKER, module.lambda_handler)
    return JobsWorld(aws, endpoint, JobStore(boto3.client("dynamodb"), TABLE), arn)


def _csv(n: int) -> bytes:
    return ("text\n" + "".join(f"{['good', 'bad', 'so so'][i % 3]} {i}\n" for i in range(n))).encode()


def steps(runtime: LambdaRuntime) -> list[str]:
    return [f"{event['step']}:{outcome}" for event, outcome in runtime.calls_of(WORKER)]


def test_a_job_runs_through_the_distributed_map_in_order(world: JobsWorld) -> None:
    job = world.job("a" * 32, _csv(110))
    execution = world.run(job)
    assert execution.status == "SUCCEEDED", execution.history[-1]
    assert execution.states_entered[:3] == ["Configure", "Prepare", "InputAccepted"]
    assert execution.last_state == "Finish"
    scored = [event["chunk"] for event, outcome in world.runtime.calls_of(WORKER) if event["step"] == "score"]
    assert sorted(scored) == [0, 1, 2, 3, 4]  # 110 rows in chunks of 25, each once
    done = world.status(job)
    assert done.status == "SUCCEEDED" and done.rows_total == 110 and done.counts["positive"] == 37
    rows = world.result(job)
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 111))
    assert rows[1][1] == "positive" and rows[2][1] == "negative" and rows[3][1] == "neutral"


def test_a_chunk_whose_answer_was_lost_runs_twice_and_counts_once(world: JobsWorld) -> None:
    job = world.job("b" * 32, _csv(60))
    world.runtime.lost_answers[WORKER] = 0

    original = world.runtime.invoke

    def lose_first_score(backend: Any, name: str, *args: Any) -> bytes:
        event = json.loads(args[1] or "{}")
        if event.get("step") == "score" and event.get("chunk") == 1 and "lost" not in world.runtime.before:
            world.runtime.before["lost"] = lambda e: None
            world.runtime.lost_answers[WORKER] = 1
        return original(backend, name, *args)

    world.runtime.invoke = lose_first_score  # type: ignore[method-assign]
    execution = world.run(job)
    assert execution.status == "SUCCEEDED"
    outcomes = steps(world.runtime)
    assert "score:ok, answer lost" in outcomes
    done = world.status(job)
    assert done.rows_done == 60 and sum(done.counts.values()) == 60
    assert len(world.result(job)) == 61
    # the second run of the chunk read its scored object: the endpoint saw every text once
    assert sum(len(call) for call in world.endpoint.calls) == 60


def test_a_busy_endpoint_is_retried_and_the_job_succeeds(world: JobsWorld) -> None:
    job = world.job("c" * 32, _csv(30))
    world.endpoint.failures = [ModelUnavailable(retry_after_s=1) for _ in range(5)]  # 4 in-worker attempts, then 1
    execution = world.run(job)
    assert execution.status == "SUCCEEDED"
    assert "score:ModelUnavailable" in steps(world.runtime)
    assert world.runtime.retry_clock.waits  # Step Functions' Retry waited (recorded, not slept)
    assert world.status(job).status == "SUCCEEDED"


def test_an_endpoint_down_for_good_fails_the_job_and_the_execution(world: JobsWorld) -> None:
    job = world.job("d" * 32, _csv(30))
    world.endpoint.failures = [ModelUnavailable(retry_after_s=1) for _ in range(1000)]
    execution = world.run(job)
    assert execution.status == "FAILED" and execution.last_state == "JobFailed"
    # On AWS the map run fails at its first failed child (ToleratedFailurePercentage: 0, the default) and
    # Score's Catch goes to MarkFailed. moto's distributed map run reports success whatever its children did
    # (a divergence), so here Finish runs: it refuses a job whose scored chunks are missing (that check is
    # the point), and its Catch goes to MarkFailed. Either way no result is written and the job is FAILED.
    assert "MarkFailed" in execution.states_entered
    assert [outcome for event, outcome in world.runtime.calls_of(WORKER) if event["step"] == "finish"] in (
        [],
        ["ScoredChunkMissing"],
    )
    failed = world.status(job)
    assert failed.status == "FAILED" and failed.error is not None and failed.error.code == "JOB_FAILED"
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=job.result_key).get("KeyCount") == 0


def test_a_refused_file_fails_the_job_not_the_execution(world: JobsWorld) -> None:
    job = world.job("e" * 32, b"body\nhello\n")
    execution = world.run(job)
    assert execution.status == "SUCCEEDED" and execution.last_state == "InputRefused"
    failed = world.status(job)
    assert failed.status == "FAILED" and failed.error is not None and failed.error.code == "MISSING_TEXT_FIELD"
    assert world.endpoint.calls == []
