"""deploy/deploy.sh with fake aws and sam commands: which parameters reach `sam deploy`, and when the bootstrap
model's bundle is built, uploaded and passed (a new stack, a stack still serving it, one a release moved on).

The scripts run from a copy of deploy/, scripts/ and samconfig.toml (so that nothing is written into the
checkout); ``PYTHON`` stands in for the bundle build (tests/local/test_bootstrap_container.py tests the bundle)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = "ab" * 32
MANAGED_BUCKET = "aws-sam-cli-managed-default-samclisourcebucket-xyz"

FAKE_AWS = r"""#!PYTHON
import json, os, re, sys
args = sys.argv[1:]
state = json.load(open(os.environ["FAKE_STATE"]))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["aws", *args]) + "\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if args[:2] == ["cloudformation", "describe-stacks"]:
    stack, query = opt("--stack-name"), opt("--query") or ""
    if stack == "aws-sam-cli-managed-default":
        print(state["managed_bucket"]); sys.exit(0)
    if stack not in state["stacks"]:
        print(f"An error occurred (ValidationError): Stack with id {stack} does not exist", file=sys.stderr)
        sys.exit(254)
    described = state["stacks"][stack]
    if "RoleARN" in query:
        print("None"); sys.exit(0)
    keys = re.findall(r"(?:ParameterKey|OutputKey)=='(\w+)'", query)
    source = described["parameters"] if "Parameters" in query else described.get("outputs", {})
    print("\t".join(source.get(k, "") for k in keys if source.get(k)) or ("None" if "OutputKey" in query else ""))
elif args[:2] == ["sts", "get-caller-identity"]:
    print("123456789012")
elif args[:2] == ["sagemaker", "list-tags"]:
    print(state["endpoint_tag"])
elif args[:2] == ["cloudformation", "describe-stack-resource"]:
    print("data-bucket")
elif args[0] == "s3":
    pass
elif args[:2] == ["lambda", "get-alias"]:
    print("7")
else:
    sys.exit(f"unexpected aws call {args}")
"""

FAKE_SAM = r"""#!PYTHON
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["sam", *sys.argv[1:]]) + "\n")
"""

FAKE_PYTHON = r"""#!/usr/bin/env bash
# the bundle build is recorded and faked; anything else (deploy/parameters.py) runs for real
if [[ "${1:-}" == "-m" && "${2:-}" == "tools.model_bundle" ]]; then
  printf '%s\n' "$(printf '%q ' bundle "$@")" >> "$FAKE_LOG.bundle"
  mkdir -p .aws-sam/bootstrap-model && echo bundle > .aws-sam/bootstrap-model/model.tar.gz
  echo DIGEST
  exit 0
fi
exec REAL_PYTHON "$@"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, stacks: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "deploy", repo / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "scripts", repo / "scripts")
    shutil.copy(REPO_ROOT / "samconfig.toml", repo / "samconfig.toml")
    _executable(repo / "scripts" / "governance-bundle.sh", '#!/usr/bin/env bash\nmkdir -p "$1"\n')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "aws", FAKE_AWS.replace("#!PYTHON", f"#!{sys.executable}"))
    _executable(bin_dir / "sam", FAKE_SAM.replace("#!PYTHON", f"#!{sys.executable}"))
    _executable(bin_dir / "fake-python", FAKE_PYTHON.replace("REAL_PYTHON", sys.executable).replace("DIGEST", DIGEST))
    state = {"stacks": stacks, "managed_bucket": MANAGED_BUCKET, "endpoint_tag": "sentiment-api-dev"}
    (tmp_path / "state.json").write_text(json.dumps(state))
    log = tmp_path / "calls.log"
    result = subprocess.run(
        ["bash", str(repo / "deploy" / "deploy.sh"), "dev", *args],
        env={
            **{k: v for k, v in os.environ.items() if k not in {"AWS_REGION", "DEPLOY_ROLE_ARN", "BOOTSTRAP_MODEL"}},
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SAM": "sam",
            "PYTHON": str(bin_dir / "fake-python"),
            "FAKE_STATE": str(tmp_path / "state.json"),
            "FAKE_LOG": str(log),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (deploy,) = [c for c in calls if c[:2] == ["sam", "deploy"]]
    start = deploy.index("--parameter-overrides") + 1
    end = next((i for i in range(start, len(deploy)) if deploy[i].startswith("--")), len(deploy))
    bundle_log = Path(f"{log}.bundle")
    return {
        "overrides": dict(p.split("=", 1) for p in deploy[start:end]),
        "deploy": deploy,
        "uploads": [c for c in calls if c[:3] == ["aws", "s3", "cp"]],
        "bundles": bundle_log.read_text().splitlines() if bundle_log.exists() else [],
    }


BUNDLE_URL = f"s3://{MANAGED_BUCKET}/sentiment-api-dev/bootstrap-model/{DIGEST}.tar.gz"


def test_a_new_stack_gets_the_bundle_and_samconfigs_parameters(tmp_path: Path) -> None:
    run = _run(tmp_path, {})
    assert run["bundles"] and "--vendor" in run["bundles"][0]
    (upload,) = run["uploads"]
    assert upload[3:5] == [".aws-sam/bootstrap-model/model.tar.gz", BUNDLE_URL]
    assert run["overrides"]["BootstrapModelDataUrl"] == BUNDLE_URL
    assert run["overrides"]["Stage"] == "dev" and run["overrides"]["CanaryLowTrafficVerdict"] == "promote"
    # nothing given: the stack creates its identity and serves the bootstrap endpoint
    assert not {"JwtIssuerUrl", "JwtAudiences", "SageMakerEndpointName"} & set(run["overrides"])


def test_after_a_release_the_bootstrap_is_not_rebuilt_and_the_endpoint_is_kept(tmp_path: Path) -> None:
    stacks = {
        "sentiment-api-dev": {
            "parameters": {"SageMakerEndpointName": "sentiment-dev-20260201-000000", "BootstrapModelDataUrl": ""}
        }
    }
    run = _run(tmp_path, stacks)
    assert run["bundles"] == [] and run["uploads"] == []
    # neither is sent: SAM sends UsePreviousValue, so the released endpoint stays
    assert "BootstrapModelDataUrl" not in run["overrides"]
    assert "SageMakerEndpointName" not in run["overrides"]


def test_a_stack_that_still_has_its_bootstrap_endpoint_gets_the_current_bundle(tmp_path: Path) -> None:
    stacks = {
        "sentiment-api-dev": {
            "parameters": {
                "SageMakerEndpointName": "sentiment-dev-20260201-000000",
                "BootstrapModelDataUrl": "s3://x/old.tar.gz",
            }
        }
    }
    run = _run(tmp_path, stacks)
    assert run["overrides"]["BootstrapModelDataUrl"] == BUNDLE_URL


def test_given_overrides_are_merged_and_other_arguments_pass_through(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        {},
        "--parameter-overrides",
        "SageMakerEndpointName=team-endpoint",
        "LogRetentionDays=30",
        "--no-confirm-changeset",
    )
    assert run["bundles"] == []  # an endpoint is given: no bootstrap model
    assert run["overrides"]["SageMakerEndpointName"] == "team-endpoint"
    assert run["overrides"]["LogRetentionDays"] == "30"  # wins over samconfig's 14
    assert run["overrides"]["Stage"] == "dev"
    assert "--no-confirm-changeset" in run["deploy"]


def test_an_explicitly_empty_endpoint_goes_back_to_the_bootstrap_one(tmp_path: Path) -> None:
    stacks = {
        "sentiment-api-dev": {
            "parameters": {"SageMakerEndpointName": "sentiment-dev-20260201-000000", "BootstrapModelDataUrl": ""}
        }
    }
    run = _run(tmp_path, stacks, "--parameter-overrides", 'SageMakerEndpointName=""')
    assert run["overrides"]["SageMakerEndpointName"] == '""'
    assert run["overrides"]["BootstrapModelDataUrl"] == BUNDLE_URL  # it needs its bundle again


def test_bootstrap_off_is_refused_while_the_bootstrap_endpoint_is_the_rollback_target(tmp_path: Path) -> None:
    stacks = {
        "sentiment-api-dev": {
            "parameters": {
                "SageMakerEndpointName": "sentiment-dev-20260201-000000",
                "PreviousSageMakerEndpointName": "sentiment-dev-bootstrap-1a2b3c4d",
                "BootstrapModelDataUrl": "s3://x/old.tar.gz",
            }
        }
    }
    with pytest.raises(AssertionError, match="rollback target"):
        _run(tmp_path, stacks, env={"BOOTSTRAP_MODEL": "off"})
    # given explicitly, the operator's choice
    run = _run(
        tmp_path / "again",
        stacks,
        "--parameter-overrides",
        'PreviousSageMakerEndpointName=""',
        env={"BOOTSTRAP_MODEL": "off"},
    )
    assert run["overrides"]["BootstrapModelDataUrl"] == '""'


def test_bootstrap_off_removes_the_bootstrap_endpoint(tmp_path: Path) -> None:
    stacks = {
        "sentiment-api-dev": {
            "parameters": {
                "SageMakerEndpointName": "sentiment-dev-20260201-000000",
                "BootstrapModelDataUrl": "s3://x/old.tar.gz",
            }
        }
    }
    run = _run(tmp_path, stacks, env={"BOOTSTRAP_MODEL": "off"})
    assert run["bundles"] == []
    assert run["overrides"]["BootstrapModelDataUrl"] == '""'  # SAM's form of an empty value


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_parameters_py_reads_each_environment(env: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "deploy" / "parameters.py"), env, "X=1"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert f"Stage={env}" in lines and lines[-1] == "X=1"
