"""A tiny artefact for tests and local development, trained in well under a second on synthetic sentences
(no download, no real data). It is a real ``skops-sklearn-v1`` artefact, loaded by the real loader.

    from sentiment_model.testing import build_tiny_artifact
    model_dir = build_tiny_artifact(tmp_path / "model")
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from sentiment_model.data import Example

_POSITIVE = ["love", "great", "wonderful", "excellent", "happy", "fantastic", "amazing", "delightful"]
_NEGATIVE = ["hate", "terrible", "awful", "horrible", "sad", "broken", "worst", "disgusting"]
_NEUTRAL = ["scheduled", "located", "listed", "printed", "filed", "stored", "measured", "shipped"]
_SUBJECTS = ["the phone", "this movie", "the service", "our hotel"]


def synthetic_examples() -> list[Example]:
    """48 short sentences, 16 per label, over two pseudo-domains."""
    out = []
    for i, (pos, neg, neu) in enumerate(zip(_POSITIVE, _NEGATIVE, _NEUTRAL, strict=True)):
        for j, subject in enumerate(_SUBJECTS[:2] if i % 2 else _SUBJECTS[2:]):
            domain = "a" if j == 0 else "b"
            out.append(Example(f"I {pos} {subject}, it is {pos}!", "positive", domain))
            out.append(Example(f"I {neg} {subject}, it is {neg}.", "negative", domain))
            out.append(Example(f"{subject.capitalize()} was {neu} on Tuesday.", "neutral", domain))
    return out


TINY_PARAMS: dict[str, Any] = {
    "features": {
        "word": {"analyzer": "word", "ngram_range": [1, 2], "min_df": 1, "sublinear_tf": True},
        "char": {"analyzer": "char_wb", "ngram_range": [2, 4], "min_df": 1, "sublinear_tf": True},
    },
    "classifier": {"solver": "lbfgs", "C": 10.0, "class_weight": None, "tol": 1e-4, "max_iter": 1000},
    "selection": None,
    "split": "synthetic: every 4th example is test",
}


def build_tiny_artifact(out_dir: Path, *, params: dict[str, Any] | None = None) -> Path:
    """Train on :func:`synthetic_examples` and write a real artefact directory; returns ``out_dir``."""
    from sentiment_model import data, train

    examples = synthetic_examples()
    test = examples[::4]
    train_ex = [ex for i, ex in enumerate(examples) if i % 4]
    data_sha = hashlib.sha256(data.dataset_csv_bytes(examples)).hexdigest()
    pipeline, manifest = train.train(
        train_ex,
        test,
        data_sha256=data_sha,
        params=copy.deepcopy(params or TINY_PARAMS),
        select=False,
        source={"name": "synthetic test sentences (sentiment_model.testing)"},
    )
    train.write_artifact(pipeline, manifest, Path(out_dir))
    return Path(out_dir)
