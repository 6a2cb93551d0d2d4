"""The local stack: an HTTP API emulator (API Gateway HTTP API + JWT authorizer) that drives the unchanged
Lambda handlers, a development identity provider, a SageMaker-compatible model server and a local DynamoDB.
Routes, handlers, layers, environment variables and table keys are read from template.yaml (template), and
handlers are loaded as the Lambda runtime loads them (runtime).

Run it with ``python -m local_stack serve``; mint a token with ``python -m local_stack token``.
"""

from pathlib import Path

#: The repository root (``local/local_stack/__init__.py`` → two levels up from ``local/``).
REPO_ROOT = Path(__file__).resolve().parents[2]
