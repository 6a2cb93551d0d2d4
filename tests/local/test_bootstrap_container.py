"""The bootstrap endpoint's bundle (tools/model_bundle.py) through the SageMaker container contract, against
the shipped artefact: extracted as SageMaker extracts it to /opt/ml/model, its code/inference.py found and
driven by the sagemaker-inference toolkit's Transformer (tests/local/container_harness.py) with the bundle's
own code on the path (sentiment_model and sentiment_core from the bundle; the libraries are the test
environment's: the vendored set is not downloaded in tests), and called by the predict function's own
endpoint client over HTTP (boto3 invoke_endpoint, the CSV request and the JSON answer of sentiment_core.wire).
The answers must be the local model server's: one implementation (sentiment_model.serving) behind both.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from botocore.config import Config
from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SageMakerEndpoint
from sentiment_model import serving
from sentiment_model.runtime import load_model

from tools import model_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("container_harness.py")
TEXTS = [
    "I love this product, it works great",
    "The package arrived on Tuesday.",
    "Terrible support, I want a refund",
    "",
    'a text with "quotes", commas, and\na newline',
    "Ünïcödé is fine too 👍",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bundle") / "model.tar.gz"
    return out, model_bundle.build(out)


@pytest.fixture(scope="module")
def model_dir(bundle: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("opt-ml") / "model"
    with tarfile.open(bundle[0]) as archive:
        archive.extractall(target, filter="data")  # SageMaker extracts the bundle to /opt/ml/model
    return target


def _bundle_env(model_dir: Path) -> dict[str, str]:
    """What a TorchServe worker of the container gets: the code dir on PYTHONPATH, the entry point's name."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(PYTHONPATH=str(model_dir / "code"), SAGEMAKER_PROGRAM="inference.py", SENTIMENT_MODEL_THREADS="1")
    return env


@pytest.fixture(scope="module")
def container(model_dir: Path) -> Iterator[dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, str(HARNESS), "--model-dir", str(model_dir)],
        env=_bundle_env(model_dir),
        cwd=model_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "harness died"
        info = json.loads(line)
        yield {"url": f"http://127.0.0.1:{info['port']}", **info}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_bundle_holds_the_artefact_the_entry_point_and_only_the_serving_code(bundle: tuple[Path, str]) -> None:
    with tarfile.open(bundle[0]) as archive:
        names = sorted(archive.getnames())
        members = archive.getmembers()
    manifest = json.loads((model_bundle.ARTEFACT_DIR / "manifest.json").read_text())
    assert {"manifest.json", *manifest["files"].values()} <= set(names)
    assert "code/inference.py" in names
    code = {n for n in names if n.startswith("code/")}
    assert {n for n in code if n.startswith("code/sentiment_model/")} == {
        f"code/sentiment_model/{m}" for m in ("__init__.py", "runtime.py", "serving.py")
    }
    assert all(n.startswith(("code/sentiment_model/", "code/sentiment_core/", "code/inference.py")) for n in code)
    assert "training.log" not in names  # what the endpoint does not run does not ship
    assert all(m.mtime == 0 and m.uid == 0 and not m.issym() and not m.islnk() for m in members)
    # the shipped model itself, byte for byte
    with tarfile.open(bundle[0]) as archive:
        extracted = archive.extractfile(manifest["files"]["model"])
        assert extracted is not None
        assert hashlib.sha256(extracted.read()).hexdigest() == manifest["model_sha256"]


def test_the_bundle_is_reproducible(bundle: tuple[Path, str], tmp_path: Path) -> None:
    """Same inputs, same bytes: deploy/deploy.sh names the S3 object by this sha256."""
    assert model_bundle.build(tmp_path / "again.tar.gz") == bundle[1]
    assert hashlib.sha256(bundle[0].read_bytes()).hexdigest() == bundle[1]


def test_the_entry_point_runs_the_bundles_own_code(model_dir: Path) -> None:
    probe = (
        "import json, sys, inference, sentiment_model, sentiment_core; "
        "print(json.dumps({'model': sentiment_model.__file__, 'core': sentiment_core.__file__, "
        "'fns': [f.__module__ for f in (inference.model_fn, inference.input_fn, inference.predict_fn, "
        "inference.output_fn)], 'loaded': sorted(sys.modules)}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=_bundle_env(model_dir),
        cwd=model_dir.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(result.stdout)
    code = str(model_dir / "code")
    assert info["model"].startswith(code) and info["core"].startswith(code)
    assert info["fns"] == ["sentiment_model.serving"] * 4
    # the serving path imports no web framework, no AWS SDK, no training or evaluation code
    for module in ("werkzeug", "boto3", "sklearn", "local_stack", "sentiment_model.train", "sentiment_model.data"):
        assert module not in info["loaded"], module


def test_ping_is_healthy_once_the_model_is_loaded(container: dict[str, Any]) -> None:
    answer = requests.get(f"{container['url']}/ping", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"status": "Healthy"}
    assert container["modules"]["inference"].endswith("code/inference.py")


def _endpoint(container: dict[str, Any]) -> SageMakerEndpoint:
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=container["url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=30),
    )
    return SageMakerEndpoint(client, "sentiment-prod-bootstrap-1a2b3c4d", attempt_s=30)


def test_the_predict_functions_client_gets_the_local_model_servers_answers(container: dict[str, Any]) -> None:
    """One text per call and the batch of all of them, the CSV request the predict function sends, the JSON
    answer it reads: the labels and scores of the local model server's code on the same artefact."""
    model = load_model(model_bundle.ARTEFACT_DIR)
    expected = serving.predict(model, TEXTS)
    endpoint = _endpoint(container)
    deadline = Deadline.for_invocation(60)
    singles = [endpoint.classify(text, f"cid-{i}", deadline) for i, text in enumerate(TEXTS)]
    batch = endpoint.classify_batch(TEXTS, "cid-batch", deadline)
    for got in (singles, batch):
        assert [p.label for p in got] == [e["predicted_label"] for e in expected]
        for prediction, answer in zip(got, expected, strict=True):
            assert prediction.model_version == model.version
            assert prediction.scores is not None
            want = dict(zip(answer["labels"], answer["probabilities"], strict=True))
            assert np.allclose([prediction.scores[k] for k in want], list(want.values()), atol=1e-6)


def test_the_container_contract_formats(container: dict[str, Any]) -> None:
    url = f"{container['url']}/invocations"
    single = requests.post(url, data=b'"I love it"\r\n', headers={"Content-Type": "text/csv"}, timeout=30)
    assert single.status_code == 200 and single.headers["Content-Type"] == "application/json"
    assert set(single.json()) == {"predicted_label", "probability", "probabilities", "labels", "model_version"}
    batch = requests.post(
        url, json={"instances": [{"text": "great"}, {"text": "awful"}]}, headers={"Accept": "*/*"}, timeout=30
    )
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b'{"text": 3}', {"Content-Type": "application/json"}, 400),
        (b"\xff\xfe", {"Content-Type": "text/csv; charset=utf-8"}, 400),
        # exactly text/csv (or application/json): the toolkit decodes the body as UTF-8 itself, before the
        # handler, and answers its own 500; the predict function only ever sends UTF-8 (wire.encode_texts)
        (b"\xff\xfe", {"Content-Type": "text/csv"}, 500),
        (b"hello", {"Content-Type": "text/plain"}, 415),
        (b'"hello"', {"Content-Type": "text/csv", "Accept": "text/csv"}, 406),
    ],
)
def test_bad_requests_get_the_status_of_the_local_server(
    container: dict[str, Any], body: bytes, headers: dict[str, str], status: int
) -> None:
    """The handler raises the toolkit's own error with the protocol's status (not the toolkit's catch-all
    500); the SageMaker runtime then reports it to the caller as a ModelError."""
    answer = requests.post(f"{container['url']}/invocations", data=body, headers=headers, timeout=30)
    assert answer.status_code == status


def test_the_handler_functions_in_process_raise_the_toolkits_error_with_the_protocols_status() -> None:
    from sagemaker_inference.errors import GenericInferenceToolkitError

    model = load_model(model_bundle.ARTEFACT_DIR)
    request = serving.input_fn('"good"\r\n"bad"\r\n', "text/csv")  # the toolkit hands text/csv over as str
    assert request == serving.Request(["good", "bad"], True)
    body, content_type = serving.output_fn(serving.predict_fn(request, model), "application/json")
    assert content_type == "application/json" and len(json.loads(body)["predictions"]) == 2
    with pytest.raises(GenericInferenceToolkitError) as raised:
        serving.input_fn(b"x", "text/plain")
    assert raised.value.status_code == 415
    with pytest.raises(GenericInferenceToolkitError) as raised:
        serving.output_fn({}, "text/csv")
    assert raised.value.status_code == 406


def test_vendored_libraries_leave_out_what_records_the_installing_machine(tmp_path: Path) -> None:
    """pip --target writes console scripts whose shebang is the installing interpreter, and a RECORD of their
    hashes: two machines (or two checkout paths) would build different bundles, and each deploy from the other
    one would replace the bootstrap model. Those files are left out; the libraries themselves stay."""

    def fake_lib(root: Path, interpreter: str) -> Path:
        lib = root / "lib"
        (lib / "onnxruntime").mkdir(parents=True)
        (lib / "onnxruntime" / "__init__.py").write_text("x = 1\n")
        (lib / "onnxruntime-1.31.1.dist-info").mkdir()
        (lib / "onnxruntime-1.31.1.dist-info" / "METADATA").write_text("Name: onnxruntime\n")
        (lib / "onnxruntime-1.31.1.dist-info" / "RECORD").write_text(f"bin/onnxruntime_test,sha256={interpreter}\n")
        (lib / "onnxruntime-1.31.1.dist-info" / "INSTALLER").write_text("pip\n")
        (lib / "bin").mkdir()
        (lib / "bin" / "onnxruntime_test").write_text(f"#!{interpreter}\n")
        (lib / "onnxruntime" / "__pycache__").mkdir()
        (lib / "onnxruntime" / "__pycache__" / "x.pyc").write_bytes(b"\0")
        return lib

    one = model_bundle.build(tmp_path / "a.tar.gz", lib=fake_lib(tmp_path / "machine-a", "/usr/bin/python3.12"))
    two = model_bundle.build(tmp_path / "b.tar.gz", lib=fake_lib(tmp_path / "machine-b", "/opt/py/bin/python3"))
    assert one == two
    with tarfile.open(tmp_path / "a.tar.gz") as archive:
        names = set(archive.getnames())
    assert {"code/lib/onnxruntime/__init__.py", "code/lib/onnxruntime-1.31.1.dist-info/METADATA"} <= names
    assert not {n for n in names if n.startswith("code/lib/bin/") or n.endswith(("/RECORD", "/INSTALLER", ".pyc"))}
