"""The release function's settings, read once at cold start into a frozen dataclass (the pattern of
sentiment_core.settings, restated here because this function loads no shared layer).

STACK_NAME, STAGE: the stack it releases into and the samconfig.toml environment of a manual release;
CLOUDFORMATION_ROLE_ARN: the release service role CloudFormation updates the stack with (empty: the
release is manual, the function only prints the `sam deploy` command); RELEASE_STACK_POLICY: a JSON stack
policy document applied during the release's update only (StackPolicyDuringUpdateBody; empty: none)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigurationError(RuntimeError):
    """Missing or invalid configuration: raised at cold start, which fails the init phase."""


@dataclass(frozen=True, slots=True)
class ReleaseSettings:
    stack_name: str
    stage: str
    role_arn: str | None
    stack_policy: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReleaseSettings:
        env = os.environ if env is None else env
        missing = [name for name in ("STACK_NAME", "STAGE") if not env.get(name)]
        if missing:
            raise ConfigurationError(f"missing required environment variables: {', '.join(missing)}")
        policy = env.get("RELEASE_STACK_POLICY") or None
        if policy is not None:
            _check_policy(policy)
        return cls(
            stack_name=env["STACK_NAME"],
            stage=env["STAGE"],
            role_arn=env.get("CLOUDFORMATION_ROLE_ARN") or None,
            stack_policy=policy,
        )


def _check_policy(text: str) -> None:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"RELEASE_STACK_POLICY is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Statement"), list) or not document["Statement"]:
        raise ConfigurationError("RELEASE_STACK_POLICY must be a stack policy document with a Statement list")
