"""Harness for executing the ASL definitions under moto (stepfunctions ``execute_state_machine``).

What runs for real: the definitions from statemachines/*.asl.json (with test DefinitionSubstitutions), moto's
Step Functions interpreter (Wait/Choice/Map/Retry/Catch, intrinsic functions, aws-sdk and optimised
integrations), moto's SageMaker/S3/SNS/SQS/CloudFormation backends, and the unchanged Lambda handlers under
functions/, invoked in-process by an emulated Lambda runtime (moto's docker-less Lambda backend returns a
canned payload, so its ``invoke`` is replaced by one that imports and calls the real handler, and reports an
exception the way the Python runtime does: ``FunctionError: Unhandled`` with ``errorType``/``errorMessage``).

Two moto divergences are corrected: moto's context object holds ``$$.Execution.StartTime`` as a datetime
object, AWS as an ISO 8601 string (``2026-01-05T03:00:00.123Z``); the harness gives the definitions the string.
And AWS SDK integrations take PascalCase parameters and answer PascalCase fields even for a camelCase API
(Step Functions' own: ``StateMachineArn`` in, ``Executions[*].ExecutionArn`` out); moto passes them through
unchanged, so for the ``sfn`` service the harness converts them with the API's model, as AWS does.

What is scripted: time, and what fails when.
- :class:`SageMakerClock`: moto's SageMaker creates AutoML jobs ``InProgress`` forever, endpoints and
  processing jobs already finished; it wraps the three Describe calls so that a resource reports an
  in-between status for the first polls and then the outcome the test chose (Completed with a best
  candidate, Failed with a reason, ...), by setting the fields on moto's own objects, as SageMaker would.
- :class:`StackClock`: moto applies an UpdateStack at once and records no ClientRequestToken; it makes an
  update run for a number of DescribeStacks answers (the canary), end as completed or rolled back, carry its
  token on every event, and lets a test start other operations (a `sam deploy`, a code release's canary).
- :class:`RetryClock`: the interpreter's Retry waits are recorded, not slept (a 60 s backoff takes no time).
- :class:`LambdaRuntime` ``lost_answers``: an invocation whose function ran but whose answer the
  integration reports as ``Lambda.ServiceException`` (what makes Step Functions run a task twice);
  ``timeouts``: one whose function ran (its calls went out) but which then reports ``Sandbox.Timedout``, as
  the Lambda runtime does for a function that ran past its Timeout.
- :class:`StackClock` ``event_lag_reads``: DescribeStackEvents lags UpdateStack (a release's first events
  are not listed yet); ``unreadable_reads``: DescribeStacks throttled for a number of calls.
"""

from __future__ import annotations

import json
import re
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.session import get_session
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import CloudFormationBackend, Stack, cloudformation_backends
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.exceptions import JsonRESTError
from moto.sagemaker.models import AutoMLJob, SageMakerModelBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from tests.helpers import FakeContext

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINES = ROOT / "statemachines"
REGION = "us-east-1"
ACCOUNT = "123456789012"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


def substitute(name: str, values: Mapping[str, str]) -> str:
    """statemachines/<name>.asl.json with ${Key} replaced, as CloudFormation's DefinitionSubstitutions do;
    every placeholder must have a value."""
    text = (STATEMACHINES / f"{name}.asl.json").read_text("utf-8")
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    assert not missing, f"no test value for {missing}"
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def placeholders(name: str) -> set[str]:
    return set(_PLACEHOLDER.findall((STATEMACHINES / f"{name}.asl.json").read_text("utf-8")))


# ---- the Lambda runtime (the handlers are loaded by tests.helpers.load_function) ---------------------------
class AnswerLost(JsonRESTError):
    """Lambda's 500 ServiceException, after the function ran: Step Functions sees Lambda.ServiceException."""

    code = 500

    def __init__(self) -> None:
        super().__init__("ServiceException", "the function ran, but its answer was lost (simulated)")


@dataclass
class RetryClock:
    """The interpreter's Retry waits (IntervalSeconds x BackoffRate^n, jittered): recorded, not slept."""

    waits: list[float] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=self.waits.append))


@dataclass
class LambdaRuntime:
    """Function name -> handler; what moto's Lambda invoke dispatches to. Records every invocation.

    ``before``: called with the event before the handler (a test holds an execution there);
    ``lost_answers``: how many of a function's next invocations run but answer Lambda.ServiceException."""

    handlers: dict[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any, str]] = field(default_factory=list)  # (function, event, outcome)
    results: list[tuple[str, Any]] = field(default_factory=list)  # (function, what the handler returned)
    before: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    lost_answers: dict[str, int] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)
    retry_clock: RetryClock = field(default_factory=RetryClock)

    def calls_of(self, function: str) -> list[tuple[Any, str]]:
        return [(event, outcome) for name, event, outcome in self.calls if name == function]

    def invoke(
        self,
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = function_name.split(":function:")[-1].split(":")[0]
        backend.get_function(name)  # an unknown function fails like on AWS
        event = json.loads(body or "{}")
        if name in self.before:
            self.before[name](event)
        try:
            result = self.handlers[name](event, FakeContext())
        except Exception as exc:  # the Python runtime's unhandled-error answer
            self.calls.append((name, event, type(exc).__name__))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
            ).encode()
        self.results.append((name, result))
        if self.timeouts.get(name, 0) > 0:  # it ran, and then ran out of time before it answered
            self.timeouts[name] -= 1
            self.calls.append((name, event, "ok, then timed out"))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": "RequestId: 1 Error: Task timed out after 30.00 seconds",
                }
            ).encode()
        if self.lost_answers.get(name, 0) > 0:
            self.lost_answers[name] -= 1
            self.calls.append((name, event, "ok, answer lost"))
            raise AnswerLost()
        self.calls.append((name, event, "ok"))
        return json.dumps(result).encode()


# ---- simulated SageMaker progress ---------------------------------------------------------------------
@dataclass
class Outcome:
    status: str
    after: int = 2  # the outcome shows from this describe call on (earlier ones: the in-between status)
    failure_reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class SageMakerClock:
    automl: Outcome | None = None
    endpoint: Outcome | None = None  # for the endpoints a run creates (None: as moto says, InService)
    processing: Outcome | None = None
    describes: dict[str, int] = field(default_factory=dict)

    def _tick(self, key: str) -> int:
        self.describes[key] = self.describes.get(key, 0) + 1
        return self.describes[key]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        clock = self
        original_automl = AutoMLJob.describe
        original_endpoint = SageMakerModelBackend.describe_endpoint
        original_processing = SageMakerModelBackend.describe_processing_job

        def automl_describe(job: AutoMLJob) -> dict[str, Any]:
            n = clock._tick(f"automl:{job.auto_ml_job_name}")
            if clock.automl and n >= clock.automl.after and job.auto_ml_job_status == "InProgress":
                job.auto_ml_job_status = clock.automl.status
                job.auto_ml_job_secondary_status = clock.automl.fields.get("secondary_status", clock.automl.status)
                if clock.automl.failure_reason:
                    job.failure_reason = clock.automl.failure_reason
                if "best_candidate" in clock.automl.fields:
                    job.best_candidate = clock.automl.fields["best_candidate"]
            description = original_automl(job)
            if not job.failure_reason:
                description.pop("FailureReason", None)  # SageMaker omits it unless the job failed
            return description

        def endpoint_describe(backend: SageMakerModelBackend, endpoint_name: str) -> dict[str, Any]:
            outcome = clock.endpoint
            if outcome and endpoint_name in backend.endpoints:
                n = clock._tick(f"endpoint:{endpoint_name}")
                endpoint = backend.endpoints[endpoint_name]
                endpoint.endpoint_status = outcome.status if n >= outcome.after else "Creating"
                endpoint.failure_reason = outcome.failure_reason if n >= outcome.after else None  # type: ignore[assignment]
            return original_endpoint(backend, endpoint_name)

        def processing_describe(backend: SageMakerModelBackend, name: str) -> dict[str, Any]:
            if clock.processing and name in backend.processing_jobs:
                n = clock._tick(f"processing:{name}")
                job = backend.processing_jobs[name]
                if job.processing_job_status != "Stopped":
                    job.processing_job_status = clock.processing.status if n >= clock.processing.after else "InProgress"
                    if n >= clock.processing.after and clock.processing.failure_reason:
                        job.failure_reason = clock.processing.failure_reason  # type: ignore[attr-defined]
            return original_processing(backend, name)

        monkeypatch.setattr(AutoMLJob, "describe", automl_describe)
        monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", endpoint_describe)
        monkeypatch.setattr(SageMakerModelBackend, "describe_processing_job", processing_describe)


# ---- simulated CloudFormation progress ------------------------------------------------------------------
@dataclass
class StackOperation:
    token: str | None
    outcome: str  # UPDATE_COMPLETE, or UPDATE_ROLLBACK_COMPLETE (the parameters before it are restored)
    reads_left: float  # DescribeStacks answers that still show it UPDATE_IN_PROGRESS (math.inf: never ends)
    before: dict[str, str]
    release: bool  # an UpdateStack request (the release function's), not an operation the test started


@dataclass
class StackClock:
    """CloudFormation in time, on moto's stacks (see the module docstring).

    An UpdateStack request is refused while the stack is busy (as CloudFormation does); otherwise its
    parameters apply at once (so DescribeStacks shows the new values while it runs), it shows
    UPDATE_IN_PROGRESS for the next ``canary_reads`` DescribeStacks answers, then ends as ``outcome``;
    ``after_update`` runs once it ended (a manual deploy right after it). Every event an operation writes
    carries its ClientRequestToken. ``unreadable``: DescribeStacks is throttled; ``unreadable_reads``: it is,
    for that many calls. ``event_lag_reads``: for that many DescribeStackEvents answers after an accepted
    UpdateStack, the update's events are not listed yet (the newest listed event is the previous operation's),
    while DescribeStacks already shows it running."""

    canary_reads: int = 0
    outcome: str = "UPDATE_COMPLETE"
    after_update: Callable[[StackClock, Stack], None] | None = None
    unreadable: bool = False
    unreadable_reads: int = 0
    event_lag_reads: int = 0
    hidden: dict[str | None, int] = field(default_factory=dict)  # token -> event answers that omit its events
    requests: list[dict[str, Any]] = field(default_factory=list)  # every accepted UpdateStack request
    running: dict[str, StackOperation] = field(default_factory=dict)  # by stack id

    @staticmethod
    def stack(name: str) -> Stack:
        return cloudformation_backends[ACCOUNT][REGION].get_stack(name)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        clock = self
        original_update = CloudFormationResponse.update_stack
        original_describe = CloudFormationBackend.describe_stacks
        original_events = CloudFormationBackend.describe_stack_events

        def update_stack(response: CloudFormationResponse) -> Any:
            stack = response.cloudformation_backend.get_stack(response._get_param("StackName"))
            if stack.status.endswith("_IN_PROGRESS"):
                raise ValidationError(
                    message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
                )
            request = {
                key: response._get_param(key)
                for key in ("UsePreviousTemplate", "RoleARN", "ClientRequestToken", "StackPolicyDuringUpdateBody")
            }
            request["Parameters"] = response._get_param("Parameters", [])
            request["Capabilities"] = response._get_param("Capabilities", [])
            clock.requests.append(request)
            before, first = dict(stack.stack_parameters), len(stack.events)
            answer = original_update(response)
            clock._begin(stack, request["ClientRequestToken"], before, first, clock.canary_reads, clock.outcome, True)
            if clock.event_lag_reads:
                clock.hidden[request["ClientRequestToken"]] = clock.event_lag_reads
            return answer

        def describe_stacks(backend: CloudFormationBackend, name_or_stack_id: str) -> list[Stack]:
            if clock.unreadable or clock.unreadable_reads > 0:
                clock.unreadable_reads = max(clock.unreadable_reads - 1, 0)
                raise CloudFormationError("Throttling", "Rate exceeded")
            stacks = original_describe(backend, name_or_stack_id)
            if name_or_stack_id:
                for stack in stacks:
                    clock._tick(stack)
            return stacks

        def describe_stack_events(backend: CloudFormationBackend, stack_name: str) -> list[Any]:
            events = original_events(backend, stack_name)
            hidden = {token for token, reads in clock.hidden.items() if reads > 0}
            for token in hidden:
                clock.hidden[token] -= 1
            return [e for e in events if not hidden or getattr(e, "client_request_token", None) not in hidden]

        monkeypatch.setattr(CloudFormationResponse, "update_stack", update_stack)
        monkeypatch.setattr(CloudFormationBackend, "describe_stacks", describe_stacks)
        monkeypatch.setattr(CloudFormationBackend, "describe_stack_events", describe_stack_events)

    def operate(
        self,
        stack_name: str,
        token: str | None,
        changes: Mapping[str, str] | None = None,
        outcome: str = "UPDATE_COMPLETE",
        reads: float = 0,
    ) -> None:
        """Another operation on the stack (a `sam deploy`, a console update, a code release's canary):
        ``changes`` to its parameters, in progress for ``reads`` DescribeStacks answers (0: already ended)."""
        stack = self.stack(stack_name)
        before, first = dict(stack.stack_parameters), len(stack.events)
        stack.update(str(stack.template), stack.role_arn, parameters={**before, **(changes or {})})
        self._begin(stack, token, before, first, reads, outcome, False)
        if reads == 0:
            self._finish(stack, self.running.pop(stack.stack_id))

    def _begin(
        self,
        stack: Stack,
        token: str | None,
        before: dict[str, str],
        first: int,
        reads: float,
        outcome: str,
        release: bool,
    ) -> None:
        # moto applied it and wrote UPDATE_IN_PROGRESS + UPDATE_COMPLETE: keep the first, the end comes later
        del stack.events[first + 1 :]
        stack.events[first].client_request_token = token  # type: ignore[assignment]
        stack.status = "UPDATE_IN_PROGRESS"
        self.running[stack.stack_id] = StackOperation(token, outcome, reads, before, release)

    def _tick(self, stack: Stack) -> None:
        operation = self.running.get(stack.stack_id)
        if operation is None:
            return
        if operation.reads_left > 0:
            operation.reads_left -= 1
            return
        self._finish(stack, self.running.pop(stack.stack_id))

    def _finish(self, stack: Stack, operation: StackOperation) -> None:
        if operation.outcome == "UPDATE_ROLLBACK_COMPLETE":
            self._event(stack, "UPDATE_ROLLBACK_IN_PROGRESS", operation.token)
            first = len(stack.events)
            stack.update(str(stack.template), stack.role_arn, parameters=operation.before)
            del stack.events[first:]
        self._event(stack, operation.outcome, operation.token)
        stack.status = operation.outcome
        if operation.release and self.after_update is not None:
            then, self.after_update = self.after_update, None
            then(self, stack)

    @staticmethod
    def _event(stack: Stack, status: str, token: str | None) -> None:
        stack._add_stack_event(status)
        stack.events[-1].client_request_token = token  # type: ignore[assignment]


# ---- the account ----------------------------------------------------------------------------------------
def aws_start_time(value: Any) -> Any:
    """A datetime as AWS writes $$.Execution.StartTime: ISO 8601, UTC, milliseconds, 'Z'."""
    if not isinstance(value, datetime):
        return value
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _install_aws_start_time(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ExecutionWorker._get_evaluation_environment

    def environment(worker: ExecutionWorker) -> Any:
        env = original(worker)
        execution = env.states.context_object.context_object_data["Execution"]
        execution["StartTime"] = aws_start_time(execution["StartTime"])
        return env

    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_environment", environment)


def _install_sfn_sdk_casing(monkeypatch: pytest.MonkeyPatch) -> None:
    model = get_session().get_service_model("stepfunctions")

    def operation(task: StateTaskServiceAwsSdk) -> Any:
        action = task.resource.api_action
        return model.operation_model(action[0].upper() + action[1:])

    def parameters(task: StateTaskServiceAwsSdk, values: dict[str, Any], *_: Any, **__: Any) -> None:
        if task.resource.api_name == "sfn":
            task._to_boto_request(values, operation(task).input_shape)

    def response(task: StateTaskServiceAwsSdk, value: Any, *_: Any, **__: Any) -> None:
        if task.resource.api_name == "sfn":
            task._from_boto_response(value, operation(task).output_shape)

    monkeypatch.setattr(StateTaskServiceAwsSdk, "_normalise_parameters", parameters)
    monkeypatch.setattr(StateTaskServiceAwsSdk, "_normalise_response", response)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaRuntime]:
    """A fresh moto account in which state machines really execute and Lambda tasks run in-process."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = LambdaRuntime()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        monkeypatch.setattr(LambdaSimpleBackend, "invoke", lambda backend, *args: runtime.invoke(backend, *args))
        _install_aws_start_time(monkeypatch)
        _install_sfn_sdk_casing(monkeypatch)
        runtime.retry_clock.install(monkeypatch)
        yield runtime


def role(name: str, service: str) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]


def deploy_function(runtime: LambdaRuntime, name: str, handler: Callable[[Any, Any], Any]) -> str:
    archive = BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.py", "# the code runs in-process: tests/statemachines/conftest.py\n")
    arn = boto3.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role(f"{name}-role", "lambda.amazonaws.com"),
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        Architectures=["arm64"],
    )["FunctionArn"]
    runtime.handlers[name] = handler
    return arn


@dataclass
class Notifications:
    queue_url: str

    def messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def notification_topic(name: str = "pipeline-notifications") -> tuple[str, Notifications]:
    """An SNS topic with an SQS subscriber, so a test can read what was published."""
    topic = boto3.client("sns").create_topic(Name=name)["TopicArn"]
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, Notifications(queue_url)


@dataclass
class Execution:
    arn: str
    status: str
    description: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def output(self) -> dict[str, Any]:
        return json.loads(self.description.get("output") or "{}")

    @property
    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history if "stateEnteredEventDetails" in e]

    @property
    def last_state(self) -> str:
        return self.states_entered[-1]

    def count(self, state: str) -> int:
        return self.states_entered.count(state)

    def requests(self, action: str) -> list[dict[str, Any]]:
        """The parameters of every call the state machine made to an API action (e.g. createProcessingJob)."""
        return [
            json.loads(e["taskScheduledEventDetails"]["parameters"])
            for e in self.history
            if e.get("taskScheduledEventDetails", {}).get("resource") == action
        ]

    def output_of(self, state: str) -> dict[str, Any]:
        """The data a state passed on (its last exit)."""
        (*_, event) = [e for e in self.history if e.get("stateExitedEventDetails", {}).get("name") == state]
        output: dict[str, Any] = json.loads(event["stateExitedEventDetails"]["output"])
        return output


def create_state_machine(definition: str, name: str) -> str:
    arn: str = boto3.client("stepfunctions").create_state_machine(
        name=name, definition=definition, roleArn=role(f"{name}-sfn-role", "states.amazonaws.com")
    )["stateMachineArn"]
    return arn


def start_execution(machine: str, name: str, payload: Mapping[str, Any]) -> str:
    arn: str = boto3.client("stepfunctions").start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(payload)
    )["executionArn"]
    return arn


def wait_for(arn: str, timeout_s: float = 60) -> Execution:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout_s
    while True:
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{arn} still RUNNING after {timeout_s} s")
        time.sleep(0.05)
    history: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        history.extend(page["events"])
    return Execution(arn, description["status"], description, history)


def run_state_machine(definition: str, name: str, payload: Mapping[str, Any], timeout_s: float = 60) -> Execution:
    return wait_for(start_execution(create_state_machine(definition, name), f"{name}-run", payload), timeout_s)
