"""Shared layer of sentiment-api: configuration, schemas, validation, errors->HTTP, observability,
the SageMaker endpoint client and the predict use case. Imported by every function."""

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
