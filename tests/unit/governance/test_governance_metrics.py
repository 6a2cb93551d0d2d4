"""governance.metrics on small cases whose answers can be checked by hand."""

from __future__ import annotations

import pytest

from governance.metrics import (
    THRESHOLDS,
    classification_report,
    facet_bias,
    failed_checks,
    group_stats,
    length_bucket,
)


@pytest.mark.parametrize(
    ("words", "bucket"), [(1, "short"), (8, "short"), (9, "medium"), (20, "medium"), (21, "long"), (60, "long")]
)
def test_length_bucket_boundaries(words: int, bucket: str) -> None:
    assert length_bucket(" ".join(["w"] * words)) == bucket


def test_length_bucket_counts_whitespace_separated_words() -> None:
    assert length_bucket("  one,two   three!\tfour\n") == "short"


def test_classification_report_by_hand() -> None:
    truth = ["positive", "positive", "negative", "neutral"]
    predicted = ["positive", "negative", "negative", "neutral"]
    report = classification_report(truth, predicted)
    assert report["n"] == 4
    assert report["accuracy"] == 0.75
    assert report["per_label"]["positive"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert report["per_label"]["negative"] == {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 1}
    assert report["per_label"]["neutral"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-6)


def test_classification_report_label_never_predicted_nor_seen() -> None:
    report = classification_report(["positive"], ["positive"])
    assert report["per_label"]["neutral"] == {"precision": None, "recall": None, "f1": 0.0, "support": 0}


def test_classification_report_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError):
        classification_report(["positive"], [])


def test_group_stats() -> None:
    truth = ["positive", "negative", "negative", "neutral"]
    stats = group_stats(truth, ["positive", "positive", "negative", "neutral"])
    assert stats.n == 4
    assert stats.accuracy == 0.75
    assert stats.label_rate == {"negative": 0.5, "neutral": 0.25, "positive": 0.25}
    assert stats.predicted_rate == {"negative": 0.25, "neutral": 0.25, "positive": 0.5}
    assert stats.recall == {"negative": 0.5, "neutral": 1.0, "positive": 1.0}


def _metric(result: dict, name: str) -> dict:
    (metric,) = [m for m in result["metrics"] if m["name"] == name]
    return metric


def test_facet_bias_two_groups_by_hand() -> None:
    # group a: perfect; group b: every text predicted negative. Both groups have the same label mix.
    truth = ["positive", "negative", "positive", "negative"]
    predicted = ["positive", "negative", "negative", "negative"]
    facet = ["a", "a", "b", "b"]
    result = facet_bias(truth, predicted, facet, min_group_size=1)

    assert result["groups"]["a"]["accuracy"] == 1.0
    assert result["groups"]["b"]["accuracy"] == 0.5
    assert _metric(result, "label_proportion_difference[positive]")["value"] == 0.0
    gap = _metric(result, "accuracy_gap")
    assert (gap["value"], gap["threshold"], gap["passed"]) == (0.5, THRESHOLDS["accuracy_gap"], False)
    assert _metric(result, "class_conditional_accuracy_gap[positive]")["value"] == 1.0
    assert _metric(result, "class_conditional_accuracy_gap[negative]")["value"] == 0.0
    assert _metric(result, "class_conditional_accuracy_gap[negative]")["passed"] is True
    # a predicts the truth's mix; b predicts 0 % positive where 50 % are positive.
    shift = _metric(result, "prediction_rate_shift[positive]")
    assert shift["groups"] == {"a": 0.0, "b": 0.5}
    assert (shift["value"], shift["passed"]) == (0.5, False)
    parity = _metric(result, "demographic_parity_difference[positive]")
    assert (parity["value"], parity["threshold"], parity["passed"]) == (0.5, None, None)


def test_small_groups_are_reported_but_left_out_of_gaps() -> None:
    truth = ["positive"] * 5 + ["positive"]
    predicted = ["positive"] * 5 + ["negative"]
    facet = ["big"] * 5 + ["tiny"]
    result = facet_bias(truth, predicted, facet, min_group_size=3)
    assert result["groups"]["tiny"]["n"] == 1
    assert result["excluded_groups"] == ["tiny"]
    assert _metric(result, "accuracy_gap")["value"] is None  # one eligible group: no gap
    assert _metric(result, "accuracy_gap")["passed"] is None


def test_failed_checks_lists_only_thresholded_failures() -> None:
    truth = ["positive", "negative", "positive", "negative"]
    predicted = ["positive", "negative", "negative", "negative"]
    bias = {"domain": facet_bias(truth, predicted, ["a", "a", "b", "b"], min_group_size=1)}
    assert failed_checks(bias) == [
        "domain:accuracy_gap",
        "domain:class_conditional_accuracy_gap[positive]",
        "domain:prediction_rate_shift[negative]",
        "domain:prediction_rate_shift[positive]",
    ]
