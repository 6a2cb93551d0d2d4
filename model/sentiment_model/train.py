"""Train the TF-IDF + logistic-regression model and write the artefact directory.

``python -m sentiment_model.train --out DIR [--data .cache/data/vader_icwsm2014.csv]``

Model: word 1-2 grams + character 2-5 grams (``char_wb``: n-grams inside word boundaries, padded with a
space), both TF-IDF with sublinear tf, fed to a multinomial logistic regression (lbfgs). ``C`` and
``class_weight`` are chosen by stratified k-fold cross-validation on the TRAIN split only (macro-F1);
the held-out test split is used once, for the metrics in the manifest.

Reproducible: no wall-clock time in the artefact, fixed seeds, deterministic solver, and ``model.skops``
is written canonically (object ids and zip timestamps replaced), so the same data, code and parameters
give byte-identical ``model.skops`` and ``manifest.json`` on the same library versions.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import logging
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from sentiment_model import LABELS, data
from sentiment_model.runtime import FORMAT_SKOPS_SKLEARN_V1, MANIFEST_FILENAME, SKOPS_MODEL_FILENAME

log = logging.getLogger(__name__)

# The files whose content defines how a model is trained (hashed into ``code_version``).
CODE_FILES: tuple[str, ...] = ("__init__.py", "data.py", "train.py")

DEFAULT_PARAMS: dict[str, Any] = {
    "features": {
        "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True},
        "char": {"analyzer": "char_wb", "ngram_range": [2, 5], "min_df": 2, "sublinear_tf": True},
    },
    "classifier": {"solver": "lbfgs", "C": 2.0, "class_weight": "balanced", "tol": 1e-3, "max_iter": 1000},
    "selection": {
        "cv_folds": 3,
        "C_grid": [0.5, 1.0, 2.0, 4.0],
        "class_weight_grid": [None, "balanced"],
        "metric": "macro_f1",
        "stratify": "label x domain",
        "seed": 20240611,
    },
    "split": {"test_fraction": data.TEST_FRACTION, "seed": data.SPLIT_SEED, "stratify": "label x domain"},
}


# --- the estimator --------------------------------------------------------------------------------------


def make_features(params: dict[str, Any]) -> FeatureUnion:
    parts = []
    for name, p in params["features"].items():
        parts.append(
            (
                name,
                TfidfVectorizer(
                    analyzer=p["analyzer"],
                    ngram_range=tuple(p["ngram_range"]),
                    min_df=p["min_df"],
                    sublinear_tf=p["sublinear_tf"],
                    lowercase=True,
                    dtype=np.float64,
                ),
            )
        )
    return FeatureUnion(parts)


def make_classifier(params: dict[str, Any]) -> LogisticRegression:
    c = params["classifier"]
    return LogisticRegression(
        C=c["C"],
        class_weight=c["class_weight"],
        solver=c["solver"],
        tol=c["tol"],
        max_iter=c["max_iter"],
    )


def make_pipeline(params: dict[str, Any]) -> Pipeline:
    return Pipeline([("features", make_features(params)), ("clf", make_classifier(params))])


def _strip_volatile_state(pipeline: Pipeline) -> None:
    """Drop fitted state that is not needed for prediction and differs between identical runs."""
    for _, vec in pipeline.named_steps["features"].transformer_list:
        # id() of the stop-word list, only used to skip a consistency warning; recomputed on demand.
        if hasattr(vec, "_stop_words_id"):
            del vec._stop_words_id
        if hasattr(vec, "stop_words_"):  # terms dropped by min_df (large, documented as safe to remove)
            del vec.stop_words_


# --- model selection ------------------------------------------------------------------------------------


def _cv_fold(
    texts: list[str], labels: list[str], train_idx: np.ndarray, val_idx: np.ndarray, params: dict[str, Any]
) -> dict[tuple[float, str | None], float]:
    features = make_features(params)
    x_train = features.fit_transform([texts[i] for i in train_idx])
    x_val = features.transform([texts[i] for i in val_idx])
    y_train = [labels[i] for i in train_idx]
    y_val = [labels[i] for i in val_idx]
    sel = params["selection"]
    scores: dict[tuple[float, str | None], float] = {}
    for cw in sel["class_weight_grid"]:
        for c in sorted(sel["C_grid"]):
            # Each fit from scratch: a warm start from the previous C can stop at once under a loose tol.
            clf = make_classifier({"classifier": {**params["classifier"], "C": c, "class_weight": cw}})
            clf.fit(x_train, y_train)
            scores[(c, cw)] = float(f1_score(y_val, clf.predict(x_val), average="macro", labels=list(LABELS)))
    return scores


def select_params(
    train: Sequence[data.Example], params: dict[str, Any], *, n_jobs: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick ``C`` and ``class_weight`` by stratified k-fold CV (macro-F1) on the train split only."""
    from joblib import Parallel, delayed

    sel = params["selection"]
    texts = [ex.text for ex in train]
    labels = [ex.label for ex in train]
    strata = [f"{ex.label}|{ex.domain}" for ex in train]
    folds = list(StratifiedKFold(n_splits=sel["cv_folds"], shuffle=True, random_state=sel["seed"]).split(texts, strata))
    n_jobs = n_jobs or min(len(folds), os.cpu_count() or 1)
    fold_scores = Parallel(n_jobs=n_jobs)(delayed(_cv_fold)(texts, labels, tr, va, params) for tr, va in folds)
    results = []
    for cw in sel["class_weight_grid"]:
        for c in sorted(sel["C_grid"]):
            per_fold = [s[(c, cw)] for s in fold_scores]
            results.append(
                {
                    "C": c,
                    "class_weight": cw,
                    "macro_f1_mean": round(float(np.mean(per_fold)), 4),
                    "macro_f1_folds": [round(v, 4) for v in per_fold],
                }
            )
    # Highest mean macro-F1; ties (after rounding) go to the earlier grid entry -> deterministic.
    best = max(results, key=lambda r: r["macro_f1_mean"])
    chosen = copy.deepcopy(params)
    chosen["classifier"]["C"] = best["C"]
    chosen["classifier"]["class_weight"] = best["class_weight"]
    return chosen, results


# --- evaluation -----------------------------------------------------------------------------------------


def evaluate(pipeline: Pipeline, examples: Sequence[data.Example]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class F1 overall, and per domain."""
    y_true = [ex.label for ex in examples]
    y_pred = list(pipeline.predict([ex.text for ex in examples]))
    labels = list(LABELS)

    def block(idx: list[int]) -> dict[str, Any]:
        t = [y_true[i] for i in idx]
        p = [y_pred[i] for i in idx]
        per_class = f1_score(t, p, average=None, labels=labels, zero_division=0)
        return {
            "n": len(idx),
            "accuracy": round(float(accuracy_score(t, p)), 4),
            "macro_f1": round(float(f1_score(t, p, average="macro", labels=labels, zero_division=0)), 4),
            "per_class_f1": {lab: round(float(v), 4) for lab, v in zip(labels, per_class, strict=True)},
        }

    out = block(list(range(len(examples))))
    out["per_domain"] = {
        d: block([i for i, ex in enumerate(examples) if ex.domain == d]) for d in sorted({ex.domain for ex in examples})
    }
    return out


# --- artefact -------------------------------------------------------------------------------------------


def code_version() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def model_version(data_sha256: str, code_sha256: str, params: dict[str, Any]) -> str:
    digest = hashlib.sha256((data_sha256 + code_sha256 + canonical_json(params)).encode()).hexdigest()
    return f"tfidf-lr-{digest[:12]}"


def canonical_skops_bytes(obj: Any) -> bytes:
    """``skops.io.dumps`` with the run-dependent parts made deterministic.

    skops names arrays and memo entries after ``id()`` of the objects and stamps zip entries with the
    current time; both are renumbered in order of appearance / fixed, which keeps every reference intact.
    """
    import skops.io as sio

    raw = sio.dumps(obj)
    with zipfile.ZipFile(io.BytesIO(raw)) as src:
        schema = json.loads(src.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("__id__"), int):
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
                if node.get("type") == "numpy" and isinstance(node.get("file"), str):
                    node["file"] = files.setdefault(node["file"], f"{len(files) + 1:06d}.npy")
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(schema)
        missing = set(src.namelist()) - set(files) - {"schema.json"}
        if missing:
            raise RuntimeError(f"unexpected entries in the skops archive: {sorted(missing)}")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for old, new in sorted(files.items(), key=lambda kv: kv[1]):
                info = zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                dst.writestr(info, src.read(old), compresslevel=6)
            info = zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, json.dumps(schema, separators=(",", ":")), compresslevel=6)
    return out.getvalue()


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in ("scikit-learn", "skops", "numpy", "scipy")}


def write_artifact(pipeline: Pipeline, manifest: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write ``model.skops`` then ``manifest.json`` (each atomically; the manifest pins the model's sha256,
    so a half-replaced directory fails verification instead of loading a mismatched pair)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _strip_volatile_state(pipeline)
    model_bytes = canonical_skops_bytes(pipeline)
    manifest = {
        **manifest,
        "format": FORMAT_SKOPS_SKLEARN_V1,
        "model_file": SKOPS_MODEL_FILENAME,
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    data._atomic_write(out_dir / SKOPS_MODEL_FILENAME, model_bytes)
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    data._atomic_write(out_dir / MANIFEST_FILENAME, text.encode("utf-8"))
    return manifest


def train(
    train_examples: Sequence[data.Example],
    test_examples: Sequence[data.Example],
    *,
    data_sha256: str,
    params: dict[str, Any] | None = None,
    select: bool = True,
    n_jobs: int | None = None,
    source: dict[str, Any] | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit (after CV model selection when ``select``) and evaluate on the test split.

    Returns the fitted pipeline and the manifest fields (without ``format``/``model_*``; see
    :func:`write_artifact`).
    """
    params = copy.deepcopy(params or DEFAULT_PARAMS)
    train_keys = {data.normalise_key(ex.text) for ex in train_examples}
    leaked = sum(1 for ex in test_examples if data.normalise_key(ex.text) in train_keys)
    if leaked:
        raise ValueError(f"{leaked} test texts also occur in the train split")
    cv_results: list[dict[str, Any]] = []
    if select:
        t0 = time.perf_counter()
        params, cv_results = select_params(train_examples, params, n_jobs=n_jobs)
        log.info(
            "cv: C=%s class_weight=%s (%.1fs)",
            params["classifier"]["C"],
            params["classifier"]["class_weight"],
            time.perf_counter() - t0,
        )
    t0 = time.perf_counter()
    pipeline = make_pipeline(params)
    pipeline.fit([ex.text for ex in train_examples], [ex.label for ex in train_examples])
    log.info("fit on %d texts (%.1fs)", len(train_examples), time.perf_counter() - t0)
    if tuple(pipeline.classes_) != LABELS:
        raise ValueError(f"classes {list(pipeline.classes_)} != {list(LABELS)} (a label has no examples?)")
    code_sha = code_version()
    manifest = {
        "labels": list(LABELS),
        "version": model_version(data_sha256, code_sha, params),
        "data_sha256": data_sha256,
        "code_version": code_sha,
        "params": params,
        "metrics": {
            "test": evaluate(pipeline, test_examples),
            "cv": {"metric": "macro_f1", "results": cv_results} if select else None,
        },
        "counts": {
            "train": {**data.class_counts(train_examples), "total": len(train_examples)},
            "test": {**data.class_counts(test_examples), "total": len(test_examples)},
            "train_by_domain": data.domain_class_counts(train_examples),
            "test_by_domain": data.domain_class_counts(test_examples),
        },
        "data": source or default_source(),
        "library_versions": library_versions(),
    }
    return pipeline, manifest


def default_source() -> dict[str, Any]:
    return {
        "name": "Hutto & Gilbert ICWSM-2014 sentiment ground truth",
        "package": f"{data.SOURCE_PACKAGE}=={data.SOURCE_VERSION}",
        "sdist_sha256": data.SDIST_SHA256,
        "archive_member": data.INNER_ARCHIVE,
        "domains": list(data.DOMAINS),
        "label_mapping": "mean rating < -0.5 negative; > 0.5 positive; -0.5 <= mean <= 0.5 neutral",
        "licence": (
            "vaderSentiment package: MIT. The texts belong to their authors; they are extracted at set-up "
            "time from the pinned package and are not redistributed."
        ),
        "statement": data.SOURCE_STATEMENT,
    }


def train_from_csv(csv_path: Path, out_dir: Path, *, n_jobs: int | None = None) -> dict[str, Any]:
    examples = data.read_dataset_csv(csv_path)
    train_ex, test_ex = data.split_examples(examples)
    pipeline, manifest = train(train_ex, test_ex, data_sha256=data.sha256_file(csv_path), n_jobs=n_jobs)
    return write_artifact(pipeline, manifest, out_dir)


def summary(manifest: dict[str, Any]) -> str:
    t = manifest["metrics"]["test"]
    lines = [
        f"version {manifest['version']}  C={manifest['params']['classifier']['C']} "
        f"class_weight={manifest['params']['classifier']['class_weight']}",
        f"test n={t['n']} accuracy={t['accuracy']:.4f} macro_f1={t['macro_f1']:.4f} per_class_f1={t['per_class_f1']}",
    ]
    for d, m in t["per_domain"].items():
        lines.append(f"  {d:7s} n={m['n']:5d} accuracy={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f}")
    lines.append(f"counts train={manifest['counts']['train']} test={manifest['counts']['test']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the sentiment model and write the artefact directory.")
    parser.add_argument("--out", type=Path, required=True, help="artefact directory")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(".cache") / "data" / data.DATASET_FILENAME,
        help="normalised CSV from `python -m sentiment_model.data` (default .cache/data/%(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="CV worker processes (default: min(folds, cpus))")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.data.is_file():
        print(f"{args.data} not found: run `python -m sentiment_model.data` first", file=sys.stderr)
        return 2
    manifest = train_from_csv(args.data, args.out, n_jobs=args.jobs)
    print(summary(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
