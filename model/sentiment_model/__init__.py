"""The sentiment model: data extraction from a pinned package, training, the artefact format and its loader.

Serving code imports only :mod:`sentiment_model.runtime` (no training dependencies are imported there).
"""

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

__all__ = ["LABELS"]
