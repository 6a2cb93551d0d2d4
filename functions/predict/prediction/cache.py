"""Answers to repeated texts without a model call: an in-memory LRU of each execution environment, shared by
POST /predict and POST /predict/batch, in front of the endpoint (same interface: SentimentEndpoint).

- **Key:** a keyed BLAKE2b digest of the text (16 bytes; the key is random per execution environment, so a
  digest means nothing outside it). The text itself is never stored.
- **Whose answers:** every entry carries the model it came from: the endpoint name and the model version
  the endpoint reported. An entry is served only while it belongs to the *current* model, the one the newest
  endpoint answer came from. An answer from another model drops every entry, before anything is served from
  the cache again.
- **After a release:** a model release in this project always publishes a new function version, which
  the alias shifts to, with the endpoint name in its configuration. So the first requests after a release
  run in new execution environments with empty caches: they are misses.
  - An endpoint updated in place, behind the same name, is not a release here. If someone does it, a
    warm environment serves hits of the old model until its first miss shows the new version, at most
    ``PREDICTION_CACHE_TTL_S``.
  - A batch does not mix models. When a batch's misses come back from another model than its hits, the
    whole batch is asked again, in a second call. An entry is stored under the model that gave it.
- **Bounds:** ``PREDICTION_CACHE_MAX_ENTRIES`` entries and ``PREDICTION_CACHE_MAX_BYTES`` bytes (each entry
  costs :data:`ENTRY_OVERHEAD_BYTES` plus its strings), least recently used out first. An entry lives
  ``PREDICTION_CACHE_TTL_S`` seconds. ``PREDICTION_CACHE=off`` turns it off.
- **Metrics:** ``CacheHits`` and ``CacheMisses`` (one per text).

Answers are identical with and without the cache: an entry is the endpoint's rounded answer, stored as it
was returned (tested).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sentiment_api.deadline import Deadline
from sentiment_api.endpoint import SentimentEndpoint
from sentiment_api.errors import ModelError
from sentiment_api.observability import MetricUnit, metrics
from sentiment_core.wire import Prediction

from .config import CacheSettings

#: The bytes an entry is counted for besides its strings: key, prediction, scores dict, LRU links (measured
#: with sys.getsizeof and tracemalloc on CPython 3.12: about 700; rounded up).
ENTRY_OVERHEAD_BYTES = 800


@dataclass(frozen=True, slots=True)
class _Entry:
    prediction: Prediction
    model: tuple[str, str]  # (endpoint name, reported model version or "")
    expires_at: float
    size: int


class PredictionCache:
    """An LRU of predictions by text digest, bounded in entries, bytes and age, for one model at a time."""

    def __init__(
        self, max_entries: int, max_bytes: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._max_entries, self._max_bytes, self._ttl_s = max_entries, max_bytes, ttl_s
        self._clock = clock
        self._bytes = 0
        self._model: tuple[str, str] | None = None
        self._key = secrets.token_bytes(32)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16, key=self._key).digest()

    def get(self, digest: bytes) -> tuple[Prediction, tuple[str, str]] | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires_at <= self._clock() or entry.model != self._model:
            self._drop(digest)
            return None
        self._entries.move_to_end(digest)
        return entry.prediction, entry.model

    def put(self, digest: bytes, prediction: Prediction, model: tuple[str, str]) -> None:
        if model != self._model:  # another model answered: nothing of the previous one is served again
            self.clear()
            self._model = model
        size = ENTRY_OVERHEAD_BYTES + sum(len(s) for s in (*model, prediction.label, prediction.model_version or ""))
        if size > self._max_bytes:
            return
        if digest in self._entries:
            self._drop(digest)
        self._entries[digest] = _Entry(prediction, model, self._clock() + self._ttl_s, size)
        self._bytes += size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, digest: bytes) -> None:
        self._bytes -= self._entries.pop(digest).size


class CachedEndpoint:
    """A SentimentEndpoint that answers repeated texts from a PredictionCache and sends only the misses."""

    def __init__(self, endpoint: SentimentEndpoint, endpoint_name: str, cache: PredictionCache) -> None:
        self._endpoint = endpoint
        self._name = endpoint_name
        self._cache = cache

    @classmethod
    def wrap(cls, endpoint: SentimentEndpoint, endpoint_name: str, settings: CacheSettings) -> SentimentEndpoint:
        """``endpoint`` behind a cache, or unchanged when the settings turn the cache off."""
        if not settings.enabled:
            return endpoint
        return cls(endpoint, endpoint_name, PredictionCache(settings.max_entries, settings.max_bytes, settings.ttl_s))

    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
        (prediction,) = self._answer([text], correlation_id, deadline, batch=False)
        return prediction

    def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
        return self._answer(texts, correlation_id, deadline, batch=True)

    def _answer(self, texts: Sequence[str], correlation_id: str, deadline: Deadline, batch: bool) -> list[Prediction]:
        digests = [self._cache.digest(t) for t in texts]
        found = [self._cache.get(d) for d in digests]
        answers: list[Prediction | None] = [f[0] if f else None for f in found]
        misses = [i for i, a in enumerate(answers) if a is None]
        _count(len(texts) - len(misses), len(misses))
        if misses:
            fresh = self._ask([texts[i] for i in misses], correlation_id, deadline, batch)
            model = self._model_of(fresh[0])
            if any(f is not None and f[1] != model for f in found):
                # the model changed under the hits: the whole batch again, in one call, so that one answer
                # comes from one model (even if the endpoint alternates between two while it is updated)
                misses, fresh = list(range(len(texts))), self._ask(list(texts), correlation_id, deadline, batch)
            for i, prediction in zip(misses, fresh, strict=True):
                answers[i] = prediction
                self._cache.put(digests[i], prediction, self._model_of(prediction))
        return [a for a in answers if a is not None]

    def _ask(self, texts: list[str], correlation_id: str, deadline: Deadline, batch: bool) -> list[Prediction]:
        if not batch:
            return [self._endpoint.classify(texts[0], correlation_id, deadline)]
        answers = self._endpoint.classify_batch(texts, correlation_id, deadline)
        if len(answers) != len(texts):
            raise ModelError(detail=f"sent {len(texts)} texts, got {len(answers)} predictions")
        return answers

    def _model_of(self, prediction: Prediction) -> tuple[str, str]:
        return (self._name, prediction.model_version or "")


def _count(hits: int, misses: int) -> None:
    metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=hits)
    metrics.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=misses)
