"""The retraining's release poll ceiling against the canary it waits for, both read from template.yaml: the
canary's length is a parameter (CanaryIntervalMinutes), so the ceiling must cover its largest value, the two
hooks' timeouts and CloudFormation around them. A ceiling reached too early ends the run ReleaseOutcomeUnknown
(nothing deleted, but a person is paged for a release that is still going well)."""

from __future__ import annotations

from typing import Any

import pytest
from local_stack import template

#: CloudFormation's share, generously: before the canary the transform's change set, the predict function's
#: update and new version and CodeDeploy's start (about 5 to 10 minutes); after a late alarm, CodeDeploy's
#: revert and the stack's UPDATE_ROLLBACK (about 10 to 15 minutes).
CLOUDFORMATION_MINUTES = 25


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return template.load()


def longest_release_seconds(sam: dict[str, Any]) -> int:
    resources = sam["Resources"]
    canary_minutes = int(sam["Parameters"]["CanaryIntervalMinutes"]["MaxValue"])
    hooks = sum(
        int(resources[hook]["Properties"]["Timeout"]) for hook in ("PreTrafficHookFunction", "PostTrafficHookFunction")
    )
    return canary_minutes * 60 + hooks + CLOUDFORMATION_MINUTES * 60


def test_the_release_poll_ceiling_outlasts_the_longest_canary(sam: dict[str, Any]) -> None:
    """Before: 60 polls of 60 s, one hour, for a canary that may itself last an hour (prod: 10 minutes)."""
    substitutions = sam["Resources"]["RetrainStateMachine"]["Properties"]["DefinitionSubstitutions"]
    window = int(substitutions["ReleasePollSeconds"]) * int(substitutions["ReleaseMaxPolls"])
    assert longest_release_seconds(sam) == (60 + 1 + 5 + CLOUDFORMATION_MINUTES) * 60  # what the comment says
    assert window >= longest_release_seconds(sam), (window, longest_release_seconds(sam))
