"""The errors the state machine retries or catches by name (statemachines/retrain.asl.json)."""

from __future__ import annotations


class InvalidRequest(Exception):
    """The task's payload is malformed (an unknown action, a missing field)."""


class StackNotReady(Exception):
    """Another operation is changing the stack: the release cannot start now (retried with backoff)."""


class ReleaseRejected(Exception):
    """The release cannot or must not happen (CloudFormation refused it, the parameter is missing)."""


class StackUnreadable(Exception):
    """DescribeStacks or DescribeStackEvents failed: nothing can be judged (retried, then nothing is deleted)."""
