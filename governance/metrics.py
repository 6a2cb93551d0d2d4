"""Classification and bias metrics: plain functions over lists, no I/O.

Facets are properties of a text that the model must not treat differently: the dataset's ``domain``
(tweets, movie, amazon, nyt) and a derived ``length_bucket`` (see :func:`length_bucket`).

Bias metrics per facet (groups with fewer than ``min_group_size`` rows are reported but left out of gaps):

pre-training (data only, informational, no threshold)
  ``label_proportion_difference[l]``   max - min over groups of P(y = l | group)   (Clarify's DPL, all groups)
post-training (model, checked against :data:`THRESHOLDS`)
  ``accuracy_gap``                     max - min over groups of accuracy
  ``class_conditional_accuracy_gap[l]`` max - min over groups of P(y_hat = l | y = l, group) (recall; an
                                       equal-opportunity difference)
  ``demographic_parity_difference[l]`` max - min over groups of P(y_hat = l | group) (informational: it
                                       mixes the model with the groups' own label mix)
  ``prediction_rate_shift[l]``         max over groups of |P(y_hat = l | group) - P(y = l | group)|: how far
                                       the model moves a group's label mix away from the truth (the
                                       demographic-parity-style difference that is not explained by the data)
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentiment_core.contract import LABELS, bias_check_passed

#: Documented pass/fail thresholds (docs/retraining.md). A check passes when |value| <= threshold
#: (sentiment_core.contract.bias_check_passed; the metrics here are all non-negative).
THRESHOLDS: dict[str, float] = {
    "accuracy_gap": 0.15,
    "class_conditional_accuracy_gap": 0.20,
    "prediction_rate_shift": 0.10,
}
MIN_GROUP_SIZE = 30

#: Word-count bucket boundaries of the derived ``length_bucket`` facet.
SHORT_MAX_WORDS = 8
MEDIUM_MAX_WORDS = 20
LENGTH_BUCKETS: tuple[str, ...] = ("short", "medium", "long")
_WORD = re.compile(r"\S+")


def length_bucket(text: str) -> str:
    """``short`` (<= 8 words), ``medium`` (9-20) or ``long`` (> 20); words are whitespace-separated."""
    words = len(_WORD.findall(text))
    if words <= SHORT_MAX_WORDS:
        return "short"
    if words <= MEDIUM_MAX_WORDS:
        return "medium"
    return "long"


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def classification_report(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-label precision/recall/F1/support."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predicted must have the same length")
    pairs = Counter(zip(truth, predicted))  # noqa: B905 - Python 3.9 (checked above)
    per_label: dict[str, dict[str, float | int | None]] = {}
    f1s: list[float] = []
    for label in labels:
        tp = pairs[(label, label)]
        support = sum(n for (t, _), n in pairs.items() if t == label)
        predicted_n = sum(n for (_, p), n in pairs.items() if p == label)
        precision, recall = _ratio(tp, predicted_n), _ratio(tp, support)
        f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": round(f1, 6), "support": support}
        f1s.append(f1)
    correct = sum(n for (t, p), n in pairs.items() if t == p)
    return {
        "n": len(truth),
        "accuracy": _ratio(correct, len(truth)),
        "macro_f1": round(sum(f1s) / len(f1s), 6) if f1s else None,
        "per_label": per_label,
    }


@dataclass(frozen=True)
class GroupStats:
    n: int
    accuracy: float | None
    label_rate: dict[str, float | None]
    predicted_rate: dict[str, float | None]
    recall: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "label_rate": self.label_rate,
            "predicted_rate": self.predicted_rate,
            "class_conditional_accuracy": self.recall,
        }


def group_stats(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> GroupStats:
    n = len(truth)
    if len(predicted) != n:
        raise ValueError("truth and predicted must have the same length")
    true_counts, predicted_counts = Counter(truth), Counter(predicted)
    hits = Counter(t for t, p in zip(truth, predicted) if t == p)  # noqa: B905 - Python 3.9 (checked above)
    return GroupStats(
        n=n,
        accuracy=_ratio(sum(hits.values()), n),
        label_rate={label: _ratio(true_counts[label], n) for label in labels},
        predicted_rate={label: _ratio(predicted_counts[label], n) for label in labels},
        recall={label: _ratio(hits[label], true_counts[label]) for label in labels},
    )


def _spread(values: list[float]) -> float | None:
    return round(max(values) - min(values), 6) if len(values) >= 2 else None


def _metric(
    name: str,
    value: float | None,
    kind: str,
    groups: Mapping[str, float | None],
    description: str,
    threshold_key: str | None = None,
) -> dict[str, Any]:
    threshold = THRESHOLDS.get(threshold_key) if threshold_key else None
    passed = None if threshold is None or value is None else bias_check_passed(value, threshold)
    return {
        "name": name,
        "kind": kind,
        "value": value,
        "threshold": threshold,
        "passed": passed,
        "groups": dict(groups),
        "description": description,
    }


def facet_bias(
    truth: Sequence[str],
    predicted: Sequence[str],
    facet_values: Sequence[str],
    labels: Sequence[str] = LABELS,
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Per-group statistics and the bias metrics of one facet (see the module docstring)."""
    if not len(truth) == len(predicted) == len(facet_values):
        raise ValueError("truth, predicted and facet_values must have the same length")
    members: dict[str, list[int]] = defaultdict(list)
    for i, value in enumerate(facet_values):
        members[value].append(i)
    stats = {
        group: group_stats([truth[i] for i in idx], [predicted[i] for i in idx], labels)
        for group, idx in sorted(members.items())
    }
    eligible = {g: s for g, s in stats.items() if s.n >= min_group_size}
    metrics: list[dict[str, Any]] = []

    for label in labels:
        rates = {g: s.label_rate[label] for g, s in stats.items()}
        metrics.append(
            _metric(
                f"label_proportion_difference[{label}]",
                _spread([v for v in rates.values() if v is not None]),
                "pre_training",
                rates,
                f"max - min over groups of the share of true '{label}' labels (data only)",
            )
        )

    accuracy = {g: s.accuracy for g, s in eligible.items()}
    metrics.append(
        _metric(
            "accuracy_gap",
            _spread([v for v in accuracy.values() if v is not None]),
            "post_training",
            accuracy,
            "max - min over groups of accuracy",
            "accuracy_gap",
        )
    )
    for label in labels:
        recall = {g: s.recall[label] for g, s in eligible.items()}
        metrics.append(
            _metric(
                f"class_conditional_accuracy_gap[{label}]",
                _spread([v for v in recall.values() if v is not None]),
                "post_training",
                recall,
                f"max - min over groups of the accuracy on texts whose true label is '{label}'",
                "class_conditional_accuracy_gap",
            )
        )
    for label in labels:
        rates = {g: s.predicted_rate[label] for g, s in eligible.items()}
        metrics.append(
            _metric(
                f"demographic_parity_difference[{label}]",
                _spread([v for v in rates.values() if v is not None]),
                "post_training",
                rates,
                f"max - min over groups of the share of '{label}' predictions (informational)",
            )
        )
    for label in labels:
        shifts: dict[str, float | None] = {}
        for g, s in eligible.items():
            predicted_rate, label_rate = s.predicted_rate[label], s.label_rate[label]
            if predicted_rate is not None and label_rate is not None:
                shifts[g] = round(abs(predicted_rate - label_rate), 6)
        metrics.append(
            _metric(
                f"prediction_rate_shift[{label}]",
                max((v for v in shifts.values() if v is not None), default=None),
                "post_training",
                shifts,
                f"max over groups of |share of '{label}' predictions - share of true '{label}' labels|",
                "prediction_rate_shift",
            )
        )
    return {
        "groups": {g: s.as_dict() for g, s in stats.items()},
        "excluded_groups": sorted(g for g, s in stats.items() if s.n < min_group_size),
        "min_group_size": min_group_size,
        "metrics": metrics,
    }


def failed_checks(bias: Mapping[str, Any]) -> list[str]:
    """``facet:metric`` of every thresholded metric that failed."""
    return [
        f"{facet}:{metric['name']}"
        for facet, result in bias.items()
        for metric in result["metrics"]
        if metric["passed"] is False
    ]
