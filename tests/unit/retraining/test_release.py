"""The release function (functions/release_model/) on its own, against an in-memory CloudFormation of the
same interface: when it submits, follows or refuses a release, how it judges the outcome, what the cleanup
guard lets go, and its settings. The sequences in time, on the real state machine, are
tests/statemachines/test_retrain_sequences.py."""

from __future__ import annotations

import ast
import importlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from local_stack import runtime

from tests.helpers import function

runtime.add_to_path(function("release_model"))  # its CodeUri as /var/task; no layer, as in Lambda
config = importlib.import_module("model_release.config")
errors = importlib.import_module("model_release.errors")
release_task = importlib.import_module("model_release.release")
stack_view = importlib.import_module("model_release.stack")

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/sentiment-api-unit/1"
STARTED = datetime(2026, 1, 5, 3, 4, 5, tzinfo=UTC)
RUN = {
    "endpoint_name": "sentiment-prod-new",
    "run_id": "20260105-030405",
    "execution_start_time": "2026-01-05T03:04:05.678Z",
}
TOKEN = "release-20260105-030405"
POLICY = json.dumps({"Statement": [{"Effect": "Deny", "Action": "Update:*", "Principal": "*", "Resource": "*"}]})


def settings(role: str = "arn:aws:iam::123456789012:role/model-release", policy: str = POLICY) -> Any:
    return config.ReleaseSettings.from_env(
        {
            "STACK_NAME": "sentiment-api-unit",
            "STAGE": "prod",
            "CLOUDFORMATION_ROLE_ARN": role,
            "RELEASE_STACK_POLICY": policy,
        }
    )


@dataclass
class FakeCloudFormation:
    """DescribeStacks, DescribeStackEvents (newest first, paginated) and UpdateStack of one stack."""

    status: str = "UPDATE_COMPLETE"
    parameters: dict[str, str] = field(
        default_factory=lambda: {
            "Stage": "prod",
            "SageMakerEndpointName": "live",
            "PreviousSageMakerEndpointName": "older",
        }
    )
    # the stack's outputs: SageMakerEndpointName names the endpoint the functions call (the bootstrap one while
    # the parameter is empty); None: the parameter's value, as the template's output gives it
    outputs: dict[str, str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first
    updates: list[dict[str, Any]] = field(default_factory=list)
    update_error: ClientError | None = None
    on_update_error: Any = None  # what the stack does when the update is refused (someone else started)
    readable: bool = True

    def event(self, token: str | None, status: str, minutes_after_start: float = 1) -> None:
        at = STARTED + timedelta(minutes=minutes_after_start)
        self.events.insert(
            0, {"ResourceStatus": status, "Timestamp": at, **({"ClientRequestToken": token} if token else {})}
        )

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if not self.readable:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeStacks")
        parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()]
        return {
            "Stacks": [
                {
                    "StackId": STACK_ID,
                    "StackName": "sentiment-api-unit",
                    "StackStatus": self.status,
                    "Parameters": parameters,
                    "Outputs": [
                        {"OutputKey": k, "OutputValue": v}
                        for k, v in (
                            self.outputs
                            if self.outputs is not None
                            else {"SageMakerEndpointName": self.parameters.get("SageMakerEndpointName", "")}
                        ).items()
                    ],
                }
            ]
        }

    def get_paginator(self, operation: str) -> Any:
        assert operation == "describe_stack_events"
        fake = self

        class Pages:
            def paginate(self, StackName: str, PaginationConfig: dict[str, int]) -> Any:
                assert StackName == STACK_ID
                for start in range(0, max(len(fake.events), 1), 2):  # 2 a page: pagination is exercised
                    yield {"StackEvents": fake.events[start : start + 2]}

        return Pages()

    def update_stack(self, **request: Any) -> dict[str, Any]:
        if self.update_error is not None:
            if self.on_update_error:
                self.on_update_error(self)
            raise self.update_error
        self.updates.append(request)
        for p in request["Parameters"]:
            if "ParameterValue" in p:
                self.parameters[p["ParameterKey"]] = p["ParameterValue"]
        self.status = "UPDATE_IN_PROGRESS"
        self.event(request["ClientRequestToken"], "UPDATE_IN_PROGRESS", 2)
        return {"StackId": STACK_ID}


def start(cfn: FakeCloudFormation, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = release_task.handle({"action": "start", **RUN}, overrides.get("s") or settings(), cfn)
    return result


# ---- start ---------------------------------------------------------------------------------------------
def test_a_release_updates_only_the_endpoint_parameters_with_the_previous_template() -> None:
    cfn = FakeCloudFormation()
    cfn.event(None, "UPDATE_COMPLETE", -60)  # the last deploy, before the run
    result = start(cfn)
    assert result == {
        "mode": "stack-update",
        "status": "started",
        "stack_name": "sentiment-api-unit",
        "stack_id": STACK_ID,
        "previous_endpoint": "live",
        "new_endpoint": "sentiment-prod-new",
        "client_request_token": TOKEN,
    }
    (update,) = cfn.updates
    assert update == {
        "StackName": STACK_ID,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": "Stage", "UsePreviousValue": True},
            {"ParameterKey": "SageMakerEndpointName", "ParameterValue": "sentiment-prod-new"},
            {"ParameterKey": "PreviousSageMakerEndpointName", "ParameterValue": "live"},
        ],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        "RoleARN": "arn:aws:iam::123456789012:role/model-release",
        "ClientRequestToken": TOKEN,
        "StackPolicyDuringUpdateBody": POLICY,
    }


def test_the_first_release_replaces_the_bootstrap_endpoint_and_keeps_it_as_the_previous_one() -> None:
    """A stack deployed without SageMakerEndpointName serves the bootstrap endpoint it created (the output names
    it): the first release records that one as PreviousSageMakerEndpointName (the canary's stable side, the
    rollback target, never deleted by the cleanup), not the empty parameter."""
    bootstrap = "sentiment-prod-bootstrap-1a2b3c4d"
    cfn = FakeCloudFormation(
        parameters={"Stage": "prod", "SageMakerEndpointName": "", "PreviousSageMakerEndpointName": ""},
        outputs={"SageMakerEndpointName": bootstrap},
    )
    cfn.event(None, "CREATE_COMPLETE", -60)
    result = start(cfn)
    assert result["previous_endpoint"] == bootstrap
    (update,) = cfn.updates
    assert {"ParameterKey": "PreviousSageMakerEndpointName", "ParameterValue": bootstrap} in update["Parameters"]
    assert {"ParameterKey": "SageMakerEndpointName", "ParameterValue": "sentiment-prod-new"} in update["Parameters"]
    # the cleanup guard keeps the bootstrap endpoint while it serves, and afterwards as the previous one
    cfn.status = "UPDATE_COMPLETE"
    assert release_task.guard(bootstrap, settings(), cfn)["delete"] is False
    before = FakeCloudFormation(
        parameters={"Stage": "prod", "SageMakerEndpointName": "", "PreviousSageMakerEndpointName": ""},
        outputs={"SageMakerEndpointName": bootstrap},
    )
    assert release_task.guard(bootstrap, settings(), before)["delete"] is False


def test_without_a_stack_policy_none_is_sent() -> None:
    cfn = FakeCloudFormation()
    start(cfn, s=settings(policy=""))
    assert "StackPolicyDuringUpdateBody" not in cfn.updates[0]


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"])
def test_a_retry_while_this_runs_update_runs_follows_it(status: str) -> None:
    cfn = FakeCloudFormation(status=status)
    cfn.parameters.update(SageMakerEndpointName="sentiment-prod-new", PreviousSageMakerEndpointName="live")
    cfn.event(TOKEN, "UPDATE_IN_PROGRESS")
    result = start(cfn)
    assert (result["status"], result["previous_endpoint"]) == ("following", "live")
    assert not cfn.updates


def test_while_its_update_still_shows_the_old_values_the_previous_endpoint_is_the_live_one() -> None:
    cfn = FakeCloudFormation(status="UPDATE_IN_PROGRESS")
    cfn.event(TOKEN, "UPDATE_IN_PROGRESS")
    assert start(cfn)["previous_endpoint"] == "live"


def test_another_operation_running_is_stack_not_ready() -> None:
    cfn = FakeCloudFormation(status="UPDATE_IN_PROGRESS")
    cfn.event("Console-UpdateStack-1", "UPDATE_IN_PROGRESS")
    with pytest.raises(errors.StackNotReady, match=r"UPDATE_IN_PROGRESS \(operation Console-UpdateStack-1\)"):
        start(cfn)
    cfn.events[0].pop("ClientRequestToken")  # a `sam deploy`
    with pytest.raises(errors.StackNotReady, match="without a request token"):
        start(cfn)
    assert not cfn.updates


@pytest.mark.parametrize("endpoint_live", [False, True], ids=["token-seen", "endpoint-live"])
def test_this_runs_update_wins_over_someone_elses_busy_stack(endpoint_live: bool) -> None:
    """This run's update ran (its token is on an earlier event), its answer was lost, and a code release
    started before the retry: the retry follows. Before: StackNotReady on every retry, then
    ReleaseNotStarted while the endpoint was live."""
    cfn = FakeCloudFormation(status="UPDATE_IN_PROGRESS")
    if endpoint_live:
        cfn.parameters.update(SageMakerEndpointName="sentiment-prod-new", PreviousSageMakerEndpointName="live")
    cfn.event(TOKEN, "UPDATE_IN_PROGRESS", 1)
    cfn.event(TOKEN, "UPDATE_COMPLETE", 2)
    cfn.event("codedeploy-code-release-43", "UPDATE_IN_PROGRESS", 3)
    result = start(cfn)
    assert (result["status"], result["previous_endpoint"]) == ("following", "live")
    assert not cfn.updates


def test_the_endpoint_made_live_by_someone_else_while_the_stack_is_busy_is_followed() -> None:
    cfn = FakeCloudFormation(status="UPDATE_IN_PROGRESS")
    cfn.parameters.update(SageMakerEndpointName="sentiment-prod-new", PreviousSageMakerEndpointName="live")
    cfn.event(None, "UPDATE_IN_PROGRESS", 3)  # a `sam deploy` of this run's endpoint, by hand
    assert start(cfn)["status"] == "following"
    assert not cfn.updates


def test_the_endpoint_already_live_is_already_released() -> None:
    cfn = FakeCloudFormation()
    cfn.parameters.update(SageMakerEndpointName="sentiment-prod-new", PreviousSageMakerEndpointName="live")
    cfn.event(TOKEN, "UPDATE_COMPLETE")
    result = start(cfn)
    assert (result["status"], result["previous_endpoint"]) == ("already_released", "live")
    assert not cfn.updates


def test_an_update_this_run_submitted_earlier_is_never_submitted_again() -> None:
    """Its update rolled back, then a later operation: the token is further back in the events (page 2)."""
    cfn = FakeCloudFormation()
    cfn.event(TOKEN, "UPDATE_IN_PROGRESS", 1)
    cfn.event(TOKEN, "UPDATE_ROLLBACK_COMPLETE", 2)
    cfn.event(None, "UPDATE_IN_PROGRESS", 3)
    cfn.event(None, "UPDATE_COMPLETE", 4)
    result = start(cfn)
    assert (result["status"], result["previous_endpoint"]) == ("following", "live")
    assert not cfn.updates


def test_the_same_token_before_the_run_started_is_not_this_runs() -> None:
    cfn = FakeCloudFormation()
    cfn.event(TOKEN, "UPDATE_COMPLETE", -5)
    assert start(cfn)["status"] == "started"


def test_an_update_refused_because_someone_started_one_is_stack_not_ready() -> None:
    cfn = FakeCloudFormation(
        update_error=ClientError({"Error": {"Code": "ValidationError", "Message": "busy"}}, "UpdateStack")
    )

    def someone_started(stack: FakeCloudFormation) -> None:
        stack.status = "UPDATE_IN_PROGRESS"
        stack.event("Console-UpdateStack-2", "UPDATE_IN_PROGRESS")

    cfn.on_update_error = someone_started
    with pytest.raises(errors.StackNotReady, match="Console-UpdateStack-2"):
        start(cfn)


def test_an_update_refused_for_a_token_already_used_follows_it() -> None:
    error = ClientError({"Error": {"Code": "TokenAlreadyExistsException", "Message": "token"}}, "UpdateStack")
    cfn = FakeCloudFormation(update_error=error)
    cfn.on_update_error = lambda stack: stack.event(TOKEN, "UPDATE_IN_PROGRESS")
    assert start(cfn)["status"] == "following"


def test_an_update_refused_otherwise_is_rejected() -> None:
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "UpdateStack")
    with pytest.raises(errors.ReleaseRejected, match="AccessDenied: not allowed"):
        start(FakeCloudFormation(update_error=error))


def test_a_stack_without_the_endpoint_parameter_is_rejected() -> None:
    cfn = FakeCloudFormation()
    del cfn.parameters["SageMakerEndpointName"]
    with pytest.raises(errors.ReleaseRejected, match="no parameter SageMakerEndpointName"):
        start(cfn)


def test_without_a_role_the_release_is_manual() -> None:
    cfn = FakeCloudFormation()
    result = start(cfn, s=settings(role=""))
    assert result["mode"] == "manual"
    assert result["command"] == (
        "sam deploy --config-env prod --parameter-overrides <current values> "
        "SageMakerEndpointName=sentiment-prod-new PreviousSageMakerEndpointName=live"
    )
    assert (result["status"], result["stack_status"]) == ("awaiting", "UPDATE_COMPLETE")
    assert not cfn.updates


def test_manual_mode_answers_at_once_while_the_stack_is_busy() -> None:
    """The answer changes nothing, so there is nothing to wait for. Before: StackNotReady, retried by the
    state machine for up to two hours before the command was sent."""
    cfn = FakeCloudFormation(status="UPDATE_IN_PROGRESS")
    cfn.event("Console-UpdateStack-1", "UPDATE_IN_PROGRESS")
    result = start(cfn, s=settings(role=""))
    assert (result["mode"], result["status"], result["stack_status"]) == ("manual", "awaiting", "UPDATE_IN_PROGRESS")
    assert "SageMakerEndpointName=sentiment-prod-new" in result["command"]
    assert not cfn.updates


def test_manual_mode_with_the_endpoint_released_by_hand_is_a_success() -> None:
    """Before: ReleaseRejected ('already the live endpoint') -> CleanUp, a failed run for a released model."""
    cfn = FakeCloudFormation()
    cfn.parameters.update(SageMakerEndpointName="sentiment-prod-new", PreviousSageMakerEndpointName="live")
    result = start(cfn, s=settings(role=""))
    assert (result["mode"], result["status"], result["previous_endpoint"]) == ("manual", "already_released", "live")
    assert "command" not in result
    cfn.status = "UPDATE_IN_PROGRESS"  # a person's deploy of it still runs: not yet a success
    assert start(cfn, s=settings(role=""))["status"] == "awaiting"


def test_an_unreadable_stack_is_stack_unreadable() -> None:
    with pytest.raises(errors.StackUnreadable, match="Rate exceeded"):
        start(FakeCloudFormation(readable=False))


# ---- status: judged by parameters and token ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "status", "live", "outcome"),
    [
        (TOKEN, "UPDATE_IN_PROGRESS", "sentiment-prod-new", "in_progress"),
        (TOKEN, "UPDATE_ROLLBACK_IN_PROGRESS", "live", "in_progress"),
        (TOKEN, "UPDATE_COMPLETE", "sentiment-prod-new", "released"),
        (TOKEN, "UPDATE_ROLLBACK_COMPLETE", "live", "rolled_back"),
        (TOKEN, "UPDATE_COMPLETE", "live", "unknown"),  # complete, but not with this run's endpoint
        # rolled back to a state in which this run's endpoint was already live (released by hand): live
        (TOKEN, "UPDATE_ROLLBACK_COMPLETE", "sentiment-prod-new", "released"),
        (TOKEN, "UPDATE_ROLLBACK_FAILED", "sentiment-prod-new", "unknown"),  # not clean: nothing is concluded
        # someone else's operation after this run's, ended with this run's endpoint live: a success
        (None, "UPDATE_ROLLBACK_COMPLETE", "sentiment-prod-new", "released"),  # a `sam deploy` rolled back
        ("Console-UpdateStack-3", "UPDATE_COMPLETE", "sentiment-prod-new", "released"),
        # ... ended with another endpoint live: superseded, once the stack is idle
        ("Console-UpdateStack-3", "UPDATE_COMPLETE", "live", "superseded"),
        ("Console-UpdateStack-3", "UPDATE_ROLLBACK_FAILED", "live", "unknown"),
        # ... still running (its canary: the parameter names its endpoint, the old one serves 90 %): wait
        ("Console-UpdateStack-3", "UPDATE_IN_PROGRESS", "other", "in_progress"),
        ("Console-UpdateStack-3", "UPDATE_ROLLBACK_IN_PROGRESS", "live", "in_progress"),
    ],
)
def test_the_outcome_is_judged_by_the_parameters_and_this_runs_token(
    token: str | None, status: str, live: str, outcome: str
) -> None:
    cfn = FakeCloudFormation(status=status)
    cfn.parameters["SageMakerEndpointName"] = live
    cfn.event(TOKEN, "UPDATE_IN_PROGRESS", 1)
    cfn.event(token, status, 2)
    result = release_task.handle({"action": "status", **RUN, "previous_endpoint": "live"}, settings(), cfn)
    assert result["outcome"] == outcome, result["reason"]
    assert (result["stack_status"], result["live_endpoint"]) == (status, live)
    assert result["operation_token"] == (token or "")


@pytest.mark.parametrize(
    ("status", "live", "outcome"),
    [
        # the first check runs before this run's events are visible: the newest event is the previous
        # operation's. Before: "superseded" at once, while this run's release went on.
        ("UPDATE_IN_PROGRESS", "sentiment-prod-new", "in_progress"),
        ("UPDATE_IN_PROGRESS", "live", "in_progress"),
        ("UPDATE_COMPLETE", "live", "not_seen"),  # idle, nothing of this run: poll again, never delete
        ("UPDATE_COMPLETE", "sentiment-prod-new", "released"),  # released by someone else
        ("UPDATE_ROLLBACK_FAILED", "live", "unknown"),
    ],
)
def test_before_this_runs_token_shows_nothing_is_concluded_from_other_operations(
    status: str, live: str, outcome: str
) -> None:
    cfn = FakeCloudFormation(status=status)
    cfn.parameters["SageMakerEndpointName"] = live
    cfn.event(None, "UPDATE_COMPLETE", -60)  # the last deploy before the run
    result = release_task.handle({"action": "status", **RUN, "previous_endpoint": "live"}, settings(), cfn)
    assert result["outcome"] == outcome, result["reason"]


def test_no_judgement_advises_deleting_anything() -> None:
    """The reasons end up in the notification: they say what the stack says, never what to delete."""
    for status in ("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"):
        for token in (TOKEN, None, "Console-UpdateStack-3"):
            for live in ("live", "sentiment-prod-new", "other"):
                cfn = FakeCloudFormation(status=status)
                cfn.parameters["SageMakerEndpointName"] = live
                cfn.event(TOKEN, "UPDATE_IN_PROGRESS", 1)
                cfn.event(token, status, 2)
                reason = release_task.handle({"action": "status", **RUN, "previous_endpoint": "live"}, settings(), cfn)[
                    "reason"
                ]
                assert "delete" not in reason.lower(), reason


# ---- guard: what the cleanup may delete ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "status", "delete", "reason"),
    [
        ("live", "UPDATE_COMPLETE", False, "live is the live endpoint"),
        ("older", "UPDATE_COMPLETE", False, "older is the previous endpoint"),
        ("sentiment-prod-new", "UPDATE_IN_PROGRESS", False, "may be changing"),
        ("sentiment-prod-new", "UPDATE_ROLLBACK_COMPLETE", True, "neither the live (live) nor the previous (older)"),
        # any state but a clean *_COMPLETE: a manual recovery may need it. Before: treated as idle, deleted.
        ("sentiment-prod-new", "UPDATE_ROLLBACK_FAILED", False, "not a clean *_COMPLETE state"),
        ("sentiment-prod-new", "UPDATE_FAILED", False, "not a clean *_COMPLETE state"),
        ("sentiment-prod-new", "ROLLBACK_COMPLETE", False, "not a clean *_COMPLETE state"),
        ("sentiment-prod-new", "IMPORT_ROLLBACK_FAILED", False, "not a clean *_COMPLETE state"),
    ],
)
def test_the_guard_keeps_the_live_and_previous_endpoints(endpoint: str, status: str, delete: bool, reason: str) -> None:
    result = release_task.handle(
        {"action": "guard", "endpoint_name": endpoint}, settings(), FakeCloudFormation(status=status)
    )
    assert result["delete"] is delete
    assert reason in result["reason"]


def test_the_guard_keeps_everything_when_it_cannot_tell_what_is_live() -> None:
    cfn = FakeCloudFormation()
    del cfn.parameters["SageMakerEndpointName"]
    assert release_task.guard("sentiment-prod-new", settings(), cfn)["delete"] is False
    with pytest.raises(errors.StackUnreadable):
        release_task.guard("sentiment-prod-new", settings(), FakeCloudFormation(readable=False))


# ---- requests and settings ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "event",
    [
        {"action": "deploy", **RUN},
        {**RUN},
        {"action": "start", **RUN, "endpoint_name": ""},
        {"action": "start", **RUN, "run_id": 42},
        {"action": "start", **RUN, "execution_start_time": "yesterday"},
        {"action": "start", **RUN, "execution_start_time": "2026-01-05T03:04:05"},
        {"action": "status", **RUN},  # no previous_endpoint
    ],
)
def test_malformed_requests_raise(event: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidRequest):
        release_task.handle(event, settings(), FakeCloudFormation())


def test_settings() -> None:
    manual = settings(role="", policy="")
    assert (manual.stack_name, manual.stage, manual.role_arn, manual.stack_policy) == (
        "sentiment-api-unit",
        "prod",
        None,
        None,
    )
    with pytest.raises(config.ConfigurationError, match="STACK_NAME"):
        config.ReleaseSettings.from_env({"STAGE": "prod"})
    for policy in ("{not json", '{"Statement": []}', "[1]"):
        with pytest.raises(config.ConfigurationError, match="RELEASE_STACK_POLICY"):
            settings(policy=policy)


def test_the_release_function_loads_no_shared_layer() -> None:
    """Its CodeUri is functions/release_model/, it has no layer, and its code imports only the standard
    library, the runtime's boto3/botocore and its own package."""
    release_function = function("release_model")
    assert release_function.layer_dirs == ()
    imported = set()
    for path in release_function.code_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names == {"boto3", "botocore", "model_release"}
