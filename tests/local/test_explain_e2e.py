"""GET /explain end to end over real HTTP: a local stack whose reports folder starts empty (404), then the
governance analysis runs against that stack's model server (as `make governance` does) and the endpoint
serves the summary of the report it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.helpers import rate_limit_fields

if TYPE_CHECKING:
    from tests.local.conftest import RunningStack

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / ".cache" / "data" / "vader_icwsm2014.csv"
MODEL_MANIFEST = ROOT / "model" / "artefacts" / "minilm-sentiment" / "manifest.json"
TIMEOUT_S = 10


def explain(stack: RunningStack, token: str | None) -> requests.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{stack.api_url}/explain", headers=headers, timeout=TIMEOUT_S)


def test_explain_serves_the_latest_local_report(
    start_stack: Callable[[], AbstractContextManager[RunningStack]],
    token: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reports = tmp_path / "reports" / "governance"
    monkeypatch.setenv("LOCAL_REPORTS_DIR", str(reports))  # read by local_stack.api.lambda_environment
    with start_stack() as stack:
        assert explain(stack, None).status_code == 401  # the JWT authorizer guards the route

        missing = explain(stack, token(sub="explain-user"))
        assert missing.status_code == 404, missing.text
        error = missing.json()["error"]
        assert error["code"] == "NOT_FOUND" and error["correlation_id"] == missing.headers["x-correlation-id"]

        if not DATASET.is_file():
            pytest.skip(f"{DATASET} missing: run `make model`")
        run = subprocess.run(
            [sys.executable, "-m", "governance.analyze", "--endpoint-url", stack.model_url,
             "--endpoint-name", "sentiment-local", "--data", str(DATASET), "--out", str(reports / "2026-01-05"),
             "--report-date", "2026-01-05", "--max-rows", "600", "--sample-per-label", "15"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "core")])},
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr

        found = explain(stack, token(sub="explain-user"))
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["model_version"] == json.loads(MODEL_MANIFEST.read_text())["version"]
        assert body["report_date"] == "2026-01-05"
        assert body["report_covers_live_endpoint"] is True
        assert body["report"] == {"key": "2026-01-05/analysis.json", "markdown_key": "2026-01-05/report.md"}
        assert str(reports) not in found.text  # no internal path reaches the client
        assert all(body["top_tokens"][label] for label in ("negative", "neutral", "positive"))
        assert body["bias"]["checks"]
        assert rate_limit_fields(found.headers)[0]["q"] == 200
