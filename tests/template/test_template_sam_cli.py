"""The real SAM CLI (.venv-sam): `sam validate --lint` and `sam build` (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
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


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """One `sam build` of the real template for this module: (build dir, wall seconds)."""
    tmp_path = tmp_path_factory.mktemp("sam")
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
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Build Succeeded" in output
    return build_dir, time.monotonic() - started


def test_sam_build_artefact_layout(
    sam_build: tuple[Path, float], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    build_dir, wall_s = sam_build
    function_dir = build_dir / "PredictFunction"
    assert (function_dir / "app.py").is_file()
    # The function's own code only: the shared code reaches it through the layers, not a copy.
    assert sorted(p.name for p in function_dir.iterdir()) == ["app.py", "prediction"]
    core, api = build_dir / "CoreLayer" / "python", build_dir / "ApiLayer" / "python"
    assert (core / "sentiment_core" / "__init__.py").is_file()
    assert (core / "aws_lambda_powertools").is_dir()
    assert (core / "aws_xray_sdk").is_dir()
    assert (api / "sentiment_api" / "__init__.py").is_file()
    assert (api / "fastjsonschema").is_dir()
    python_dir = core
    for layer in (core, api):
        assert not list(layer.rglob("__pycache__"))
    # wrapt is the one compiled dependency: it must be the Linux arm64 build, matching Architectures.
    assert any("aarch64" in p.name for p in (python_dir / "wrapt").glob("*.so")), list((python_dir / "wrapt").iterdir())
    layer_dir = build_dir / "ApiLayer"
    core_dir = build_dir / "CoreLayer"

    sizes = {
        "build_wall_s": round(wall_s, 1),
        "function_bytes": _tree_bytes(function_dir),
        "function_zip_bytes": _zipped_bytes(function_dir, tmp_path),
        "layer_bytes": _tree_bytes(layer_dir) + _tree_bytes(core_dir),
        "layer_zip_bytes": _zipped_bytes(layer_dir, tmp_path) + _zipped_bytes(core_dir, tmp_path),
    }
    for key, value in sizes.items():
        record_property(key, value)
    print("sam build:", json.dumps(sizes))
    # Lambda quota: 250 MB unzipped for a function plus its layers.
    assert sizes["function_bytes"] + sizes["layer_bytes"] < 250 * 1024 * 1024
    # layers/*/requirements.txt: boto3/botocore come from the Lambda runtime and are not bundled. A
    # bundled botocore (a transitive dependency) would shadow the runtime's and pair it with a boto3 of
    # another release.
    bundled_sdk = [name for layer in (core, api) for name in ("boto3", "botocore") if (layer / name).exists()]
    assert not bundled_sdk, (
        f"a layer bundles {bundled_sdk}, pulled in "
        "by a layer requirement; keep the SDK out of the layer (or bundle a matching boto3+botocore pair "
        "deliberately and update this test)"
    )


# ---- each deployable carries what it runs ------------------------------------------------------------
#: Imports a function's handler from its built deployable only (its CodeUri and its layers as /var/task and
#: /opt/python, then what the Lambda runtime provides: boto3, botocore and their dependencies; run with -S, so
#: no site-packages can stand in for a dependency a layer lacks), handles one request, and prints the project
#: modules it imported. AWS is a closed port, so every call fails fast and the handler takes its error path.
_PROBE = r"""
import importlib, json, sys
paths = json.loads(sys.argv[1])
name, attribute, event = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = paths["code"] + paths["layers"] + paths["runtime"]
module = importlib.import_module(name)
class Context:
    function_name, function_version, memory_limit_in_mb = "probe", "1", 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:probe:live"
    aws_request_id = "probe"
    def get_remaining_time_in_millis(self):
        return 3000
try:
    getattr(module, attribute)(event, Context())
except Exception as exc:
    print("handler raised", type(exc).__name__, file=sys.stderr)
roots = paths["code"] + paths["layers"]
print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values())
                         if getattr(m, "__file__", None) and m.__file__.startswith(tuple(roots))})))
"""
PROJECT_PACKAGES = ("sentiment_core", "sentiment_api", "sentiment_jobs")
#: Deployables that carry more unused project modules than two, and why (a known gap, not a goal): the jobs
#: worker takes the API layer for the SageMaker endpoint client (sentiment_api.endpoint, shared with
#: /predict) and its errors, deadline and clients, and runs no HTTP, so the layer's six request-path modules
#: (http, correlation, ratelimit, schemas, body, config) are unused there; the explain function calls no
#: endpoint (endpoint, wire) and reads no body (body). Splitting the endpoint client into a layer of its own
#: would bring both to two or fewer.
ALLOWED_UNUSED = {"JobWorkerFunction": 6, "ExplainFunction": 3}
#: The Lambda python3.12 runtime's own packages: the SDK and what it imports.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six")
PROBE_EVENTS = {
    "PredictFunction": "predict-positive",
    "ExplainFunction": "explain",
    "JobsFunction": "jobs-get",
    "JobWorkerFunction": {"step": "fail", "owner": "probe", "job_id": "0" * 32, "error": {"Error": "probe"}},
    "PreTrafficHookFunction": {"DeploymentId": "d-PROBE", "LifecycleEventHookExecutionId": "e-PROBE"},
    "PostTrafficHookFunction": {"DeploymentId": "d-PROBE", "LifecycleEventHookExecutionId": "e-PROBE"},
    "ValidateDatasetFunction": {
        "training_data_s3_uri": "s3://sentiment-test-data/training/x.csv",
        "job_name_prefix": "sentiment-test",
        "min_rows_per_class": 1,
        "execution_start_time": "2026-01-05T03:04:05Z",
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:sentiment-api-test-retrain:probe",
    },
    "SmokeTestEndpointFunction": {"endpoint_name": "sentiment-test-20260105-030405"},
    "ReleaseModelFunction": {
        "action": "start",
        "endpoint_name": "sentiment-test-20260105-030405",
        "run_id": "20260105-030405",
    },
}


def _project_modules(function_dir: Path, layer_dirs: list[Path]) -> set[str]:
    """The project's Python modules in a deployable: all of the function's code, the project packages of
    its layers (third-party libraries are not the project's)."""
    found = {str(p) for p in function_dir.rglob("*.py")}
    for layer in layer_dirs:
        found |= {str(p) for package in PROJECT_PACKAGES for p in (layer / package).rglob("*.py")}
    return found


def test_each_deployable_ships_only_what_its_handler_imports(sam_build: tuple[Path, float]) -> None:
    """The acceptance rule of the layout: after importing its handler and handling one request, the predict
    function has imported every project module of its deployable; every other function all but two at most."""
    from local_stack import template

    from tests.helpers import TEST_REFS, function_env, load_event

    build_dir, _ = sam_build
    runtime = build_dir.parent / "lambda-runtime"  # what the python3.12 runtime ships besides the stdlib
    runtime.mkdir(exist_ok=True)
    for name in LAMBDA_RUNTIME_PACKAGES:
        found = importlib.util.find_spec(name)
        assert found is not None and found.origin is not None, name
        source = Path(found.origin)
        source = source.parent if source.name == "__init__.py" else source
        if not (runtime / source.name).exists():
            (runtime / source.name).symlink_to(source)
    resources = template.load()["Resources"]
    report = {}
    for logical_id, function in template.functions(TEST_REFS).items():
        function_dir = build_dir / logical_id
        layer_ids = [layer["Ref"] for layer in resources[logical_id]["Properties"].get("Layers", [])]
        layer_dirs = [build_dir / layer_id / "python" for layer_id in layer_ids]
        event = PROBE_EVENTS[logical_id]
        payload = load_event(event) if isinstance(event, str) else event
        paths = {"code": [str(function_dir)], "layers": [str(d) for d in layer_dirs], "runtime": [str(runtime)]}
        env = {
            **function_env(logical_id),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_MAX_ATTEMPTS": "1",
            "PATH": os.environ.get("PATH", ""),
        }
        run = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                _PROBE,
                json.dumps(paths),
                function.module,
                function.attribute,
                json.dumps(payload),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{logical_id}: {run.stderr[-3000:]}"
        imported = set(json.loads(run.stdout.strip().splitlines()[-1]))
        unused = sorted(
            str(Path(p).relative_to(build_dir)) for p in _project_modules(function_dir, layer_dirs) - imported
        )
        report[logical_id] = unused
    print("unused project modules per deployable:", json.dumps(report, indent=1))
    assert report["PredictFunction"] == []
    assert all(len(unused) <= ALLOWED_UNUSED.get(name, 2) for name, unused in report.items()), report
