"""The retraining tasks that statemachines/retrain.asl.json runs as Lambda functions (one CodeUri):

- dataset: ValidateDataset, checks the training CSV, copies the validated object version to the run's own
  key (what Autopilot trains on) and names the run's resources;
- smoke: SmokeTestEndpoint, one text per label against the new endpoint, in the predict function's wire format;
- config, observability: the family's one configuration and its Logger.

The release (ReleaseModel, CheckRelease, CheckLiveEndpoints) is functions/release_model/: it can change the
stack, so it loads no shared layer.

Each task raises on failure: the state machine's Retry/Catch see the error type (the class name)."""
