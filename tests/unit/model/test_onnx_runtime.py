"""The shipped ``onnx-transformer-v1`` artefact (model/artefacts/minilm-sentiment) through the real loader:
it loads and verifies, reports the manifest's version, refuses tampered or inconsistent files, and answers
every kind of input the API can pass it with a probability distribution."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sentiment_model import LABELS
from sentiment_model.runtime import (
    DEFAULT_ONNX_BATCH,
    DEFAULT_ONNX_THREADS,
    FORMAT_ONNX_TRANSFORMER_V1,
    MANIFEST_FILENAME,
    ModelArtifactError,
    SentimentModel,
    load_model,
    supported_formats,
)

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "model" / "artefacts" / "minilm-sentiment"

ROBUSTNESS_TEXTS = {
    "empty": "",
    "whitespace": " \t\n  \r\n ",
    "control characters": "bad\x00product\x07\x1b[31m\x7f never again\x0b",
    "emoji": "😀😀🔥👍 love it ❤️",
    "emoji only": "😡😡😡",
    "url": "see https://example.com/a?b=c&d=%20e#frag for details",
    "mention": "@united thanks for nothing #fail",
    "chinese": "这个产品非常好，我很喜欢",  # noqa: RUF001
    "arabic": "هذا المنتج رائع جدا",
    "russian": "Это ужасный продукт, не покупайте",
    "mixed scripts": "great 很好 отлично رائع",
    "zero-width and bidi": "good\u200b\u200d\u202eproduct\u2066",
    "lone surrogate": "ok \ud800 then",
    "1024 ascii": ("The product is fine but the delivery was late. " * 30)[:1024],
    "1024 single token": "a" * 1024,
    "1024 multibyte": "é" * 1024,
    "very long": "terrible " * 2000,
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SHIPPED / MANIFEST_FILENAME).read_text())


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return load_model(SHIPPED)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the shipped artefact that a test may tamper with."""
    target = tmp_path / "minilm"
    shutil.copytree(SHIPPED, target)
    for p in target.iterdir():
        p.chmod(0o644)
    return target


def edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / MANIFEST_FILENAME).read_text())
    m.update(changes)
    (path / MANIFEST_FILENAME).write_text(json.dumps(m))


def test_the_shipped_artefact_loads_with_the_manifest_version_and_labels(model: SentimentModel, manifest: dict):
    assert manifest["format"] == FORMAT_ONNX_TRANSFORMER_V1 in supported_formats()
    assert isinstance(model, SentimentModel)
    assert model.version == manifest["version"]
    assert model.labels == tuple(manifest["labels"]) == LABELS


def test_defaults_are_one_thread_and_four_texts_per_run(model: SentimentModel):
    assert (model.threads, model.batch_size) == (DEFAULT_ONNX_THREADS, DEFAULT_ONNX_BATCH) == (1, 4)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I absolutely love this, it works perfectly!", "positive"),
        ("This is terrible. It broke after one day and support never answered.", "negative"),
        ("The meeting is scheduled for Tuesday at the main office.", "neutral"),
    ],
)
def test_clear_cases_get_their_label(model: SentimentModel, text: str, label: str):
    proba = model.predict_proba([text])

    assert model.labels[int(proba[0].argmax())] == label


def test_probabilities_are_distributions_in_label_order(model: SentimentModel):
    texts = ["I love it", "I hate it", "It is Tuesday", "meh"]
    proba = model.predict_proba(texts)

    assert proba.shape == (4, 3)
    assert proba.dtype == np.float64
    assert np.all(proba >= 0) and np.all(proba <= 1)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict_proba([]).shape == (0, 3)


@pytest.mark.parametrize("name", list(ROBUSTNESS_TEXTS))
def test_robustness_inputs_get_a_distribution(model: SentimentModel, name: str):
    proba = model.predict_proba([ROBUSTNESS_TEXTS[name]])

    assert proba.shape == (1, 3)
    assert np.all(np.isfinite(proba))
    assert proba.sum() == pytest.approx(1.0)


def test_empty_and_whitespace_only_texts_are_the_same_input(model: SentimentModel):
    proba = model.predict_proba(["", "   ", "\n\t"])

    assert np.allclose(proba[0], proba[1]) and np.allclose(proba[0], proba[2])


def test_long_texts_are_truncated_to_max_length_tokens(model: SentimentModel, manifest: dict):
    from sentiment_model.runtime import pad, tokenize

    ids, mask = pad(tokenize(model.tokenizer, [ROBUSTNESS_TEXTS["very long"], "short"]))  # type: ignore[attr-defined]

    assert ids.shape == (2, manifest["max_length"])
    assert mask[0].sum() == manifest["max_length"]
    assert mask[1].sum() == 3  # [CLS] short [SEP]
    assert ids[1, 3:].tolist() == [0] * (manifest["max_length"] - 3)


def test_the_graph_is_weight_only_int8(manifest: dict):
    """No DynamicQuantizeLinear: nothing computes one activation scale for a whole batch."""
    onnx = pytest.importorskip("onnx")  # requirements/eval.txt pins it; skipped only outside the dev venv
    graph = onnx.load(str(SHIPPED / manifest["files"]["model"])).graph
    ops = {node.op_type for node in graph.node}

    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert "DequantizeLinear" in ops
    assert manifest["derived_from"]["conversion"].startswith("weight-only-int8")


BATCH_INVARIANCE_TOLERANCE = 1e-6  # the API's promise: the same label, scores within 1e-6, alone or in a batch


@pytest.mark.parametrize("batch_size", ["1", "4", "25", "64"])
def test_a_texts_answer_does_not_depend_on_its_batch(monkeypatch: pytest.MonkeyPatch, batch_size: str):
    monkeypatch.setenv("SENTIMENT_MODEL_BATCH", batch_size)
    batched = load_model(SHIPPED)
    clauses = ["the app crashed twice", "support answered quickly", "delivery was on Tuesday", "I hate the new menu",
               "prices went up again", "it works, I guess", "love the dark mode"]  # fmt: skip
    varied = [", but ".join(clauses[j % 7] for j in range(i, i + 1 + i % 9)) for i in range(40)]  # 4 to 60 tokens
    # a vader_test text whose logits moved by 2.3e-4 between a run alone and any run of two or more, when
    # onnxruntime fused the weight-only graph into MatMulNBits (int8 activations): why the runtime keeps it float
    moved = (
        "the files are there, but i could not access the player without removing the battery, waiting a short "
        "period and re-inserting the battery."
    )
    texts = [moved, *ROBUSTNESS_TEXTS.values(), *varied] * 2  # longer than one run at every size; repeats elsewhere

    together = batched.predict_proba(texts)
    alone = np.vstack([batched.predict_proba([t]) for t in texts])

    assert np.abs(together - alone).max() < BATCH_INVARIANCE_TOLERANCE
    assert together.argmax(axis=1).tolist() == alone.argmax(axis=1).tolist()
    reversed_order = batched.predict_proba(texts[::-1])[::-1]  # other companions, other padding
    assert np.abs(reversed_order - alone).max() < BATCH_INVARIANCE_TOLERANCE


def test_more_threads_give_the_same_answers(monkeypatch: pytest.MonkeyPatch, model: SentimentModel):
    monkeypatch.setenv("SENTIMENT_MODEL_THREADS", "2")
    threaded = load_model(SHIPPED)
    texts = list(ROBUSTNESS_TEXTS.values())

    assert threaded.threads == 2  # type: ignore[attr-defined]
    assert np.abs(threaded.predict_proba(texts) - model.predict_proba(texts)).max() < BATCH_INVARIANCE_TOLERANCE


@pytest.mark.parametrize("value", ["0", "-1", "two", "100000"])
@pytest.mark.parametrize("name", ["SENTIMENT_MODEL_THREADS", "SENTIMENT_MODEL_BATCH", "SENTIMENT_MODEL_PARALLEL_RUNS"])
def test_bad_thread_or_batch_settings_are_refused(monkeypatch: pytest.MonkeyPatch, value: str, name: str):
    monkeypatch.setenv(name, value)

    with pytest.raises(ModelArtifactError, match=name):
        load_model(SHIPPED)


def test_parallel_runs_give_the_same_answers(monkeypatch: pytest.MonkeyPatch):
    texts = [f"review number {i}: " + "it works, but it is slow " * (i % 6) for i in range(30)]
    monkeypatch.setenv("SENTIMENT_MODEL_PARALLEL_RUNS", "1")
    sequential = load_model(SHIPPED)
    monkeypatch.setenv("SENTIMENT_MODEL_PARALLEL_RUNS", "4")
    parallel = load_model(SHIPPED)

    assert (sequential.parallel_runs, parallel.parallel_runs) == (1, 4)  # type: ignore[attr-defined]
    assert np.array_equal(sequential.predict_proba(texts), parallel.predict_proba(texts))


def test_non_strings_are_a_type_error(model: SentimentModel):
    with pytest.raises(TypeError):
        model.predict_proba(["fine", None])  # type: ignore[list-item]


# ---- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_a_tampered_file_is_refused(copy: Path, name: str):
    payload = bytearray((copy / name).read_bytes())
    payload[len(payload) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(payload))

    with pytest.raises(ModelArtifactError, match=f"{name}: sha256 .* does not match the manifest"):
        load_model(copy)


def test_a_missing_file_is_refused(copy: Path):
    (copy / "tokenizer.json").unlink()

    with pytest.raises(ModelArtifactError, match="unreadable"):
        load_model(copy)


def test_a_file_that_is_not_onnx_is_refused_even_with_a_matching_hash(copy: Path):
    payload = b"not an onnx graph"
    (copy / "model.onnx").write_bytes(payload)
    edit_manifest(copy, model_sha256=hashlib.sha256(payload).hexdigest())

    with pytest.raises(ModelArtifactError, match="could not be loaded by onnxruntime"):
        load_model(copy)


def test_a_tokenizer_that_does_not_parse_is_refused_even_with_a_matching_hash(copy: Path):
    payload = b'{"not": "a tokenizer"}'
    (copy / "tokenizer.json").write_bytes(payload)
    edit_manifest(copy, tokenizer_sha256=hashlib.sha256(payload).hexdigest())

    with pytest.raises(ModelArtifactError, match="tokenizer file could not be loaded"):
        load_model(copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {"model": "../model.onnx", "tokenizer": "tokenizer.json"}}, "plain file name"),
        ({"files": {"model": "/etc/passwd", "tokenizer": "tokenizer.json"}}, "plain file name"),
        ({"files": {"model": "model.onnx"}}, "files.tokenizer"),
        ({"files": None}, "'files' must be an object"),
        ({"model_sha256": "abc"}, "sha256 hex digest"),
        ({"max_length": 100000}, "max_length"),
        ({"max_length": "128"}, "max_length"),
        ({"labels": ["negative", "positive"]}, "returns 3 logits for 2 labels"),
        ({"version": ""}, "version"),
    ],
)
def test_inconsistent_manifests_are_refused(copy: Path, change: dict, message: str):
    edit_manifest(copy, **change)

    with pytest.raises(ModelArtifactError, match=message):
        load_model(copy)


def test_importing_the_runtime_does_not_import_onnxruntime_or_tokenizers():
    code = (
        "import sys, sentiment_model.runtime; "
        "heavy = [m for m in ('onnxruntime', 'tokenizers', 'torch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {"PYTHONPATH": str(ROOT / "model"), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr
