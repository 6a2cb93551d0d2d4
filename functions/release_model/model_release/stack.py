"""What the stack says now, read from CloudFormation (DescribeStacks + DescribeStackEvents).

Every event of one stack operation carries that operation's ClientRequestToken (a release's is
``release-<run_id>``; a `sam deploy` or a console update carries another one, or none). The newest event
therefore names the operation that put the stack in its current status: that is how a release tells its own
update from someone else's, whatever StackStatus says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import StackUnreadable

ENDPOINT_PARAMETER = "SageMakerEndpointName"
PREVIOUS_ENDPOINT_PARAMETER = "PreviousSageMakerEndpointName"
#: The stack output naming the endpoint the functions call: the parameter's value, or, while the parameter is
#: empty (no release yet), the bootstrap endpoint the stack created (template.yaml, UseBootstrapEndpoint).
ENDPOINT_OUTPUT = "SageMakerEndpointName"
#: How far back DescribeStackEvents is read for a release's token (100 events a page), at most.
MAX_EVENT_PAGES = 20
#: The statuses in which the stack's parameters are what is deployed: an operation ended cleanly. Anything
#: else (``*_IN_PROGRESS``, ``UPDATE_ROLLBACK_FAILED``, ``*_FAILED``, ``ROLLBACK_COMPLETE`` of a failed create)
#: may need a person, and the endpoints it names or named may be what a manual recovery goes back to.
CLEAN_STATUSES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)


@dataclass(frozen=True, slots=True)
class StackView:
    stack_id: str
    name: str
    status: str
    parameters: Mapping[str, str]
    outputs: Mapping[str, str]
    operation_token: str | None  # the ClientRequestToken of the newest event: the latest operation's
    token_seen: bool  # the token asked for is on an event since the run started (its update was submitted)

    @property
    def busy(self) -> bool:
        """An operation is running: its parameters may be about to change."""
        return self.status.endswith("_IN_PROGRESS")

    @property
    def clean(self) -> bool:
        """The last operation ended cleanly (CLEAN_STATUSES): the parameters are what is deployed."""
        return self.status in CLEAN_STATUSES

    @property
    def live_endpoint(self) -> str | None:
        """The endpoint the functions call: the parameter, or the bootstrap endpoint while it is empty."""
        value = self.parameters.get(ENDPOINT_PARAMETER)
        return value or self.outputs.get(ENDPOINT_OUTPUT) or value

    @property
    def previous_endpoint(self) -> str:
        return self.parameters.get(PREVIOUS_ENDPOINT_PARAMETER, "")

    def describe_operation(self) -> str:
        return f"operation {self.operation_token}" if self.operation_token else "an operation without a request token"


def read(cloudformation: Any, stack: str, token: str | None = None, since: datetime | None = None) -> StackView:
    """The stack now; with ``token``, also whether an event since ``since`` carries it. Raises
    StackUnreadable when CloudFormation cannot be read."""
    try:
        (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
        operation_token, seen = _history(cloudformation, described["StackId"], token, since)
    except (ClientError, BotoCoreError) as exc:
        raise StackUnreadable(f"stack {stack} cannot be read: {exc}") from exc
    return StackView(
        stack_id=described["StackId"],
        name=described["StackName"],
        status=described["StackStatus"],
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])},
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in described.get("Outputs", [])},
        operation_token=operation_token,
        token_seen=seen,
    )


def _history(cloudformation: Any, stack_id: str, token: str | None, since: datetime | None) -> tuple[str | None, bool]:
    """(the newest event's token, whether ``token`` is on an event since ``since``); events come newest first."""
    newest: str | None = None
    pages = cloudformation.get_paginator("describe_stack_events").paginate(
        StackName=stack_id, PaginationConfig={"MaxItems": 100 * MAX_EVENT_PAGES}
    )
    first = True
    for page in pages:
        for event in page["StackEvents"]:
            event_token = event.get("ClientRequestToken") or None
            if first:
                newest, first = event_token, False
            if token is None or (since is not None and event["Timestamp"] < since):
                return newest, False  # nothing asked, or older than the run: no event of its release
            if event_token == token:
                return newest, True
    return newest, False
