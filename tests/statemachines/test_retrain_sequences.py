"""statemachines/retrain.asl.json through the release's sequences in time, under moto, with the real functions.

Each one is a way the release could have deleted what is live, or told a person to (issue 10): the release
task run again after it succeeded (before and during the canary, after a timeout, after another operation
started), StackNotReady retries running out while another operation holds the stack, a second execution, a
`sam deploy` that moves the stack mid-run, stack events that lag the update, a stack that cannot be read for
minutes, a canary that rolls back, an endpoint released by hand. In every one the live and previous endpoints
(with their configurations and models) still exist at the end, the execution's end says what happened, and
an outcome that is not clear is recorded in the lineage before it is notified.

Time is simulated (tests/statemachines/conftest.py): StackClock makes an update run for a number of
DescribeStacks answers and end as the test says; RetryClock records the Retry waits instead of sleeping."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from moto.stepfunctions.exceptions import StateMachineDoesNotExist
from moto.stepfunctions.models import StepFunctionBackend
from sentiment_core.contract import SMOKE_TEXTS

from tests.statemachines.conftest import LambdaRuntime, Outcome, start_execution, wait_for
from tests.statemachines.retrain_world import (
    BEST_CANDIDATE,
    LIVE_ENDPOINT,
    PREVIOUS_ENDPOINT,
    STACK,
    World,
    assert_failed,
    assert_kept,
    assert_live_and_previous_exist,
    assert_nothing_left,
    create_endpoint,
    failure_notice,
    queue_endpoint_answers,
    read_lineage,
    run_names,
    run_resources,
    setup_world,
)

ReleaseCalls = list[tuple[str, str]]  # (action, outcome) of each invocation of the release function


@pytest.fixture
def world(aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch) -> World:
    world = setup_world(aws, monkeypatch)
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)  # one right answer per probe, in SMOKE_TEXTS order
    return world


def release_calls(world: World) -> ReleaseCalls:
    return [(event["action"], outcome) for event, outcome in world.runtime.calls_of("release-model")]


def release_start(world: World) -> dict[str, Any]:
    """What the release task answered last to a start (what the state machine went on with)."""
    (*_, answer) = [result for name, result in world.runtime.results if name == "release-model" and "mode" in result]
    return answer


def assert_lineage_then_failure_notice(world: World, execution: Any, status: str, error: str) -> str:
    """The model may be live: the lineage is recorded (with the outcome) before the failure is notified."""
    name = run_names(execution)
    lineage = read_lineage(name)
    assert (lineage["release"]["status"], lineage["release"]["error"]) == (status, error)
    assert lineage["endpoint"]["name"] == name
    states = execution.states_entered
    assert states.index("RecordLineage") < states.index("NotifyFailure")
    assert "NotifySuccess" not in states
    message: str = failure_notice(world)["Message"]
    assert error in message and f"lineage/{name}.json" in message
    return message


def assert_released(world: World, execution: Any) -> str:
    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "ModelReleased"
    name = run_names(execution)
    assert execution.output["release"] == {"status": "released", "stack_status": "UPDATE_COMPLETE"}
    assert world.stack_parameters()["SageMakerEndpointName"] == name
    assert world.stack_parameters()["PreviousSageMakerEndpointName"] == LIVE_ENDPOINT
    assert read_lineage(name)["release"]["status"] == "released"
    return name


# ---- the release task runs twice ----------------------------------------------------------------------
def test_retry_after_success_finds_the_endpoint_already_released(world: World) -> None:
    """UpdateStack started and the canary passed, but the task's answer was lost (Lambda.ServiceException):
    the retry finds this run's endpoint live. Before: ReleaseRejected 'already the live endpoint' ->
    CleanUp -> DeleteEndpoint of the live endpoint."""
    world.runtime.lost_answers["release-model"] = 1

    execution = world.run()

    name = assert_released(world, execution)
    assert release_calls(world)[:2] == [("start", "ok, answer lost"), ("start", "ok")]
    assert release_start(world)["status"] == "already_released"
    assert len(world.stack_clock.requests) == 1  # the retry submitted nothing
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_retry_during_the_canary_follows_this_runs_own_update(world: World) -> None:
    """The retry comes while this run's update is UPDATE_IN_PROGRESS (its canary): that is this run's
    ClientRequestToken on the newest stack event, so it is followed, not StackNotReady. Before:
    StackNotReady until the retries ran out -> CleanUp -> DeleteEndpoint of the endpoint being released."""
    world.runtime.lost_answers["release-model"] = 1
    world.stack_clock.canary_reads = 4

    execution = world.run()

    name = assert_released(world, execution)
    calls = release_calls(world)
    assert calls[:2] == [("start", "ok, answer lost"), ("start", "ok")]
    assert release_start(world)["status"] == "following"
    assert calls.count(("status", "ok")) == execution.count("CheckRelease") >= 3  # polled through the canary
    assert len(world.stack_clock.requests) == 1
    assert not [c for c in calls if c[1] == "StackNotReady"]
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_retry_after_a_rolled_back_canary_submits_nothing_again(world: World) -> None:
    """The answer is lost, and by the retry the canary already rolled back: the retry sees this run's token
    on the stack and follows it to the rollback (it does not release the endpoint a second time)."""
    world.runtime.lost_answers["release-model"] = 1
    world.stack_clock.outcome = "UPDATE_ROLLBACK_COMPLETE"

    execution = world.run()

    assert_failed(execution, "ReleaseRolledBack", f"{LIVE_ENDPOINT} stays live")
    assert release_start(world)["status"] == "following"
    assert len(world.stack_clock.requests) == 1
    assert_nothing_left(world, run_names(execution))  # neither live nor previous: the guard let it go
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert_live_and_previous_exist(world)


# ---- someone else holds or moves the stack --------------------------------------------------------------
def test_stack_not_ready_retries_exhausted_while_another_canary_runs(world: World) -> None:
    """A code release's canary holds the stack (UPDATE_IN_PROGRESS, another token) through every retry:
    the release does not start, and nothing is deleted. Before: CleanUp."""
    world.stack_clock.operate(STACK, "codedeploy-code-release-42", reads=float("inf"))

    execution = world.run()

    assert_failed(
        execution,
        "ReleaseNotStarted",
        "another operation held the stack through every retry",
        "operation codedeploy-code-release-42",
        "Nothing was changed or deleted",
    )
    name = run_names(execution)
    assert release_calls(world) == [("start", "StackNotReady")] * 11  # the first try and 10 retries
    waits = world.runtime.retry_clock.waits
    assert len(waits) == 10 and all(w <= 60 * 1.5**n for n, w in enumerate(waits))  # FULL jitter of 60 s x 1.5^n
    assert not world.stack_clock.requests
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, name)  # for a release by hand
    assert world.stack_parameters()["SageMakerEndpointName"] == LIVE_ENDPOINT
    assert_live_and_previous_exist(world)
    assert_lineage_then_failure_notice(world, execution, "not-started", "ReleaseNotStarted")


def test_a_console_revert_after_the_release_supersedes_it(world: World) -> None:
    """Someone puts the old endpoint back by hand after this run's update. Before, UPDATE_COMPLETE read as
    "released"; the run ends ReleaseSuperseded, keeps everything, records the lineage, and the notification
    advises no delete of anything the stack still names."""
    world.stack_clock.after_update = lambda clock, stack: clock.operate(
        STACK, "Console-UpdateStack-7f59c3cf", {"SageMakerEndpointName": LIVE_ENDPOINT}
    )

    execution = world.run()

    assert_failed(execution, "ReleaseSuperseded", "not this run's", "Nothing was deleted")
    name = run_names(execution)
    assert world.stack_status() == "UPDATE_COMPLETE"
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, name)  # a person decides
    assert_live_and_previous_exist(world)
    message = assert_lineage_then_failure_notice(world, execution, "superseded", "ReleaseSuperseded")
    assert "delete whichever" not in message
    assert "neither SageMakerEndpointName nor PreviousSageMakerEndpointName" in message


def test_someone_elses_update_that_keeps_this_runs_endpoint_live_is_a_release(world: World) -> None:
    """A `sam deploy` (no request token) after this run's update fails and rolls back: this run's endpoint
    stays live. Before: ReleaseSuperseded ("someone moved the stack"), a failed run for a live model."""
    world.stack_clock.after_update = lambda clock, stack: clock.operate(STACK, None, {}, "UPDATE_ROLLBACK_COMPLETE")

    execution = world.run()

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "ModelReleased"
    name = run_names(execution)
    assert execution.output["release"] == {"status": "released", "stack_status": "UPDATE_ROLLBACK_COMPLETE"}
    assert world.stack_parameters()["SageMakerEndpointName"] == name
    assert read_lineage(name)["release"]["status"] == "released"
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_someone_elses_canary_after_this_runs_update_is_waited_for(world: World) -> None:
    """Another operation (a console update to a third endpoint, with its own canary) starts right after this
    run's update and runs for a while. While it runs SageMakerEndpointName already names its endpoint, but
    the previous one still serves 90 %: nothing is concluded. Before: ReleaseSuperseded at the first poll,
    whose notification invited a person to "delete whichever is not live" in the middle of that canary."""
    world.substitutions["ReleaseMaxPolls"] = "10"
    create_endpoint("sentiment-test-third")
    world.stack_clock.after_update = lambda clock, stack: clock.operate(
        STACK, "Console-UpdateStack-1", {"SageMakerEndpointName": "sentiment-test-third"}, reads=3
    )

    execution = world.run()

    assert_failed(execution, "ReleaseSuperseded", "UPDATE_COMPLETE after operation Console-UpdateStack-1")
    outcomes = [r["outcome"] for name, r in world.runtime.results if name == "release-model" and "outcome" in r]
    assert outcomes[-1] == "superseded" and "superseded" not in outcomes[:-1]
    assert outcomes.count("in_progress") >= 3  # polled through the other canary
    assert_kept(world, run_names(execution))
    assert_live_and_previous_exist(world)
    assert_lineage_then_failure_notice(world, execution, "superseded", "ReleaseSuperseded")


def test_stack_events_that_lag_the_update_are_waited_for(world: World) -> None:
    """The first checks run before this run's events are listed: the newest event is the previous
    operation's. Before: ReleaseSuperseded at the first poll, while this run's release went on."""
    world.stack_clock.canary_reads = 3
    world.stack_clock.event_lag_reads = 2

    execution = world.run()

    name = assert_released(world, execution)
    outcomes = [r["outcome"] for n, r in world.runtime.results if n == "release-model" and "outcome" in r]
    assert outcomes[0] == "in_progress" and outcomes[-1] == "released"
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_an_update_whose_events_never_show_ends_unknown_with_nothing_deleted(world: World) -> None:
    """The stack is idle again with the old endpoint (the update rolled back), but this run's token never
    shows on its events: nothing is concluded from the previous operation's event, the polling runs to its
    ceiling, and the run ends ReleaseOutcomeUnknown with everything kept and the lineage recorded. Before:
    ReleaseSuperseded at the first poll, with advice to delete "whichever endpoint is not live"."""
    world.stack_clock.outcome = "UPDATE_ROLLBACK_COMPLETE"
    world.stack_clock.event_lag_reads = 1_000

    execution = world.run()

    assert_failed(execution, "ReleaseOutcomeUnknown", "after 5 polls", "is on none of its events")
    assert execution.count("CheckRelease") == 5
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, run_names(execution))
    assert_live_and_previous_exist(world)
    assert_lineage_then_failure_notice(world, execution, "unknown", "ReleaseOutcomeUnknown")


def test_after_a_lost_answer_someone_elses_operation_does_not_stop_the_run(world: World) -> None:
    """This run's update completes, its answer is lost, and a code release's canary starts before the retry:
    the retry sees this run's token on the stack and follows, waits for the other canary, and finds this
    run's endpoint live. Before: StackNotReady on every retry, then ReleaseNotStarted with the endpoint live."""
    world.substitutions["ReleaseMaxPolls"] = "30"
    world.runtime.lost_answers["release-model"] = 1
    world.stack_clock.after_update = lambda clock, stack: clock.operate(
        STACK, "codedeploy-code-release-43", reads=20
    )  # longer than every StackNotReady retry together

    execution = world.run()

    name = assert_released(world, execution)
    calls = release_calls(world)
    assert calls[:2] == [("start", "ok, answer lost"), ("start", "ok")]
    assert release_start(world)["status"] == "following"
    assert not [c for c in calls if c[1] == "StackNotReady"]
    assert len(world.stack_clock.requests) == 1
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_rolled_back_canary(world: World) -> None:
    """The canary's alarms roll the update back: the old endpoint is live again, the run's endpoint is
    deleted (the guard read the stack first: it is neither live nor previous)."""
    world.stack_clock.canary_reads = 2
    world.stack_clock.outcome = "UPDATE_ROLLBACK_COMPLETE"

    execution = world.run()

    assert_failed(execution, "ReleaseRolledBack", f"{LIVE_ENDPOINT} stays live")
    name = run_names(execution)
    assert execution.output_of("CheckLiveEndpoints")["cleanup_guard"]["result"]["delete"] is True
    assert_nothing_left(world, name)
    assert world.stack_parameters() == {
        "Stage": "test",
        "SageMakerEndpointName": LIVE_ENDPOINT,
        "PreviousSageMakerEndpointName": PREVIOUS_ENDPOINT,
    }
    assert_live_and_previous_exist(world)


# ---- the release function times out, or the stack cannot be read ----------------------------------------
def test_a_release_task_that_timed_out_after_submitting_is_retried_and_follows(world: World) -> None:
    """The function ran past its timeout after UpdateStack went out (Sandbox.Timedout): start is idempotent,
    so it is retried, and the retry follows this run's update. Before: ReleaseCheckFailed, a failed run for
    a release that went on."""
    world.runtime.timeouts["release-model"] = 1
    world.stack_clock.canary_reads = 2

    execution = world.run()

    name = assert_released(world, execution)
    assert release_calls(world)[:2] == [("start", "ok, then timed out"), ("start", "ok")]
    assert release_start(world)["status"] == "following"
    assert len(world.stack_clock.requests) == 1
    assert_kept(world, name)


def throttle(world: World, monkeypatch: pytest.MonkeyPatch, action: str, invocations: int) -> None:
    """DescribeStacks is throttled during the first ``invocations`` calls of the release function's
    ``action`` (the client retries nothing itself: AWS_MAX_ATTEMPTS=1, so each call is one try)."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    seen = {"n": 0}

    def before(event: dict[str, Any]) -> None:
        if event["action"] == action:
            seen["n"] += 1
            world.stack_clock.unreadable = seen["n"] <= invocations

    world.runtime.before["release-model"] = before


@pytest.mark.filterwarnings("ignore:Exception\\(CloudFormationError\\) with code Throttling")
def test_an_unreadable_stack_at_the_start_is_retried(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: StackUnreadable went straight to ReleaseCheckFailed."""
    throttle(world, monkeypatch, "start", 2)

    execution = world.run()

    assert_released(world, execution)
    assert release_calls(world)[:3] == [("start", "StackUnreadable")] * 2 + [("start", "ok")]
    assert len(world.stack_clock.requests) == 1


@pytest.mark.filterwarnings("ignore:Exception\\(CloudFormationError\\) with code Throttling")
def test_minutes_of_throttling_while_polling_count_as_polls(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """CloudFormation throttles DescribeStacks through more than a poll's retries: each such poll is counted
    and polled again after the usual wait. Before: ReleaseCheckFailed after about 75 s of throttling."""
    world.substitutions["ReleaseMaxPolls"] = "10"
    world.stack_clock.canary_reads = 1
    throttle(world, monkeypatch, "status", 7)  # two polls of 3 tries each, and the first try of a third

    execution = world.run()

    name = assert_released(world, execution)
    checks = [outcome for event, outcome in world.runtime.calls_of("release-model") if event["action"] == "status"]
    assert checks[:8] == ["StackUnreadable"] * 7 + ["ok"]
    assert execution.count("ReleaseUnreadable") == 2
    assert execution.count("CountReleasePoll") >= 3
    assert "ReleaseCheckFailed" not in execution.states_entered
    assert_kept(world, name)


# ---- manual mode ---------------------------------------------------------------------------------------
def test_an_endpoint_released_by_hand_before_the_run_is_a_release(
    aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manual release mode; someone deploys the run's endpoint by hand before the run reaches its release:
    that is a success, and nothing is deleted. Before: ReleaseRejected -> CleanUp (the guard kept it) and a
    failed run for a released model."""
    world = setup_world(aws, monkeypatch, cloudformation_role=False)
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)

    def deploy_by_hand(event: dict[str, Any]) -> None:
        if event["action"] == "start":
            world.stack_clock.operate(STACK, None, {"SageMakerEndpointName": event["endpoint_name"]})

    world.runtime.before["release-model"] = deploy_by_hand

    execution = world.run()

    name = run_names(execution)
    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "ModelReleased"
    assert execution.output["release"] == {"status": "released", "by": "hand", "stack_status": "UPDATE_COMPLETE"}
    assert read_lineage(name)["release"]["status"] == "released"
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


def test_manual_mode_answers_at_once_while_another_operation_holds_the_stack(
    aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer (the `sam deploy` command) changes nothing. Before: StackNotReady retried for up to about
    two hours, then ReleaseNotStarted, with no command sent."""
    world = setup_world(aws, monkeypatch, cloudformation_role=False)
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)
    world.stack_clock.operate(STACK, "codedeploy-code-release-42", reads=float("inf"))

    execution = world.run()

    assert execution.status == "SUCCEEDED", execution.description
    assert execution.last_state == "AwaitingManualRelease"
    assert release_calls(world) == [("start", "ok")]
    assert not world.runtime.retry_clock.waits
    name = run_names(execution)
    assert f"SageMakerEndpointName={name}" in read_lineage(name)["release"]["command"]
    assert_kept(world, name)


# ---- one execution at a time --------------------------------------------------------------------------
def test_a_second_execution_is_refused_before_it_touches_anything(world: World) -> None:
    machine = world.state_machine()
    entered, go_on = threading.Event(), threading.Event()

    def hold(event: dict[str, Any]) -> None:  # the first execution waits in ValidateDataset
        entered.set()
        assert go_on.wait(30), "the test never let the first execution go on"

    world.runtime.before["validate-dataset"] = hold
    first = start_execution(machine, "first", {})
    assert entered.wait(30)

    second = wait_for(start_execution(machine, "second", {}))
    validations_meanwhile = len(world.runtime.calls_of("validate-dataset"))
    go_on.set()

    assert validations_meanwhile == 0  # the first is still held; the second called nothing
    assert_failed(second, "ExecutionAlreadyRunning", "2 executions of this state machine are running", first)
    assert second.states_entered == [
        "OneExecutionAtATime",
        "RunningExecutions",
        "ExecutionAlreadyRunning",
        "RetrainingFailed",
    ]
    assert [r["StatusFilter"] for r in second.requests("listExecutions")] == ["RUNNING"]
    execution = wait_for(first)
    assert execution.status == "SUCCEEDED", execution.description
    assert [e["execution_start_time"] for e, _ in world.runtime.calls_of("validate-dataset")] == [
        execution.output_of("Initialize")["execution"]["start_time"]
    ]  # one validation, the first execution's
    assert len(run_resources(world)["endpoints"]) == 1
    assert_live_and_previous_exist(world)


def test_when_the_running_executions_cannot_be_listed_nothing_starts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise StateMachineDoesNotExist("State Machine Does Not Exist")

    monkeypatch.setattr(StepFunctionBackend, "list_executions", refuse)

    execution = world.run()

    assert_failed(execution, "ExecutionCheckFailed", "could not be listed", "this execution did nothing")
    assert execution.states_entered == ["OneExecutionAtATime", "ExecutionCheckFailed", "RetrainingFailed"]
    assert not world.runtime.calls
    assert run_resources(world) == {"models": [], "endpoint_configs": [], "endpoints": []}
