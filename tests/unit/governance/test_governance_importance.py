"""Leave-one-token-out occlusion on a model whose answers are known exactly."""

from __future__ import annotations

from collections.abc import Sequence

from governance.importance import (
    Prediction,
    as_prediction,
    occlusions,
    stratified_sample,
    token_importance,
    tokens,
    without_span,
)


def keyword_model(texts: Sequence[str]) -> list[Prediction]:
    """positive 0.8 when 'great' is a word, negative 0.8 when 'awful' is, else 0.1 each; neutral the rest."""
    out = []
    for text in texts:
        words = {t for t, _, _ in tokens(text)}
        positive = 0.8 if "great" in words else 0.1
        negative = 0.8 if "awful" in words else 0.1
        probabilities = {"negative": negative, "positive": positive, "neutral": round(1 - positive - negative, 6)}
        out.append(Prediction(max(probabilities, key=lambda k: probabilities[k]), probabilities))
    return out


def test_tokens_keep_inner_apostrophes_and_skip_punctuation() -> None:
    assert tokens("Don't STOP... it's 2 good!") == [
        ("don't", 0, 5),
        ("stop", 6, 10),
        ("it's", 14, 18),
        ("2", 19, 20),
        ("good", 21, 25),
    ]


def test_without_span_collapses_whitespace() -> None:
    assert without_span("a great day", 2, 7) == "a day"
    assert without_span("great", 0, 5) == ""
    assert occlusions("so great!") == [("so", "great!"), ("great", "so !")]


def test_importance_of_keywords_is_their_probability_effect() -> None:
    texts = ["a great day", "great movie", "an awful day", "awful food"]
    result = token_importance(texts, keyword_model, top_k=5, min_count=2)
    assert result["positive"] == [{"token": "great", "importance": 0.7, "count": 2}]
    assert result["negative"] == [{"token": "awful", "importance": 0.7, "count": 2}]
    # removing 'great' or 'awful' moves the mass back to neutral: neither is evidence for neutral.
    assert result["neutral"] == []


def test_min_count_drops_rare_tokens() -> None:
    result = token_importance(["great day", "awful day"], keyword_model, min_count=2)
    assert result["positive"] == [] and result["negative"] == []
    result = token_importance(["great day", "awful day"], keyword_model, min_count=1)
    assert result["positive"][0]["token"] == "great"


def test_label_only_models_give_flip_rates() -> None:
    def labels_only(texts: Sequence[str]) -> list[Prediction]:
        return [as_prediction(p.label, None) for p in keyword_model(texts)]

    result = token_importance(["great day", "great film", "great"], labels_only, min_count=2)
    # every removal of 'great' flips positive -> neutral: importance 1.0
    assert result["positive"] == [{"token": "great", "importance": 1.0, "count": 3}]


def test_as_prediction_one_hot_when_probabilities_are_missing_or_partial() -> None:
    assert as_prediction("neutral", None).probabilities == {"negative": 0.0, "neutral": 1.0, "positive": 0.0}
    assert as_prediction("neutral", {"neutral": 0.9}).probabilities["neutral"] == 1.0


def test_stratified_sample_is_deterministic_and_order_independent() -> None:
    texts = [f"text number {i}" for i in range(30)]
    labels = ["positive", "negative", "neutral"] * 10
    chosen = stratified_sample(texts, labels, per_label=2, max_tokens=10)
    assert len(chosen) == 6
    assert sorted(labels[i] for i in chosen) == ["negative"] * 2 + ["neutral"] * 2 + ["positive"] * 2
    order = list(reversed(range(30)))
    again = stratified_sample([texts[i] for i in order], [labels[i] for i in order], per_label=2, max_tokens=10)
    assert sorted(texts[order[i]] for i in again) == sorted(texts[i] for i in chosen)


def test_stratified_sample_skips_texts_without_tokens_or_too_long() -> None:
    texts = ["!!!", "one two three four", "ok"]
    assert stratified_sample(texts, ["positive"] * 3, per_label=5, max_tokens=3) == [2]
