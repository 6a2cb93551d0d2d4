"""sentiment_core.contract: the shared constants hold what the code around them assumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sentiment_core import contract

from tests.helpers import ROOT

MODEL_DIR = ROOT / "model" / "artefacts" / "minilm-sentiment"


@pytest.mark.skipif(not (MODEL_DIR / "manifest.json").exists(), reason="shipped model artefact not present")
def test_the_shipped_model_classifies_the_smoke_texts_confidently() -> None:
    pytest.importorskip("onnxruntime")
    from sentiment_model.runtime import load_model

    model = load_model(Path(MODEL_DIR))
    texts = list(contract.SMOKE_TEXTS.values())
    probabilities = model.predict_proba(texts)
    for (label, text), row in zip(contract.SMOKE_TEXTS.items(), probabilities, strict=True):
        assert model.labels[int(row.argmax())] == label, text
        assert float(row.max()) >= 0.8, (text, row)


def test_the_body_and_text_limits_are_the_request_schemas() -> None:
    schema = json.loads((ROOT / "functions/predict/prediction/schemas/predict_request.json").read_text())
    assert schema["properties"]["text"]["maxLength"] == contract.MAX_TEXT_CHARS == contract.MAX_BODY_BYTES


@pytest.mark.parametrize(("value", "passed"), [(0.0, True), (0.1, True), (-0.1, True), (0.1001, False), (-0.2, False)])
def test_the_bias_rule_bounds_the_magnitude(value: float, passed: bool) -> None:
    assert contract.bias_check_passed(value, 0.1) is passed


def test_one_smoke_text_per_label() -> None:
    assert set(contract.SMOKE_TEXTS) == set(contract.LABELS)
