"""Classification metrics for the evaluation harness, in plain numpy (no scikit-learn): confusion matrix,
accuracy, per-class precision/recall/F1, macro-F1, expected calibration error and a paired bootstrap.

Conventions (the same as scikit-learn's with ``zero_division=0``): a class never predicted has precision 0,
a class absent from the truth has recall 0, F1 is 0 when precision + recall is 0; macro-F1 is the unweighted
mean of the per-class F1 over *all* ``labels`` (absent classes included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def encode(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Label strings -> indices into ``labels`` (``ValueError`` on an unknown label)."""
    index = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as exc:
        raise ValueError(f"unknown label {exc.args[0]!r}; expected one of {list(labels)}") from None


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """``cm[i, j]`` = number of examples of true class ``i`` predicted as ``j`` (``n x n`` ints)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= n or p.max() >= n):
        raise ValueError(f"class indices must be in [0, {n})")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and support per class from a confusion matrix (zero division -> 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual.astype(np.int64)}


def accuracy(cm: np.ndarray) -> float:
    total = float(np.sum(cm))
    return float(np.trace(cm)) / total if total else 0.0


def macro_f1(cm: np.ndarray) -> float:
    return float(np.mean(per_class(cm)["f1"]))


def expected_calibration_error(
    proba: np.ndarray, y_true: Sequence[int] | np.ndarray, bins: int = 15
) -> tuple[float, list[dict[str, Any]]]:
    """ECE of the top-label confidence with ``bins`` equal-width bins ``(k/bins, (k+1)/bins]``:
    ``sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|``. Returns the ECE and the reliability table
    (non-empty bins: ``lo``, ``hi``, ``n``, ``accuracy``, ``confidence``)."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[0] != y.shape[0]:
        raise ValueError(f"proba must be (n, k) with n = len(y_true); got {proba.shape} and {y.shape}")
    if not len(y):
        return 0.0, []
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    # bin k holds (k/bins, (k+1)/bins]; a confidence of exactly 0 (impossible for a distribution) goes to bin 0
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    ece, table = 0.0, []
    for k in range(bins):
        in_bin = index == k
        n = int(in_bin.sum())
        if not n:
            continue
        acc, conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
        ece += n / len(y) * abs(acc - conf)
        table.append({"lo": k / bins, "hi": (k + 1) / bins, "n": n, "accuracy": acc, "confidence": conf})
    return float(ece), table


def report(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, labels: Sequence[str]) -> dict:
    """Everything the harness reports for one (model, set): n, accuracy, macro-F1, per-class P/R/F1/support,
    confusion matrix (rows = truth, columns = prediction, both in ``labels`` order)."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    pc = per_class(cm)
    return {
        "n": int(cm.sum()),
        "accuracy": accuracy(cm),
        "macro_f1": macro_f1(cm),
        "per_class": {
            label: {
                "precision": float(pc["precision"][i]),
                "recall": float(pc["recall"][i]),
                "f1": float(pc["f1"][i]),
                "support": int(pc["support"][i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


def _macro_f1_rows(t: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    """Macro-F1 of each row of index matrices ``t``/``p`` (resamples x examples), vectorised."""
    rows = t.shape[0]
    offsets = (np.arange(rows) * n * n)[:, None]
    cms = np.bincount((offsets + t * n + p).ravel(), minlength=rows * n * n).reshape(rows, n, n).astype(float)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    predicted, actual = cms.sum(axis=1), cms.sum(axis=2)
    denom = predicted + actual  # 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return np.asarray(f1.mean(axis=1))


def paired_bootstrap_macro_f1_difference(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_labels: int, *, resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Macro-F1(a) - macro-F1(b) on the full set and its 95% percentile interval over ``resamples`` paired
    bootstrap resamples (the same resampled examples for both models)."""
    y = np.asarray(y_true, dtype=np.int64)
    a, b = np.asarray(pred_a, dtype=np.int64), np.asarray(pred_b, dtype=np.int64)
    rng = np.random.default_rng(seed)
    diffs = []
    chunk = max(1, min(resamples, 4_000_000 // max(1, len(y))))
    done = 0
    while done < resamples:
        k = min(chunk, resamples - done)
        idx = rng.integers(0, len(y), size=(k, len(y)))
        diffs.append(_macro_f1_rows(y[idx], a[idx], n_labels) - _macro_f1_rows(y[idx], b[idx], n_labels))
        done += k
    d = np.concatenate(diffs)
    point = macro_f1(confusion_matrix(y, a, n_labels)) - macro_f1(confusion_matrix(y, b, n_labels))
    return {"difference": float(point), "ci95_low": float(np.percentile(d, 2.5)),
            "ci95_high": float(np.percentile(d, 97.5)), "resamples": resamples, "seed": seed}  # fmt: skip
