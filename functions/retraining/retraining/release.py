"""Retraining task ReleaseModel (statemachines/retrain.asl.json): puts the new endpoint live through
the same canary protection as a code release.

How: a CloudFormation UpdateStack of this very stack, with the previous template and every parameter
unchanged except ``SageMakerEndpointName`` (the new endpoint) and ``PreviousSageMakerEndpointName`` (the
one being replaced). The predict function's environment changes, so SAM's AutoPublishAlias publishes a new
version and the function's DeploymentPreference shifts alias ``live`` to it exactly as for a code change:
10 % canary, the same pre-traffic hook, the same rollback alarms. If the canary fails, CodeDeploy rolls the
alias back and CloudFormation rolls the stack back (UPDATE_ROLLBACK_COMPLETE): the old endpoint stays live.
The state machine polls DescribeStacks for that outcome.

CloudFormation performs the update with ``CLOUDFORMATION_ROLE_ARN`` (the stack's deployment role, passed
with iam:PassRole), so this function needs no permission on the stack's resources. Without that role the
release is manual: the function returns the exact `sam deploy` command (same canary) and changes nothing.

Raises StackNotReady while another update runs (the state machine retries with backoff) and
ReleaseRejected when the release makes no sense (the endpoint is already live, the parameter is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ReleaseSettings
from .observability import logger

ENDPOINT_PARAMETER = "SageMakerEndpointName"
PREVIOUS_ENDPOINT_PARAMETER = "PreviousSageMakerEndpointName"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # what samconfig.toml deploys with
READY = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}


class StackNotReady(Exception):
    """The stack is being changed right now; retry later."""


class ReleaseRejected(Exception):
    """The release cannot or must not happen."""


def release(event: Mapping[str, Any], config: ReleaseSettings, cloudformation: Any) -> dict[str, Any]:
    new_endpoint, run_id = str(event["endpoint_name"]), str(event["run_id"])
    (stack,) = cloudformation.describe_stacks(StackName=config.stack_name)["Stacks"]
    if stack["StackStatus"] not in READY:
        raise StackNotReady(f"stack {config.stack_name} is {stack['StackStatus']}")
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if ENDPOINT_PARAMETER not in parameters:
        raise ReleaseRejected(f"stack {config.stack_name} has no parameter {ENDPOINT_PARAMETER}")
    previous = parameters[ENDPOINT_PARAMETER]
    if previous == new_endpoint:
        raise ReleaseRejected(f"{new_endpoint} is already the live endpoint of {config.stack_name}")
    changed = {ENDPOINT_PARAMETER: new_endpoint}
    if PREVIOUS_ENDPOINT_PARAMETER in parameters:
        changed[PREVIOUS_ENDPOINT_PARAMETER] = previous
    result = {
        "stack_name": config.stack_name,
        "stack_id": stack["StackId"],
        "previous_endpoint": previous,
        "new_endpoint": new_endpoint,
    }
    if config.role_arn is None:
        overrides = " ".join(f"{k}={v}" for k, v in changed.items())
        command = f"sam deploy --config-env {config.config_env} --parameter-overrides <current values> {overrides}"
        logger.info("manual release", extra={"endpoint": new_endpoint})
        return {"mode": "manual", "command": command, **result}
    update = [
        {"ParameterKey": key, "ParameterValue": changed[key]}
        if key in changed
        else {"ParameterKey": key, "UsePreviousValue": True}
        for key in parameters
    ]
    token = f"release-{run_id}"  # idempotent: a retried call is the same update
    cloudformation.update_stack(
        StackName=stack["StackId"],
        UsePreviousTemplate=True,
        Parameters=update,
        Capabilities=CAPABILITIES,
        RoleARN=config.role_arn,
        ClientRequestToken=token,
    )
    logger.info("stack update started", extra={"endpoint": new_endpoint, "previous": previous, "token": token})
    return {"mode": "stack-update", "client_request_token": token, **result}
