"""Load a model artefact directory and predict. Import-light: no training code, format libraries are
imported only when an artefact of that format is loaded.

An artefact directory holds ``manifest.json`` plus the files its ``format`` names. Common manifest fields:
``format``, ``version``, ``labels``. Each format registers a loader with :func:`register_format`; callers only
see :class:`SentimentModel`, so a new format is one more loader function here and no change elsewhere.

Formats:

``onnx-transformer-v1``
    A fine-tuned transformer encoder + classification head exported to ONNX (``files.model``: int8 weights;
    the shipped graph is weight-only, :mod:`sentiment_model.weight_only`) and its Hugging Face ``tokenizers``
    file (``files.tokenizer``); the manifest pins both (``model_sha256``, ``tokenizer_sha256``) and
    ``max_length`` (tokens; longer texts are truncated). The graph takes ``input_ids`` and ``attention_mask``
    (int64, ``[batch, sequence]``) and returns ``logits`` (``[batch, len(labels)]``) that are already
    temperature-scaled, so their softmax is the calibrated probability. Runs with onnxruntime + tokenizers
    only (no torch). Both files are read once, hashed, and the verified bytes are what onnxruntime and the
    tokenizer are built from (no second read of the files). Threads: ``SENTIMENT_MODEL_THREADS``
    (onnxruntime ``intra_op_num_threads``, default :data:`DEFAULT_ONNX_THREADS`). Texts per graph run:
    ``SENTIMENT_MODEL_BATCH`` (default :data:`DEFAULT_ONNX_BATCH`); the texts of a call are length-sorted
    and padded to the longest of each run; ``SENTIMENT_MODEL_PARALLEL_RUNS`` runs of one call go at once
    (default :data:`DEFAULT_ONNX_PARALLEL_RUNS`). A text's answer does not depend on the texts it shares a run
    with (the products are float32 and no activation scale is shared between rows; tested to 1e-6), so
    batching is only a speed choice.

``skops-sklearn-v1``
    ``model.skops``: a scikit-learn ``Pipeline`` in the skops format, whose sha256 the manifest pins
    (``model_sha256``). Loading never unpickles: skops rebuilds objects from a JSON schema and refuses any
    type outside an explicit allow-list (:data:`SKOPS_TRUSTED_TYPES`), which is checked before loading.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MANIFEST_FILENAME = "manifest.json"
FORMAT_SKOPS_SKLEARN_V1 = "skops-sklearn-v1"
FORMAT_ONNX_TRANSFORMER_V1 = "onnx-transformer-v1"
ONNX_THREADS_ENV = "SENTIMENT_MODEL_THREADS"
ONNX_BATCH_ENV = "SENTIMENT_MODEL_BATCH"
ONNX_PARALLEL_ENV = "SENTIMENT_MODEL_PARALLEL_RUNS"
# Measured on the 2-core development machine (bench/model_latency.py, single text): see docs/model-card.md.
DEFAULT_ONNX_THREADS = 1
# Texts per graph run: 4 was the fastest for batches of 25 short texts on the 2-core machine (1: 167, 4: 186,
# 8: 169, 25: 105 texts/s; docs/model-card.md). Larger runs pad more and lose cache locality.
DEFAULT_ONNX_BATCH = 4
# Graph runs of one call (a batch request) at once, each on its own thread (onnxruntime runs one session
# from several threads, and releases the GIL): a batch uses the machine's cores while a single text keeps
# one thread. Capped at 4; answers are the same whatever the value (each run is computed alone).
DEFAULT_ONNX_PARALLEL_RUNS = max(1, min(4, os.cpu_count() or 1))
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "logits"
SKOPS_MODEL_FILENAME = "model.skops"

# Every type a ``skops-sklearn-v1`` artefact may contain. The archive's schema is audited against this
# list before skops builds anything (skops' own default trust list is much wider: all of scikit-learn).
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.ndarray",
    "numpy.float64",
)
_SKOPS_BUILTIN_TYPES = frozenset(
    f"builtins.{t}" for t in ("dict", "list", "tuple", "str", "int", "float", "bool", "NoneType")
)

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelArtifactError(Exception):
    """The artefact directory is missing, unknown, tampered with or inconsistent."""


@runtime_checkable
class SentimentModel(Protocol):
    """What serving code relies on, whatever the artefact format."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def version(self) -> str: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape ``(len(texts), len(labels))``, columns in the order of :attr:`labels`."""
        ...


Loader = Callable[[Path, dict[str, Any]], SentimentModel]
_LOADERS: dict[str, Loader] = {}


def register_format(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn

    return deco


def supported_formats() -> tuple[str, ...]:
    return tuple(sorted(_LOADERS))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check the format-independent part of ``<path>/manifest.json``."""
    mpath = Path(path) / MANIFEST_FILENAME
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelArtifactError(f"{mpath}: not found (build it: python -m sentiment_model.build)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{mpath}: unreadable: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ModelArtifactError(f"{mpath}: expected a JSON object")
    fmt = manifest.get("format")
    if fmt not in _LOADERS:
        raise ModelArtifactError(
            f"{mpath}: unsupported artefact format {fmt!r}; this runtime supports {list(supported_formats())}"
        )
    version = manifest.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ModelArtifactError(f"{mpath}: 'version' must be a non-empty string")
    labels = manifest.get("labels")
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
        or len(set(labels)) != len(labels)
    ):
        raise ModelArtifactError(f"{mpath}: 'labels' must be a non-empty list of distinct strings")
    return manifest


def load_model(path: str | Path) -> SentimentModel:
    """Load the artefact directory ``path`` (verified against its manifest) as a :class:`SentimentModel`."""
    path = Path(path)
    manifest = read_manifest(path)
    return _LOADERS[manifest["format"]](path, manifest)


def _artefact_file(path: Path, manifest: dict[str, Any], name_key: str, sha_key: str) -> bytes:
    return _verified_file(path, manifest.get(name_key), name_key, manifest, sha_key)


def _verified_file(path: Path, name: Any, name_key: str, manifest: dict[str, Any], sha_key: str) -> bytes:
    """The bytes of ``path/name``, after checking ``name`` is a plain file name and the sha256 is pinned."""
    if not isinstance(name, str) or not _FILE_NAME.match(name):
        raise ModelArtifactError(f"{path}: manifest {name_key!r} must be a plain file name, got {name!r}")
    expected = manifest.get(sha_key)
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ModelArtifactError(f"{path}: manifest {sha_key!r} must be a sha256 hex digest")
    try:
        payload = (path / name).read_bytes()
    except OSError as exc:
        raise ModelArtifactError(f"{path / name}: unreadable: {exc}") from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise ModelArtifactError(f"{path / name}: sha256 {actual} does not match the manifest ({expected})")
    return payload


# --- skops-sklearn-v1 -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkopsSklearnModel:
    labels: tuple[str, ...]
    version: str
    estimator: Any
    _columns: tuple[int, ...]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be strings")
        if not texts:
            return np.empty((0, len(self.labels)), dtype=np.float64)
        proba = np.asarray(self.estimator.predict_proba(texts), dtype=np.float64)
        return proba[:, self._columns]


def _skops_schema_types(payload: bytes) -> set[str]:
    """``module.class`` of every node in a skops archive's schema (read without building any object)."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if module is not None or cls is not None:
                found.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@register_format(FORMAT_SKOPS_SKLEARN_V1)
def _load_skops_sklearn(path: Path, manifest: dict[str, Any]) -> SentimentModel:
    payload = _artefact_file(path, manifest, "model_file", "model_sha256")
    try:
        types = _skops_schema_types(payload)
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{path}: model file is not a valid skops archive: {exc}") from exc
    unexpected = sorted(types - set(SKOPS_TRUSTED_TYPES) - _SKOPS_BUILTIN_TYPES)
    if unexpected:
        raise ModelArtifactError(f"{path}: model file contains types outside the allow-list: {unexpected}")

    import skops.io as sio  # deferred: only this format needs skops (and, through it, scikit-learn)

    try:
        estimator = sio.loads(payload, trusted=list(SKOPS_TRUSTED_TYPES))
    except Exception as exc:  # skops raises many types for malformed content; all mean "invalid"
        raise ModelArtifactError(f"{path}: model file could not be loaded: {exc}") from exc
    if f"{type(estimator).__module__}.{type(estimator).__qualname__}" != "sklearn.pipeline.Pipeline":
        raise ModelArtifactError(f"{path}: expected a scikit-learn Pipeline, got {type(estimator).__qualname__}")
    labels = tuple(manifest["labels"])
    classes = [str(c) for c in getattr(estimator, "classes_", ())]
    if sorted(classes) != sorted(labels):
        raise ModelArtifactError(f"{path}: model classes {classes} do not match manifest labels {list(labels)}")
    return SkopsSklearnModel(
        labels=labels,
        version=manifest["version"],
        estimator=estimator,
        _columns=tuple(classes.index(label) for label in labels),
    )


# --- onnx-transformer-v1 --------------------------------------------------------------------------------


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ModelArtifactError(f"{name}={raw!r}: expected an integer in [{low}, {high}]") from None
    if not low <= value <= high:
        raise ModelArtifactError(f"{name}={value}: expected an integer in [{low}, {high}]")
    return value


def _safe_text(text: str) -> str:
    """Unpaired UTF-16 surrogates (``"\\ud800"`` in JSON) cannot cross into the Rust tokenizer: replace them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[Any]:
    """The tokenizer's encodings of ``texts`` (truncated to the tokenizer's max length)."""
    return list(tokenizer.encode_batch([_safe_text(t) for t in texts]))


def pad(encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (int64), padded with 0 to the longest of ``encodings``."""
    width = max(1, max(len(e.ids) for e in encodings))
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.attention_mask)] = e.attention_mask
    return ids, mask


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}


def _executor(workers: int) -> ThreadPoolExecutor:
    """One pool per size for the process (created on the first call that needs it)."""
    if workers not in _EXECUTORS:
        _EXECUTORS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx-run")
    return _EXECUTORS[workers]


@dataclass(frozen=True, slots=True)
class OnnxTransformerModel:
    """Tokenise (truncating to ``max_length`` tokens), run the ONNX graph ``batch_size`` texts at a time
    (length-sorted, each run padded with 0 to its longest sequence), softmax the (already temperature-scaled)
    logits."""

    labels: tuple[str, ...]
    version: str
    session: Any
    tokenizer: Any
    max_length: int
    batch_size: int
    threads: int
    parallel_runs: int = 1

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be strings")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenize(self.tokenizer, texts)
        order = list(range(len(texts)))
        if self.batch_size > 1:  # similar lengths together: less padding
            order.sort(key=lambda i: len(encodings[i].ids))
        runs = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

        def run(idx: list[int]) -> None:
            ids, mask = pad([encodings[i] for i in idx])
            (logits,) = self.session.run([ONNX_OUTPUT], {"input_ids": ids, "attention_mask": mask})
            out[idx] = logits

        if self.parallel_runs > 1 and len(runs) > 1:
            list(_executor(self.parallel_runs).map(run, runs))  # list(): re-raise a run's exception here
        else:
            for idx in runs:
                run(idx)
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.logits(texts))


@register_format(FORMAT_ONNX_TRANSFORMER_V1)
def _load_onnx_transformer(path: Path, manifest: dict[str, Any]) -> SentimentModel:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelArtifactError(f"{path}: manifest 'files' must be an object with 'model' and 'tokenizer'")
    model_bytes = _verified_file(path, files.get("model"), "files.model", manifest, "model_sha256")
    tokenizer_bytes = _verified_file(path, files.get("tokenizer"), "files.tokenizer", manifest, "tokenizer_sha256")
    max_length = manifest.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 8 <= max_length <= 512:
        raise ModelArtifactError(f"{path}: manifest 'max_length' must be an integer in [8, 512], got {max_length!r}")
    labels = tuple(manifest["labels"])
    threads = _env_int(ONNX_THREADS_ENV, DEFAULT_ONNX_THREADS, 1, 64)
    batch_size = _env_int(ONNX_BATCH_ENV, DEFAULT_ONNX_BATCH, 1, 1024)
    parallel_runs = _env_int(ONNX_PARALLEL_ENV, DEFAULT_ONNX_PARALLEL_RUNS, 1, 64)

    import onnxruntime as ort  # deferred: only this format needs onnxruntime and tokenizers
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(tokenizer_bytes.decode("utf-8"))
    except Exception as exc:  # tokenizers raises its own Exception subclass for any malformed file
        raise ModelArtifactError(f"{path}: tokenizer file could not be loaded: {exc}") from exc
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # Keep DequantizeLinear -> MatMul in float32: the weights are dequantised once, at load (constant folding),
    # and every product is float32. Left to itself, onnxruntime fuses the pair into MatMulNBits, whose int8
    # activation path changed one vader_test text's logits by 2.3e-4 between a run alone and a run of two
    # (tests/unit/model/test_onnx_runtime.py): answers would depend on the batch again. No effect on graphs
    # without DequantizeLinear weights.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    try:
        session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several types (Fail, InvalidGraph, ...) for a bad model
        raise ModelArtifactError(f"{path}: model file could not be loaded by onnxruntime: {exc}") from exc
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = {o.name: o for o in session.get_outputs()}
    if sorted(inputs) != sorted(ONNX_INPUTS) or ONNX_OUTPUT not in outputs:
        raise ModelArtifactError(
            f"{path}: the graph must take {list(ONNX_INPUTS)} and return {ONNX_OUTPUT!r}; "
            f"it takes {list(inputs)} and returns {sorted(outputs)}"
        )
    width = outputs[ONNX_OUTPUT].shape[-1] if outputs[ONNX_OUTPUT].shape else None
    if isinstance(width, int) and width != len(labels):
        raise ModelArtifactError(f"{path}: the graph returns {width} logits for {len(labels)} labels")
    model = OnnxTransformerModel(
        labels=labels,
        version=manifest["version"],
        session=session,
        tokenizer=tokenizer,
        max_length=max_length,
        batch_size=batch_size,
        threads=threads,
        parallel_runs=parallel_runs,
    )
    probe = model.logits(["ok"])  # fails now, at load time, rather than on the first request
    if probe.shape != (1, len(labels)) or not np.all(np.isfinite(probe)):
        raise ModelArtifactError(f"{path}: the graph returned {probe.shape} non-finite or misshaped logits")
    return model
