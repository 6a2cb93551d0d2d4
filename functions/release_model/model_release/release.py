"""The three release tasks of statemachines/retrain.asl.json, one function (``action`` in the payload):

- ``start`` (ReleaseModel): a CloudFormation UpdateStack of this very stack, with the previous template and
  every parameter unchanged except ``SageMakerEndpointName`` (the run's endpoint) and
  ``PreviousSageMakerEndpointName`` (the one it replaces). The predict function's environment changes, so
  SAM's AutoPublishAlias publishes a new version and its DeploymentPreference shifts alias ``live`` through
  the same canary, hooks and rollback alarms as a code change. Step Functions may run it again after it
  succeeded (a Lambda.ServiceException that arrives late): it is idempotent. This run's own update running
  (its ClientRequestToken ``release-<run_id>`` on the newest stack event) is followed, not refused; the
  run's endpoint already live is ``already_released``; an update this run submitted earlier is never
  submitted twice. Only someone else's operation raises StackNotReady.
- ``status`` (CheckRelease): the outcome, judged by :func:`judge` from the parameters and the token, never
  from StackStatus alone.
- ``guard`` (CheckLiveEndpoints): before the cleanup deletes anything, whether the run's endpoint is the
  live or the previous one (then it and its configuration and model are kept).

Without a release role (CLOUDFORMATION_ROLE_ARN empty) the release is manual: ``start`` returns the exact
`sam deploy` command (same canary) and changes nothing."""

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
Outcome = Literal["in_progress", "released", "rolled_back", "superseded", "unknown"]


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
    if view.busy:
        if view.operation_token == release.token:
            return _started(view, release, "following", _previous_of_own_update(view, release))
        raise StackNotReady(f"stack {view.name} is {view.status} ({view.describe_operation()})")
    if settings.role_arn is None:
        if live == release.endpoint:
            raise ReleaseRejected(f"{release.endpoint} is already the live endpoint of {view.name} (released by hand)")
        return _manual(view, release, settings)
    if live == release.endpoint:
        return _started(view, release, "already_released", view.previous_endpoint)
    if view.token_seen:  # this run's update already ran and ended (rolled back, or moved on since)
        return _started(view, release, "following", live)
    return _submit(view, release, settings, cloudformation)


def _submit(view: StackView, release: Release, settings: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    live = str(view.live_endpoint)
    changed = {ENDPOINT_PARAMETER: release.endpoint}
    if PREVIOUS_ENDPOINT_PARAMETER in view.parameters:
        changed[PREVIOUS_ENDPOINT_PARAMETER] = live
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
        if after.operation_token == release.token or after.token_seen:
            return _started(after, release, "following", live)
        if after.busy:
            raise StackNotReady(f"stack {after.name} is {after.status} ({after.describe_operation()})") from exc
        error = exc.response.get("Error", {})
        raise ReleaseRejected(
            f"CloudFormation refused the update of {view.name}: {error.get('Code')}: {error.get('Message')}"
        ) from exc
    logger.info("stack update started", extra={"endpoint": release.endpoint, "previous": live, "token": release.token})
    return _started(view, release, "started", live)


def _previous_of_own_update(view: StackView, release: Release) -> str:
    # While its update runs, the stack may already show the new values (then the previous one is the
    # PreviousSageMakerEndpointName it set) or still the old ones.
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
    changed = {ENDPOINT_PARAMETER: release.endpoint}
    if PREVIOUS_ENDPOINT_PARAMETER in view.parameters:
        changed[PREVIOUS_ENDPOINT_PARAMETER] = live
    overrides = " ".join(f"{key}={value}" for key, value in changed.items())
    logger.info("manual release", extra={"endpoint": release.endpoint})
    return {
        "mode": "manual",
        "command": f"sam deploy --config-env {settings.stage} --parameter-overrides <current values> {overrides}",
        "stack_name": view.name,
        "stack_id": view.stack_id,
        "previous_endpoint": live,
        "new_endpoint": release.endpoint,
    }


# ---- status --------------------------------------------------------------------------------------------
def judge(view: StackView, release: Release, previous_endpoint: str) -> Judgement:
    """The release's outcome from what the stack says: its parameters and the operation that set them."""
    ours = view.operation_token == release.token
    live = view.live_endpoint
    if not ours:
        return Judgement(
            "superseded",
            f"stack {view.name} is {view.status} after {view.describe_operation()}, not this run's "
            f"({release.token}); SageMakerEndpointName={live}",
        )
    if view.busy:
        return Judgement("in_progress", f"stack {view.name} is {view.status} ({release.token})")
    if view.status == "UPDATE_COMPLETE" and live == release.endpoint:
        return Judgement("released", f"{release.endpoint} is live ({view.status}, {release.token})")
    if view.status == "UPDATE_ROLLBACK_COMPLETE" and live == previous_endpoint:
        return Judgement("rolled_back", f"{release.token} was rolled back; {previous_endpoint} is live")
    return Judgement(
        "unknown",
        f"stack {view.name} is {view.status} after {release.token} with SageMakerEndpointName={live} "
        f"(released: {release.endpoint}, before: {previous_endpoint})",
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
    """Whether the cleanup may delete ``endpoint`` (and its endpoint configuration and model). Raises
    StackUnreadable when the stack cannot be read: then nothing is deleted."""
    view = read(cloudformation, settings.stack_name)
    live, previous = view.live_endpoint, view.previous_endpoint
    if view.busy:
        keep = f"stack {view.name} is {view.status}: its endpoint parameters may be changing"
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
