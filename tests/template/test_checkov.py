"""checkov, offline, on template.yaml and on the transformed template: no failed check, the only skips are
the ones .checkov.yaml lists with a reason and docs/security.md justifies, and none of them is stale.

checkov lives in its own virtualenv (.venv-checkov, requirements/checkov.txt; `scripts/bootstrap.sh checkov`).
Without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.template.conftest import EDGE_TEMPLATE_PATH, REPO_ROOT, TEMPLATE_PATH, TEST_PARAMETERS
from tools.transform_template import load_template, transform

pytestmark = pytest.mark.slow

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CONFIG = REPO_ROOT / ".checkov.yaml"
SECURITY_DOC = REPO_ROOT / "docs" / "security.md"
TIMEOUT_S = 300

if not CHECKOV.exists():
    pytest.skip("checkov is not installed: scripts/bootstrap.sh checkov creates .venv-checkov", allow_module_level=True)


def checkov(template: Path, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "-f", str(template), "-o", "json", *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert len(reports) == 1 and reports[0]["check_type"] == "cloudformation", [r.get("check_type") for r in reports]
    return reports[0]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checkov") / "transformed.json"
    path.write_text(json.dumps(transform(TEMPLATE_PATH, parameter_overrides=TEST_PARAMETERS)), "utf-8")
    return path


def skipped_checks() -> list[str]:
    config = yaml.safe_load(CONFIG.read_text("utf-8"))
    return list(config.get("skip-check", []))


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]


@pytest.mark.parametrize("which", ["template.yaml", "transformed", "deploy/edge-waf.yaml"])
def test_checkov_passes_with_the_documented_skips(which: str, transformed: Path) -> None:
    report = checkov({"template.yaml": TEMPLATE_PATH, "transformed": transformed}.get(which, REPO_ROOT / which))

    summary = report["summary"]
    print(f"checkov {summary['checkov_version']} on {which}: {summary}")
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] > 0
    assert not failures(report), "\n".join(failures(report))


def test_every_skip_is_still_needed(transformed: Path) -> None:
    """Run only the skipped checks, without the skips: each must still fail somewhere, or its skip is stale."""
    skips = skipped_checks()
    report = checkov(transformed, "--check", ",".join(skips), "--skip-check", "CKV_NONE")
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert set(skips) <= failing, f"stale skips (remove them): {sorted(set(skips) - failing)}"


def test_every_skip_has_a_reason_here_and_in_docs_security() -> None:
    lines = CONFIG.read_text("utf-8").splitlines()
    skips = skipped_checks()
    assert skips and len(skips) == len(set(skips))
    for check in skips:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {check}")
        start = index
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        assert start < index and lines[start].strip().startswith(f"# {check} "), f"{check}: no reason just above it"
    documented = set(re.findall(r"CKV2?_AWS_\d+", SECURITY_DOC.read_text("utf-8")))
    assert set(skips) <= documented, f"not justified in docs/security.md: {sorted(set(skips) - documented)}"


def test_inline_suppressions_carry_a_reason(sam_template: dict[str, Any]) -> None:
    """Per-resource skips (Metadata: checkov: skip: [{id, comment}]) need a reason in the template and a line
    in docs/security.md, like the global ones."""
    documented = set(re.findall(r"CKV2?_AWS_\d+", SECURITY_DOC.read_text("utf-8")))
    edge = load_template(EDGE_TEMPLATE_PATH)
    for lid, resource in {**sam_template["Resources"], **edge["Resources"]}.items():
        for skip in (resource.get("Metadata", {}).get("checkov", {}) or {}).get("skip", []):
            assert len(str(skip.get("comment", "")).strip()) >= 20, f"{lid}: checkov skip {skip} without a reason"
            assert skip["id"] in documented, f"{lid}: {skip['id']} is not in docs/security.md"
