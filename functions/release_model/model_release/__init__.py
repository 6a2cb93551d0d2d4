"""The release function of statemachines/retrain.asl.json (ReleaseModel, CheckRelease, CheckLiveEndpoints).

It may change the stack (UpdateStack with the release's service role), so it ships only what it runs:
the standard library and the Lambda runtime's boto3, no shared layer (template.yaml, docs/security.md).

- config: its own settings, read once at cold start;
- stack: what the stack says now (status, parameters, the latest operation's ClientRequestToken);
- release: start or follow a release, judge its outcome, and tell the cleanup what it must not delete.

Each task raises on failure (errors): the state machine's Retry/Catch see the class name."""
