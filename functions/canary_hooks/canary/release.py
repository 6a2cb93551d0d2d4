"""A release, as the hooks learn it from the CodeDeploy deployment's AppSpec (function, alias, current and
target version), never from the stack; the CodeDeploy adapter; and run_hook, the frame of both hooks.

A release is one CodeDeploy deployment that moves the alias `live` from the stable version to a new
version (SAM DeploymentPreference: Canary10Percent5Minutes). Each Lambda version pins its configuration,
the SageMaker endpoint included, so a canary of the function is also a canary of the model. A deployment
created by CloudFormation (a `sam deploy`, or a stack update from the retraining state machine) and one
created directly with CreateDeployment on the same deployment group (deploy/README.md) are therefore checked
the same way."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .observability import count_verdict, logger
from .settings import ROLLBACK, HookSettings

SUCCEEDED, FAILED = "Succeeded", "Failed"


class CanaryError(Exception):
    """The release cannot be checked (unreadable AppSpec, a deployment of some other function...)."""


@dataclass(frozen=True, slots=True)
class Release:
    deployment_id: str
    function_name: str
    alias: str
    current_version: str  # stable: what the alias pointed to when the deployment started
    target_version: str  # canary


def parse_appspec(deployment_id: str, content: str) -> Release:
    """The one Lambda resource of a Lambda AppSpec (JSON: CloudFormation writes JSON, and so must the
    retraining state machine; YAML would need a parser the Lambda runtime does not ship)."""
    try:
        document = json.loads(content)
        resources = [res for entry in document["Resources"] for res in entry.values()]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CanaryError(f"deployment {deployment_id}: the AppSpec is not Lambda AppSpec JSON ({exc})") from None
    lambdas = [res for res in resources if isinstance(res, dict) and res.get("Type") == "AWS::Lambda::Function"]
    if len(lambdas) != 1:
        raise CanaryError(f"deployment {deployment_id}: expected one AWS::Lambda::Function, found {len(lambdas)}")
    props = lambdas[0].get("Properties") or {}
    try:
        return Release(
            deployment_id,
            str(props["Name"]),
            str(props["Alias"]),
            str(props["CurrentVersion"]),
            str(props["TargetVersion"]),
        )
    except KeyError as exc:
        raise CanaryError(f"deployment {deployment_id}: the AppSpec lacks {exc.args[0]}") from None


def function_name_of(name_or_arn: str) -> str:
    """`name`, `arn:...:function:name` or `arn:...:function:name:qualifier` -> `name`."""
    parts = name_or_arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6]
    return name_or_arn


def check_release_target(release: Release, settings: HookSettings) -> None:
    if function_name_of(release.function_name) != function_name_of(settings.function_name):
        raise CanaryError(
            f"deployment {release.deployment_id} targets {release.function_name}, "
            f"not the predict function {settings.function_name}"
        )
    if release.alias != settings.alias:
        raise CanaryError(f"deployment {release.deployment_id} moves alias {release.alias}, not {settings.alias}")
    if release.target_version == release.current_version:
        raise CanaryError(
            f"deployment {release.deployment_id}: target and current version are both {release.target_version}"
        )


class Deployments(Protocol):
    def release(self, deployment_id: str) -> Release: ...

    def report(self, deployment_id: str, execution_id: str, status: str) -> None: ...


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value


class CodeDeployDeployments:
    """CodeDeploy behind the two calls the hooks need. GetDeployment never returns the AppSpec content
    (documented: always null), so it is read with GetApplicationRevision."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def release(self, deployment_id: str) -> Release:
        info = self._client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        revision = self._client.get_application_revision(
            applicationName=info["applicationName"], revision=_without_nones(info["revision"])
        )["revision"]
        content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
        if not content:
            raise CanaryError(f"deployment {deployment_id}: revision {revision.get('revisionType')} has no AppSpec")
        return parse_appspec(deployment_id, content)

    def report(self, deployment_id: str, execution_id: str, status: str) -> None:
        self._client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
        )


def run_hook(
    event: Mapping[str, Any], deployments: Deployments, check: Callable[[Release], bool], settings: HookSettings
) -> str:
    """A lifecycle hook: find the release, run the check, report Succeeded/Failed to CodeDeploy.

    Whatever goes wrong inside the check (an AWS error, a bug) is logged and reported as Failed: a safety
    net that cannot decide must not let the release through, and an unreported hook would hold the
    deployment for an hour. Reporting is the one thing left to fail loudly."""
    deployment_id, execution_id = event["DeploymentId"], event["LifecycleEventHookExecutionId"]
    logger.append_keys(deployment_id=deployment_id)
    try:
        release = deployments.release(deployment_id)
        check_release_target(release, settings)
        logger.append_keys(stable_version=release.current_version, canary_version=release.target_version)
        passed = check(release)
    except Exception:  # noqa: BLE001 - fail safe: any error in a check rolls the release back (see docstring)
        logger.exception("hook check failed; reporting Failed so that CodeDeploy rolls back")
        count_verdict(ROLLBACK)
        passed = False
    status = SUCCEEDED if passed else FAILED
    deployments.report(deployment_id, execution_id, status)
    logger.info("hook reported", extra={"status": status})
    return status
