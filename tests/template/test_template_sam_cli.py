"""The real SAM CLI (.venv-sam): `sam validate --lint` and `sam build` (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.template.conftest import REPO_ROOT

SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SAM.exists(), reason="SAM CLI not installed: run scripts/bootstrap.sh sam"),
]


def _offline_env() -> dict[str, str]:
    """The caller's environment without any AWS credentials or profile, and without telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(
        SAM_CLI_TELEMETRY="0",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _python312_dir() -> str:
    """`sam build` looks for python3.12 on PATH; the pyenv shim fails, so use the real interpreter."""
    found = subprocess.run(
        [str(REPO_ROOT / "scripts" / "find-python.sh"), "3.12"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.skip(f"no python3.12 for sam build: {found.stderr.strip()}")
    return str(Path(found.stdout.strip()).parent)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _zipped_bytes(path: Path, scratch: Path) -> int:
    """Size of the deployment zip `sam package` would upload for this artefact folder (deflate)."""
    archive = scratch / f"{path.name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(path))
    return archive.stat().st_size


def test_sam_validate_lint_needs_no_credentials() -> None:
    result = subprocess.run(
        [str(SAM), "validate", "--lint", "--region", "us-east-1", "--template", "template.yaml"],
        cwd=REPO_ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is a valid SAM Template" in output


def test_sam_build_artefact_layout(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    if not (REPO_ROOT / "functions" / "predict" / "app.py").exists():
        pytest.skip("functions/predict/app.py does not exist yet: nothing to build")
    if not (REPO_ROOT / "layers" / "common" / "sentiment_common").is_dir():
        pytest.skip("layers/common/sentiment_common does not exist yet: nothing to build")
    env = _offline_env()
    env["PATH"] = _python312_dir() + os.pathsep + env.get("PATH", "")
    build_dir = tmp_path / "build"
    started = time.monotonic()
    result = subprocess.run(
        [
            str(SAM),
            "build",
            "--template",
            "template.yaml",
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-cached",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    wall_s = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Build Succeeded" in output

    function_dir = build_dir / "PredictFunction"
    layer_dir = build_dir / "CommonLayer"
    assert (function_dir / "app.py").is_file()
    # The entry point only: the shared code reaches the function through the layer, not a copy.
    assert not (function_dir / "sentiment_common").exists()
    python_dir = layer_dir / "python"
    assert (python_dir / "sentiment_common" / "__init__.py").is_file()
    assert (python_dir / "aws_lambda_powertools").is_dir()
    assert (python_dir / "fastjsonschema").is_dir()
    assert (python_dir / "aws_xray_sdk").is_dir()
    assert not list(python_dir.rglob("__pycache__"))
    # wrapt is the one compiled dependency: it must be the Linux arm64 build, matching Architectures.
    assert any("aarch64" in p.name for p in (python_dir / "wrapt").glob("*.so")), list((python_dir / "wrapt").iterdir())

    sizes = {
        "build_wall_s": round(wall_s, 1),
        "function_bytes": _tree_bytes(function_dir),
        "function_zip_bytes": _zipped_bytes(function_dir, tmp_path),
        "layer_bytes": _tree_bytes(layer_dir),
        "layer_zip_bytes": _zipped_bytes(layer_dir, tmp_path),
    }
    for key, value in sizes.items():
        record_property(key, value)
    print("sam build:", json.dumps(sizes))
    # Lambda quota: 250 MB unzipped for a function plus its layers.
    assert sizes["function_bytes"] + sizes["layer_bytes"] < 250 * 1024 * 1024
    # layers/common/requirements.txt: boto3/botocore come from the Lambda runtime and are not bundled. A
    # bundled botocore (a transitive dependency) would shadow the runtime's and pair it with a boto3 of
    # another release.
    bundled_sdk = [name for name in ("boto3", "botocore") if (python_dir / name).exists()]
    assert not bundled_sdk, (
        f"the layer bundles {bundled_sdk} ({_tree_bytes(python_dir / bundled_sdk[-1]) // 1024} KiB), pulled in "
        "by a layer requirement; keep the SDK out of the layer (or bundle a matching boto3+botocore pair "
        "deliberately and update this test)"
    )
