"""The retraining tasks' Logger (one service name for the family; no metrics or traces: the state machine's
execution history is their record)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="sentiment-api-retraining")
