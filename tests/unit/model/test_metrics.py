"""The harness' metric functions on small cases worked out by hand (and against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sentiment_model import LABELS, metrics
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

# truth / prediction over negative=0, neutral=1, positive=2
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 2, 2, 2, 2, 0, 1]


def test_confusion_matrix_rows_are_truth_and_columns_predictions():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)

    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    assert cm.sum() == len(Y_TRUE)


def test_hand_computed_precision_recall_f1_accuracy_and_macro_f1():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    pc = metrics.per_class(cm)

    # negative: tp 2, predicted 3, actual 3; neutral: tp 1, predicted 3, actual 2; positive: tp 3, pred 4, actual 5
    assert pc["precision"] == pytest.approx([2 / 3, 1 / 3, 3 / 4])
    assert pc["recall"] == pytest.approx([2 / 3, 1 / 2, 3 / 5])
    f1 = [2 / 3, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), 2 * 0.75 * 0.6 / 1.35]
    assert pc["f1"] == pytest.approx(f1)
    assert pc["support"].tolist() == [3, 2, 5]
    assert metrics.accuracy(cm) == pytest.approx(6 / 10)
    assert metrics.macro_f1(cm) == pytest.approx(sum(f1) / 3)


def test_report_has_every_field_in_label_order():
    r = metrics.report(Y_TRUE, Y_PRED, LABELS)

    assert r["n"] == 10
    assert r["accuracy"] == pytest.approx(0.6)
    assert list(r["per_class"]) == list(LABELS)
    assert r["per_class"]["neutral"] == {"precision": pytest.approx(1 / 3), "recall": 0.5,
                                         "f1": pytest.approx(0.4), "support": 2}  # fmt: skip
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]


def test_zero_division_gives_zero_and_absent_classes_still_count_in_the_macro_average():
    # neutral never occurs and is never predicted; positive is never predicted
    cm = metrics.confusion_matrix([0, 0, 2], [0, 0, 0], 3)
    pc = metrics.per_class(cm)

    assert pc["precision"].tolist() == pytest.approx([2 / 3, 0.0, 0.0])
    assert pc["recall"].tolist() == [1.0, 0.0, 0.0]
    assert metrics.macro_f1(cm) == pytest.approx((0.8 + 0 + 0) / 3)
    assert metrics.accuracy(metrics.confusion_matrix([], [], 3)) == 0.0


def test_perfect_and_all_wrong_predictions():
    assert metrics.macro_f1(metrics.confusion_matrix([0, 1, 2], [0, 1, 2], 3)) == 1.0
    assert metrics.macro_f1(metrics.confusion_matrix([0, 1, 2], [1, 2, 0], 3)) == 0.0


def test_agrees_with_scikit_learn_on_random_labels():
    rng = np.random.default_rng(7)
    for _ in range(20):
        t = rng.integers(0, 3, size=200)
        p = np.where(rng.random(200) < 0.6, t, rng.integers(0, 3, size=200))
        cm = metrics.confusion_matrix(t, p, 3)
        prec, rec, f1, _ = precision_recall_fscore_support(t, p, labels=[0, 1, 2], zero_division=0)
        pc = metrics.per_class(cm)

        assert cm.tolist() == confusion_matrix(t, p, labels=[0, 1, 2]).tolist()
        assert pc["precision"] == pytest.approx(prec)
        assert pc["recall"] == pytest.approx(rec)
        assert pc["f1"] == pytest.approx(f1)
        assert metrics.macro_f1(cm) == pytest.approx(f1_score(t, p, average="macro", labels=[0, 1, 2]))
        assert metrics.accuracy(cm) == pytest.approx(accuracy_score(t, p))


def test_encode_maps_label_strings_and_refuses_unknown_ones():
    assert metrics.encode(["positive", "negative", "neutral"], LABELS).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="unknown label 'mixed'"):
        metrics.encode(["positive", "mixed"], LABELS)


def test_out_of_range_or_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="in \\[0, 3\\)"):
        metrics.confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.confusion_matrix([0, 1], [0], 3)


# ---- calibration ------------------------------------------------------------------------------------


def test_ece_is_zero_when_confidence_matches_accuracy():
    # 4 predictions at confidence 0.75, 3 of them right; 2 at confidence 1.0, both right
    proba = np.array([[0.75, 0.125, 0.125]] * 4 + [[1.0, 0.0, 0.0]] * 2)
    y = np.array([0, 0, 0, 1, 0, 0])

    ece, table = metrics.expected_calibration_error(proba, y, bins=15)

    assert ece == pytest.approx(0.0)
    assert [(b["n"], b["accuracy"]) for b in table] == [(4, 0.75), (2, 1.0)]


def test_ece_hand_computed():
    # bin (0.8, 0.8667]: two at 0.85, one right -> |0.5 - 0.85| weighted 2/4
    # bin (0.5333, 0.6]: two at 0.6 (upper edge is inclusive), both right -> |1 - 0.6| weighted 2/4
    proba = np.array([[0.85, 0.1, 0.05], [0.05, 0.85, 0.1], [0.6, 0.3, 0.1], [0.3, 0.1, 0.6]])
    y = np.array([0, 0, 0, 2])

    ece, table = metrics.expected_calibration_error(proba, y, bins=15)

    assert ece == pytest.approx(0.5 * 0.35 + 0.5 * 0.4)
    assert [b["n"] for b in table] == [2, 2]
    assert table[0]["hi"] == pytest.approx(9 / 15)  # 0.6 sits in (8/15, 9/15]
    assert table[0]["confidence"] == pytest.approx(0.6)


def test_ece_of_an_overconfident_model():
    proba = np.array([[0.99, 0.005, 0.005]] * 10)
    y = np.array([0] * 5 + [1] * 5)

    ece, _ = metrics.expected_calibration_error(proba, y)

    assert ece == pytest.approx(0.49)


def test_ece_of_nothing_and_of_bad_shapes():
    assert metrics.expected_calibration_error(np.empty((0, 3)), np.array([], dtype=int)) == (0.0, [])
    with pytest.raises(ValueError, match="proba must be"):
        metrics.expected_calibration_error(np.ones((2, 3)) / 3, np.array([0]))


# ---- bootstrap --------------------------------------------------------------------------------------


def test_bootstrap_of_identical_predictions_is_zero():
    y = np.array(Y_TRUE * 10)
    p = np.array(Y_PRED * 10)

    b = metrics.paired_bootstrap_macro_f1_difference(y, p, p, 3, resamples=200, seed=1)

    assert b["difference"] == 0.0 and b["ci95_low"] == 0.0 and b["ci95_high"] == 0.0


def test_bootstrap_interval_contains_the_point_difference_and_is_seeded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=500)
    good = np.where(rng.random(500) < 0.8, y, rng.integers(0, 3, size=500))
    bad = np.where(rng.random(500) < 0.4, y, rng.integers(0, 3, size=500))

    b = metrics.paired_bootstrap_macro_f1_difference(y, good, bad, 3, resamples=300, seed=5)
    again = metrics.paired_bootstrap_macro_f1_difference(y, good, bad, 3, resamples=300, seed=5)

    expected = metrics.macro_f1(metrics.confusion_matrix(y, good, 3)) - metrics.macro_f1(
        metrics.confusion_matrix(y, bad, 3)
    )
    assert b["difference"] == pytest.approx(expected)
    assert 0 < b["ci95_low"] < b["difference"] < b["ci95_high"]
    assert b == again
