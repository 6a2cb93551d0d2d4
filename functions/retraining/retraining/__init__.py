"""The retraining tasks that statemachines/retrain.asl.json runs as Lambda functions (one CodeUri):

- dataset: ValidateDataset, checks the training CSV and names the run's resources;
- smoke: SmokeTestEndpoint, one text per label against the new endpoint, in the predict function's wire format;
- release: ReleaseModel, a canaried stack update that puts the new endpoint live;
- config, observability: the family's one configuration and its Logger.

Each task raises on failure: the state machine's Retry/Catch see the error type (the class name)."""
