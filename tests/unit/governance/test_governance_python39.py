"""The governance package runs in the SageMaker scikit-learn 1.2-1 processing image (Python 3.9, no project
dependencies): run the analysis and the Clarify conversion from the bundle the job gets
(scripts/governance-bundle.sh: governance/ + sentiment_core/) under a Python 3.9 interpreter, standard
library only (skipped when no 3.9 interpreter is installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = r"""
import json, sys
from governance.analyze import analyze, build_report
from governance.importance import Prediction, tokens
from governance.report import write_report
from governance import clarify, predictors  # importable without boto3 (imported lazily)

# the shared wire format (sentiment_core.wire, in the bundle) reads both answer formats under 3.9
row = b'positive,0.7,"[0.1, 0.2, 0.7]","[\'negative\', \'neutral\', \'positive\']"\n'
got, version = predictors.parse_batch(row, "text/csv", 1, "model_version=v3")
assert (got[0].label, got[0].probabilities["positive"], version) == ("positive", 0.7, "v3"), got
got, _ = predictors.parse_batch(b'{"predictions": [{"predicted_label": "Neutral"}]}', "application/json", 1)
assert got[0].label == "neutral" and got[0].probabilities["neutral"] == 1.0

def model(texts):
    out = []
    for text in texts:
        words = {t for t, _, _ in tokens(text)}
        label = "positive" if "good" in words else "negative" if "bad" in words else "neutral"
        out.append(Prediction(label, {n: 0.8 if n == label else 0.1 for n in ("negative", "neutral", "positive")}))
    return out

rows = [{"text": t, "label": l, "domain": d} for t, l, d in [
    ("good day", "positive", "a"), ("a good one", "positive", "b"), ("bad luck", "negative", "a"),
    ("so bad", "negative", "b"), ("the train", "neutral", "a"), ("it is noon", "neutral", "b")]]
report = build_report(analyze(rows, model, min_group_size=1), engine="script", report_date="2026-01-05",
                      model_version="m", endpoint=None, source="x.csv", sha256="0" * 64)
write_report(report, __import__("pathlib").Path(sys.argv[1]))
print(json.dumps({"python": sys.version_info[:2], "accuracy": report["performance"]["accuracy"]}))
"""


def python39() -> str | None:
    for candidate in (shutil.which("python3.9"), str(Path.home() / ".pyenv/versions/3.9.18/bin/python")):
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if probe.returncode == 0 and probe.stdout.strip() == "(3, 9)":
                return candidate
    return None


def test_governance_runs_on_python39_with_the_standard_library_only(tmp_path: Path) -> None:
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no Python 3.9 interpreter installed")
    bundle = tmp_path / "code"
    subprocess.run([str(ROOT / "scripts" / "governance-bundle.sh"), str(bundle)], check=True, timeout=60)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(bundle), "PYTHONNOUSERSITE": "1"}
    run = subprocess.run(
        [
            interpreter,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(bundle)!r}); exec({SCRIPT!r})",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"python": [3, 9], "accuracy": 1.0}
    assert json.loads((tmp_path / "out" / "analysis.json").read_text())["report_date"] == "2026-01-05"
