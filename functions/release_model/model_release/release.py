"""The three release tasks of statemachines/retrain.asl.json, one function (``action`` in the payload):

- ``start`` (ReleaseModel): a CloudFormation UpdateStack of this very stack, with the previous template and
  every parameter unchanged except ``SageMakerEndpointName`` (the run's endpoint) and
  ``PreviousSageMakerEndpointName`` (the one it replaces). The predict function's environment changes, so
  SAM's AutoPublishAlias publishes a new version and its DeploymentPreference shifts alias ``live`` through
  the same canary, hooks and rollback alarms as a code change. Step Functions may run it again after it
  succeeded (a Lambda.ServiceException that arrives late, a timeout after the update went out): it is
  idempotent. What this run already did wins over whatever the stack does now: its ClientRequestToken
  ``release-<run_id>`` on an event since the run started, or its endpoint already live, is followed
  (``following`` / ``already_released``), even while someone else's operation holds the stack; an update this
  run submitted is never submitted twice. Only someone else's operation, with nothing of this run on the
  stack, raises StackNotReady.
- ``status`` (CheckRelease): the outcome, judged by :func:`judge` from the parameters, the status and the
  token, never from StackStatus alone; ``superseded`` only once the stack is idle again.
- ``guard`` (CheckLiveEndpoints): before the cleanup deletes anything, whether the run's endpoint is the
  live or the previous one, or the stack is anything but cleanly complete (then it and its configuration and
  model are kept).

Without a release role (CLOUDFORMATION_ROLE_ARN empty) the release is manual: ``start`` answers at once,
whatever the stack is doing, with the exact `sam deploy` command (same canary) and changes nothing; the run's
endpoint already live (a person released it) is ``already_released``, a success."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from .config import ReleaseSettings
from .errors import InvalidRequest, ReleaseRejected, StackNotReady
from .stack import ENDPOINT_PARAMETER, PREVIOUS_ENDPOINT_PARAMETER, StackView, read

# Lambda's JSON log format (template.yaml LoggingConfig) sets the level (ApplicationLogLevel, INFO by default)
# and writes `extra` as fields of the record.
logger = logging.getLogger(__name__)

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # what samconfig.toml deploys with
#: in_progress and not_seen: poll again; the others end the polling. not_seen: the stack is idle and this run's
#: token is on none of its events yet (events lag UpdateStack): at the poll ceiling, an unknown outcome.
Outcome = Literal["in_progress", "not_seen", "released", "rolled_back", "superseded", "unknown"]


@dataclass(frozen=True, slots=True)
class Release:
    """One run's release, from the state machine's payload."""

    endpoint: str
    run_id: str
    since: datetime | None  # the execution's start: no stack event before it belongs to this run

    @property
    def token(self) -> str:
        return f"release-{self.run_id}"  # every event of this run's update carries it

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Release:
        since = _text(event, "execution_start_time", required=False)
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        except ValueError:
            raise InvalidRequest(f"execution_start_time {since!r} is not an ISO 8601 time") from None
        if start is not None and start.tzinfo is None:
            raise InvalidRequest(f"execution_start_time {since!r} has no time zone")
        return cls(_text(event, "endpoint_name"), _text(event, "run_id"), start)


@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: Outcome
    reason: str


def handle(event: Mapping[str, Any], settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    action = event.get("action")
    if action == "start":
        return start(Release.from_event(event), settings, cloudformation)
    if action == "status":
        return status(
            Release.from_event(event), _text(event, "previous_endpoint", blank=True), settings, cloudformation
        )
    if action == "guard":
        return guard(_text(event, "endpoint_name"), settings, cloudformation)
    raise InvalidRequest(f"action must be start, status or guard, got {action!r}")


# ---- start ---------------------------------------------------------------------------------------------
def start(release: Release, settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    view = read(cloudformation, settings.stack_name, release.token, release.since)
    live = view.live_endpoint
    if live is None:
        raise ReleaseRejected(f"stack {view.name} has no parameter {ENDPOINT_PARAMETER}")
    if settings.role_arn is None:  # manual: nothing to wait for, the answer changes nothing
        return _manual(view, release, settings)
    if view.token_seen or live == release.endpoint:
        # This run's update was submitted (it runs, ended, or another operation followed it), or its endpoint
        # is live already: follow that, whatever runs now (refusing would end the run ReleaseNotStarted while
        # its endpoint is live, after a lost answer and someone else's update).
        how = "already_released" if live == release.endpoint and view.clean else "following"
        return _started(view, release, how, _previous_of(view, release))
    if view.busy:
        raise StackNotReady(f"stack {view.name} is {view.status} ({view.describe_operation()})")
    return _submit(view, release, settings, cloudformation)


def _changed_parameters(view: StackView, release: Release) -> dict[str, str]:
    """What a release changes: the endpoint, and the previous one (the live one now) where the stack has it."""
    changed = {ENDPOINT_PARAMETER: release.endpoint}
    if PREVIOUS_ENDPOINT_PARAMETER in view.parameters:
        changed[PREVIOUS_ENDPOINT_PARAMETER] = str(view.live_endpoint)
    return changed


def _submit(view: StackView, release: Release, settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    live = str(view.live_endpoint)
    changed = _changed_parameters(view, release)
    update: dict[str, Any] = {
        "StackName": view.stack_id,
        "UsePreviousTemplate": True,
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": changed[key]}
            if key in changed
            else {"ParameterKey": key, "UsePreviousValue": True}
            for key in view.parameters
        ],
        "Capabilities": CAPABILITIES,
        "RoleARN": settings.role_arn,
        "ClientRequestToken": release.token,
    }
    if settings.stack_policy is not None:
        update["StackPolicyDuringUpdateBody"] = settings.stack_policy
    try:
        cloudformation.update_stack(**update)
    except ClientError as exc:
        # The stack may have changed since it was read: decide from what it says now, not from the message.
        after = read(cloudformation, view.stack_id, release.token, release.since)
        if after.token_seen:
            return _started(after, release, "following", live)
        if after.busy:
            raise StackNotReady(f"stack {after.name} is {after.status} ({after.describe_operation()})") from exc
        error = exc.response.get("Error", {})
        raise ReleaseRejected(
            f"CloudFormation refused the update of {view.name}: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    logger.info("stack update started", extra={"endpoint": release.endpoint, "previous": live, "token": release.token})
    return _started(view, release, "started", live)


def _previous_of(view: StackView, release: Release) -> str:
    # The endpoint this run's release replaces: with its endpoint live (or shown while its update runs), the
    # PreviousSageMakerEndpointName that update set; otherwise the one live now.
    return view.previous_endpoint if view.live_endpoint == release.endpoint else str(view.live_endpoint)


def _started(view: StackView, release: Release, how: str, previous: str) -> dict[str, Any]:
    if how != "started":
        logger.info("release already submitted", extra={"endpoint": release.endpoint, "status": how})
    return {
        "mode": "stack-update",
        "status": how,  # started | following (this run's update runs or ran) | already_released
        "stack_name": view.name,
        "stack_id": view.stack_id,
        "previous_endpoint": previous,
        "new_endpoint": release.endpoint,
        "client_request_token": release.token,
    }


def _manual(view: StackView, release: Release, settings: ReleaseSettings) -> dict[str, Any]:
    live = str(view.live_endpoint)
    answer = {
        "mode": "manual",
        "stack_name": view.name,
        "stack_id": view.stack_id,
        "stack_status": view.status,
        "new_endpoint": release.endpoint,
    }
    if live == release.endpoint and view.clean:  # a person released it: success, nothing to do
        logger.info("released by hand", extra={"endpoint": release.endpoint, "status": view.status})
        return {**answer, "status": "already_released", "previous_endpoint": view.previous_endpoint}
    overrides = " ".join(f"{key}={value}" for key, value in _changed_parameters(view, release).items())
    logger.info("manual release", extra={"endpoint": release.endpoint, "status": view.status})
    return {
        **answer,
        "status": "awaiting",
        "command": f"sam deploy --config-env {settings.stage} --parameter-overrides <current values> {overrides}",
        "previous_endpoint": live,
    }


# ---- status --------------------------------------------------------------------------------------------
def judge(view: StackView, release: Release, previous_endpoint: str) -> Judgement:
    """The release's outcome from what the stack says: its status, its parameters and whose operation set
    them. Nothing is concluded while an operation runs (during someone else's canary SageMakerEndpointName
    already names their endpoint while the previous one still serves most traffic), and this run's endpoint
    live in a clean state is a success whoever put it there."""
    live, name, token = view.live_endpoint, view.name, release.token
    if view.busy:
        if view.operation_token == token:
            return Judgement("in_progress", f"stack {name} is {view.status} ({token})")
        after = "after this run's update" if view.token_seen else f"before {token} shows on its events"
        return Judgement(
            "in_progress",
            f"stack {name} is {view.status} by {view.describe_operation()} ({after}): waiting for it to end",
        )
    if not view.clean:
        return Judgement(
            "unknown",
            f"stack {name} is {view.status} (not a clean *_COMPLETE state) after {view.describe_operation()}, "
            f"with SageMakerEndpointName={live}: what serves may differ from the parameters",
        )
    if live == release.endpoint:
        by = "this run's update" if view.operation_token == token else view.describe_operation()
        return Judgement("released", f"{release.endpoint} is live ({view.status}, after {by})")
    if not view.token_seen:
        return Judgement(
            "not_seen",
            f"stack {name} is {view.status} with SageMakerEndpointName={live}, and {token} is on none of its "
            "events since the run started: the update is not visible (yet)",
        )
    if view.operation_token == token:
        if view.status == "UPDATE_ROLLBACK_COMPLETE" and live == previous_endpoint:
            return Judgement("rolled_back", f"{token} was rolled back; {previous_endpoint} is live")
        return Judgement(
            "unknown",
            f"stack {name} is {view.status} after {token} with SageMakerEndpointName={live} "
            f"(released: {release.endpoint}, before: {previous_endpoint})",
        )
    return Judgement(
        "superseded",
        f"stack {name} is {view.status} after {view.describe_operation()}, not this run's ({token}), "
        f"with SageMakerEndpointName={live}",
    )


def status(release: Release, previous_endpoint: str, settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    view = read(cloudformation, settings.stack_name, release.token, release.since)
    judgement = judge(view, release, previous_endpoint)
    logger.info("release status", extra={"endpoint": release.endpoint, "outcome": judgement.outcome})
    return {
        "outcome": judgement.outcome,
        "reason": judgement.reason,
        "stack_status": view.status,
        "live_endpoint": view.live_endpoint or "",
        "operation_token": view.operation_token or "",
    }


# ---- guard ---------------------------------------------------------------------------------------------
def guard(endpoint: str, settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    """Whether the cleanup may delete ``endpoint`` (and its endpoint configuration and model): only when the
    stack is cleanly complete (CLEAN_STATUSES) and the endpoint is neither its live nor its previous one.
    Raises StackUnreadable when the stack cannot be read: then nothing is deleted."""
    view = read(cloudformation, settings.stack_name)
    live, previous = view.live_endpoint, view.previous_endpoint
    if view.busy:
        keep = f"stack {view.name} is {view.status}: its endpoint parameters may be changing"
    elif not view.clean:
        keep = (
            f"stack {view.name} is {view.status}, not a clean *_COMPLETE state: what serves may differ from its "
            "parameters, and a manual recovery may need any endpoint it names or named"
        )
    elif live is None:
        keep = f"stack {view.name} has no parameter {ENDPOINT_PARAMETER}: what is live cannot be told"
    elif endpoint == live:
        keep = f"{endpoint} is the live endpoint ({ENDPOINT_PARAMETER} of {view.name})"
    elif endpoint == previous:
        keep = f"{endpoint} is the previous endpoint ({PREVIOUS_ENDPOINT_PARAMETER} of {view.name}), a rollback's"
    else:
        keep = ""
    reason = keep or f"{endpoint} is neither the live ({live}) nor the previous ({previous or 'none'}) endpoint"
    logger.info("cleanup guard", extra={"endpoint": endpoint, "delete": not keep, "reason": reason})
    return {"delete": not keep, "reason": reason, "live_endpoint": live or "", "previous_endpoint": previous}


def _text(event: Mapping[str, Any], key: str, required: bool = True, blank: bool = False) -> str:
    value = event.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (not value and not blank):
        raise InvalidRequest(f"{key} must be a {'' if blank else 'non-empty '}string, got {value!r}")
    return value
