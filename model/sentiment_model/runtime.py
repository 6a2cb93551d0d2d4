"""Load a model artefact directory and predict. Import-light: no training code, format libraries are
imported only when an artefact of that format is loaded.

An artefact directory holds ``manifest.json`` plus the files its ``format`` names. Common manifest fields:
``format``, ``version``, ``labels``. Each format registers a loader with :func:`register_format`; callers only
see :class:`SentimentModel`, so a new format (for example ``onnx-minilm-int8-v1``: an int8 ONNX encoder +
tokenizer files + head, run with onnxruntime) is one more loader function here and no change elsewhere.

Formats:

``skops-sklearn-v1``
    ``model.skops``: a scikit-learn ``Pipeline`` in the skops format, whose sha256 the manifest pins
    (``model_sha256``). Loading never unpickles: skops rebuilds objects from a JSON schema and refuses any
    type outside an explicit allow-list (:data:`SKOPS_TRUSTED_TYPES`), which is checked before loading.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MANIFEST_FILENAME = "manifest.json"
FORMAT_SKOPS_SKLEARN_V1 = "skops-sklearn-v1"
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
    name = manifest.get(name_key)
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
