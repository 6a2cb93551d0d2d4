"""statemachines/retrain.asl.json through the release's sequences in time, under moto, with the real functions.

Each one is a way the release could have deleted what is live (issue 10): the release task run again after
it succeeded (before and during the canary), StackNotReady retries running out while another operation
holds the stack, a second execution, a `sam deploy` that moves the stack mid-run, a canary that rolls
back, an endpoint released by hand. In every one the live and previous endpoints (with their
configurations and models) still exist at the end, and the execution's end says what happened.

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
    assert "ReleaseNotStarted" in failure_notice(world)["Message"]


@pytest.mark.parametrize(
    ("token", "changes", "outcome"),
    [
        # a `sam deploy` (no request token) fails and rolls back: this run's endpoint stays live; before,
        # UPDATE_ROLLBACK_COMPLETE read as ReleaseRolledBack -> CleanUp -> DeleteEndpoint of the live endpoint
        (None, {}, "UPDATE_ROLLBACK_COMPLETE"),
        # someone puts the old endpoint back by hand: before, UPDATE_COMPLETE read as "released"
        ("Console-UpdateStack-7f59c3cf", {"SageMakerEndpointName": LIVE_ENDPOINT}, "UPDATE_COMPLETE"),
    ],
    ids=["sam-deploy-rolled-back", "console-update-reverted"],
)
def test_a_manual_stack_update_mid_run_supersedes_the_release(
    world: World, token: str | None, changes: dict[str, str], outcome: str
) -> None:
    world.stack_clock.after_update = lambda clock, stack: clock.operate(STACK, token, changes, outcome)

    execution = world.run()

    assert_failed(execution, "ReleaseSuperseded", "not this run's", "Nothing was deleted")
    name = run_names(execution)
    assert world.stack_status() == outcome
    assert "CleanUp" not in execution.states_entered
    assert_kept(world, name)  # live (first case) or not: a person decides
    assert_live_and_previous_exist(world)
    assert "ReleaseSuperseded" in failure_notice(world)["Message"]


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


def test_an_endpoint_released_by_hand_before_the_run_is_kept(
    aws: LambdaRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Manual release mode; someone deploys the run's endpoint by hand before the run reaches its release:
    the release is rejected and the cleanup's guard finds the endpoint live, so it keeps it (and its
    configuration and model)."""
    world = setup_world(aws, monkeypatch, cloudformation_role=False)
    world.clock.automl = Outcome("Completed", after=1, fields={"best_candidate": BEST_CANDIDATE})
    queue_endpoint_answers(*SMOKE_TEXTS)

    def deploy_by_hand(event: dict[str, Any]) -> None:
        if event["action"] == "start":
            world.stack_clock.operate(STACK, None, {"SageMakerEndpointName": event["endpoint_name"]})

    world.runtime.before["release-model"] = deploy_by_hand

    execution = world.run()

    name = run_names(execution)
    assert_failed(execution, "ReleaseRejected", f"{name} is the live endpoint", "Nothing of this run was deleted")
    assert "DeleteEndpoint" not in execution.states_entered
    assert_kept(world, name)
    assert_live_and_previous_exist(world)


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
