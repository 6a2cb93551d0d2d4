"""The artefact: manifest contents, reproducible version, and a loader that refuses anything it cannot
verify. Uses the tiny synthetic artefact (sentiment_model.testing), never the real one."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sentiment_model import LABELS, train
from sentiment_model.runtime import (
    FORMAT_SKOPS_SKLEARN_V1,
    MANIFEST_FILENAME,
    SKOPS_MODEL_FILENAME,
    ModelArtifactError,
    SentimentModel,
    load_model,
)
from sentiment_model.testing import TINY_PARAMS, build_tiny_artifact, synthetic_examples

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def artefact(tiny_dir: Path, tmp_path: Path) -> Path:
    """A private copy that a test may tamper with."""
    return Path(shutil.copytree(tiny_dir, tmp_path / "model"))


def manifest_of(path: Path) -> dict:
    return json.loads((path / MANIFEST_FILENAME).read_text())


def write_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST_FILENAME).write_text(json.dumps(manifest))


def test_manifest_has_the_contract_fields_and_no_timestamp(tiny_dir: Path):
    m = manifest_of(tiny_dir)

    assert m["format"] == FORMAT_SKOPS_SKLEARN_V1 == "skops-sklearn-v1"
    assert m["labels"] == ["negative", "neutral", "positive"]
    assert re.fullmatch(r"tfidf-lr-[0-9a-f]{12}", m["version"])
    assert re.fullmatch(r"[0-9a-f]{64}", m["data_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", m["code_version"])
    assert re.fullmatch(r"[0-9a-f]{64}", m["model_sha256"])
    assert m["model_file"] == SKOPS_MODEL_FILENAME
    assert m["params"] == TINY_PARAMS
    test = m["metrics"]["test"]
    assert set(test) >= {"accuracy", "macro_f1", "per_class_f1", "per_domain", "n"}
    assert set(test["per_class_f1"]) == set(LABELS)
    assert set(test["per_domain"]) == {"a", "b"}
    assert all("macro_f1" in d for d in test["per_domain"].values())
    assert m["counts"]["train"] == {"negative": 12, "neutral": 12, "positive": 12, "total": 36}
    assert m["counts"]["test"]["total"] == 12
    assert "data" in m
    assert not any("time" in key or key.endswith("_at") for key in m)


def test_version_is_the_hash_of_data_code_and_params(tiny_dir: Path):
    m = manifest_of(tiny_dir)

    assert m["version"] == train.model_version(m["data_sha256"], m["code_version"], m["params"])
    assert m["code_version"] == train.code_version()
    changed = {**m["params"], "classifier": {**m["params"]["classifier"], "C": 1.0}}
    assert train.model_version(m["data_sha256"], m["code_version"], changed) != m["version"]
    assert train.model_version("0" * 64, m["code_version"], m["params"]) != m["version"]


def test_the_same_inputs_give_a_byte_identical_artefact(tiny_dir: Path, tmp_path: Path):
    again = build_tiny_artifact(tmp_path / "again")

    for name in (MANIFEST_FILENAME, SKOPS_MODEL_FILENAME):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_loaded_model_predicts_probabilities_in_label_order(tiny_dir: Path):
    model = load_model(tiny_dir)

    assert isinstance(model, SentimentModel)
    assert model.labels == LABELS
    assert model.version == manifest_of(tiny_dir)["version"]
    proba = model.predict_proba(["I love the phone, it is love!", "I hate the phone, it is hate.", "", "   "])
    assert proba.shape == (4, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert [model.labels[i] for i in proba[:2].argmax(axis=1)] == ["positive", "negative"]
    assert model.predict_proba([]).shape == (0, 3)


def test_columns_follow_the_manifest_label_order(artefact: Path, tiny_dir: Path):
    m = manifest_of(artefact)
    m["labels"] = ["positive", "negative", "neutral"]
    write_manifest(artefact, m)
    texts = [ex.text for ex in synthetic_examples()[:6]]

    reordered = load_model(artefact).predict_proba(texts)
    original = load_model(tiny_dir).predict_proba(texts)

    assert np.allclose(reordered, original[:, [2, 0, 1]])


def test_the_test_split_is_not_trained_on():
    with pytest.raises(ValueError, match="also occur in the train split"):
        ex = synthetic_examples()
        train.train(ex[:30], ex[25:], data_sha256="0" * 64, params=TINY_PARAMS, select=False)


def test_cross_validation_picks_from_the_grid_on_the_train_split_only():
    ex = synthetic_examples()
    params = {
        **TINY_PARAMS,
        "selection": {"cv_folds": 2, "C_grid": [0.1, 10.0], "class_weight_grid": [None, "balanced"], "seed": 1},
    }

    chosen, results = train.select_params(ex, params, n_jobs=1)

    assert len(results) == 4
    assert chosen["classifier"]["C"] in (0.1, 10.0)
    best = max(r["macro_f1_mean"] for r in results)
    assert any(
        r["C"] == chosen["classifier"]["C"] and r["class_weight"] == chosen["classifier"]["class_weight"]
        and r["macro_f1_mean"] == best
        for r in results
    )  # fmt: skip


# ---- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pickle-sklearn-v1", None, "", 3])
def test_unknown_formats_are_refused_with_a_clear_error(artefact: Path, fmt):
    m = manifest_of(artefact)
    m["format"] = fmt
    write_manifest(artefact, m)

    supported = r"supports \['onnx-transformer-v1', 'skops-sklearn-v1'\]"
    with pytest.raises(ModelArtifactError, match=rf"unsupported artefact format .*{supported}"):
        load_model(artefact)


def test_a_tampered_model_file_is_refused(artefact: Path):
    path = artefact / SKOPS_MODEL_FILENAME
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(payload))

    with pytest.raises(ModelArtifactError, match="does not match the manifest"):
        load_model(artefact)


def _rewrite_schema(path: Path, edit) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "schema.json":
                schema = json.loads(content)
                edit(schema)
                content = json.dumps(schema).encode()
            dst.writestr(name, content)
    return out.getvalue()


def test_a_model_file_with_types_outside_the_allow_list_is_refused_even_with_a_matching_hash(artefact: Path):
    def smuggle(schema: dict) -> None:
        schema["content"]["attack"] = {
            "__class__": "system", "__module__": "os", "__loader__": "ObjectNode", "content": {},
        }  # fmt: skip

    payload = _rewrite_schema(artefact / SKOPS_MODEL_FILENAME, smuggle)
    (artefact / SKOPS_MODEL_FILENAME).write_bytes(payload)
    m = manifest_of(artefact)
    m["model_sha256"] = hashlib.sha256(payload).hexdigest()
    write_manifest(artefact, m)

    with pytest.raises(ModelArtifactError, match=r"outside the allow-list: \['os.system'\]"):
        load_model(artefact)


def test_a_model_file_that_is_not_a_skops_archive_is_refused(artefact: Path):
    payload = b"\x80\x04not a zip at all"
    (artefact / SKOPS_MODEL_FILENAME).write_bytes(payload)
    m = manifest_of(artefact)
    m["model_sha256"] = hashlib.sha256(payload).hexdigest()
    write_manifest(artefact, m)

    with pytest.raises(ModelArtifactError, match="not a valid skops archive"):
        load_model(artefact)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_file": "../model.skops"}, "plain file name"),
        ({"model_file": "/etc/passwd"}, "plain file name"),
        ({"model_sha256": "abc"}, "sha256 hex digest"),
        ({"labels": ["negative", "positive", "other"]}, "do not match manifest labels"),
        ({"labels": ["negative", "negative", "positive"]}, "distinct strings"),
        ({"labels": []}, "distinct strings"),
        ({"version": ""}, "version"),
    ],
)
def test_inconsistent_manifests_are_refused(artefact: Path, change: dict, message: str):
    write_manifest(artefact, {**manifest_of(artefact), **change})

    with pytest.raises(ModelArtifactError, match=message):
        load_model(artefact)


def test_missing_or_unreadable_manifests_are_refused(tmp_path: Path):
    with pytest.raises(ModelArtifactError, match="not found"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILENAME).write_text("{not json")
    with pytest.raises(ModelArtifactError, match="unreadable"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILENAME).write_text("[]")
    with pytest.raises(ModelArtifactError, match="JSON object"):
        load_model(tmp_path)


def test_the_runtime_module_does_not_import_training_code():
    code = (
        "import sys, sentiment_model.runtime as r; "
        "heavy = [m for m in ('sklearn', 'skops', 'scipy', 'sentiment_model.train', 'sentiment_model.data') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "model")}, capture_output=True,
        text=True, check=False,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stdout + proc.stderr
