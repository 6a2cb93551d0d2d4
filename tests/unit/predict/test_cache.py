"""The answer cache (prediction.cache): hits cost no endpoint call, the answer is the same with and without
it, it is bounded in entries, bytes and age, and it never serves an answer of another model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from prediction.cache import ENTRY_OVERHEAD_BYTES, CachedEndpoint, PredictionCache
from prediction.config import CacheSettings, PredictSettings
from prediction.usecase import predict, predict_batch
from sentiment_api.deadline import Deadline
from sentiment_core.wire import Prediction

from tests.helpers import FUNCTION_ENV


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ModelEndpoint:
    """Answers like one model version, which the test may change (an endpoint updated in place)."""

    def __init__(self, version: str | None = "m-1") -> None:
        self.version = version
        self.calls: list[list[str]] = []

    def _answer(self, text: str) -> Prediction:
        label = "negative" if "bad" in text else "positive"
        p = (len(text) % 7) / 10
        return Prediction(label, {"negative": p, "neutral": 0.0, "positive": 1 - p}, self.version)

    def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
        self.calls.append([text])
        return self._answer(text)

    def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
        self.calls.append(list(texts))
        return [self._answer(t) for t in texts]


def cached(endpoint: ModelEndpoint, clock: Clock | None = None, **bounds: Any) -> CachedEndpoint:
    limits = {"max_entries": 100, "max_bytes": 1 << 20, "ttl_s": 60.0, **bounds}
    return CachedEndpoint(endpoint, "sentiment-test", PredictionCache(clock=clock or Clock(), **limits))


DEADLINE = Deadline.for_invocation(2.5)


def single(endpoint: Any, text: str) -> dict[str, Any]:
    return predict(json.dumps({"text": text}), False, None, "cid-12345678", endpoint, DEADLINE)


def batch(endpoint: Any, texts: list[str]) -> dict[str, Any]:
    return predict_batch(json.dumps({"texts": texts}), False, None, "cid-12345678", endpoint, DEADLINE)


def test_a_repeated_text_costs_no_endpoint_call_and_gets_the_same_answer():
    model = ModelEndpoint()
    endpoint = cached(model)

    first, second = single(endpoint, "Thanks!"), single(endpoint, "Thanks!")

    assert first == second == single(ModelEndpoint(), "Thanks!")
    assert model.calls == [["Thanks!"]]


def test_a_batch_sends_only_its_misses_and_shares_the_cache_with_predict():
    model = ModelEndpoint()
    endpoint = cached(model)
    single(endpoint, "Great app")

    answer = batch(endpoint, ["Great app", "bad update", "Great app", "Thanks!"])

    assert model.calls == [["Great app"], ["bad update", "Thanks!"]]
    assert answer == batch(ModelEndpoint(), ["Great app", "bad update", "Great app", "Thanks!"])


@pytest.mark.parametrize("seed", range(5))
def test_answers_are_identical_with_and_without_the_cache(seed: int):
    import random

    rng = random.Random(seed)
    vocabulary = ["Thanks!", "Great app", "bad service", "ok", "so bad", "love it", "meh", "bad bad"]
    with_cache, without = cached(ModelEndpoint(), max_entries=3), ModelEndpoint()
    for _ in range(40):
        texts = [rng.choice(vocabulary) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.5:
            assert single(with_cache, texts[0]) == single(without, texts[0])
        else:
            assert batch(with_cache, texts) == batch(without, texts)


def test_entries_expire_after_the_ttl():
    clock, model = Clock(), ModelEndpoint()
    endpoint = cached(model, clock, ttl_s=60.0)
    single(endpoint, "Thanks!")
    clock.now = 59.9
    single(endpoint, "Thanks!")
    clock.now = 60.0
    single(endpoint, "Thanks!")

    assert model.calls == [["Thanks!"], ["Thanks!"]]


def test_the_cache_is_bounded_in_entries_least_recently_used_out_first():
    cache = PredictionCache(max_entries=2, max_bytes=1 << 20, ttl_s=60, clock=Clock())
    model = ("endpoint", "m-1")
    a, b, c = (cache.digest(t) for t in "abc")
    cache.put(a, Prediction("positive"), model)
    cache.put(b, Prediction("positive"), model)
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, Prediction("positive"), model)

    assert len(cache) == 2
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None


def test_the_cache_is_bounded_in_bytes():
    cache = PredictionCache(max_entries=1000, max_bytes=10 * ENTRY_OVERHEAD_BYTES, ttl_s=60, clock=Clock())
    for i in range(50):
        cache.put(cache.digest(str(i)), Prediction("neutral", None, "m-1"), ("endpoint", "m-1"))

    assert cache.size_bytes <= 10 * ENTRY_OVERHEAD_BYTES
    assert 0 < len(cache) < 10


def test_the_text_is_never_stored_only_a_keyed_digest():
    one, other = PredictionCache(10, 1 << 20, 60), PredictionCache(10, 1 << 20, 60)
    text = "my account number is 12345"
    one.put(one.digest(text), Prediction("neutral"), ("endpoint", "m-1"))

    stored = repr(one._entries)
    assert text not in stored and "12345" not in stored
    assert len(one.digest(text)) == 16
    assert one.digest(text) != other.digest(text)  # keyed per execution environment


def test_an_answer_of_another_model_drops_every_entry_of_the_previous_one():
    model = ModelEndpoint("m-1")
    endpoint = cached(model)
    single(endpoint, "Thanks!")
    single(endpoint, "Great app")

    model.version = "m-2"  # updated in place behind the same name
    assert single(endpoint, "Thanks!")["model_version"] == "m-1"  # a hit: no call shows the change yet
    assert single(endpoint, "new text")["model_version"] == "m-2"  # a miss shows it ...
    assert single(endpoint, "Great app")["model_version"] == "m-2"  # ... and nothing of m-1 is served again
    assert single(endpoint, "Thanks!")["model_version"] == "m-2"


def test_a_batch_never_mixes_models():
    model = ModelEndpoint("m-1")
    endpoint = cached(model)
    batch(endpoint, ["Thanks!", "Great app"])
    model.version = "m-2"

    answer = batch(endpoint, ["Thanks!", "something new", "Great app"])

    assert answer["model_version"] == "m-2"
    assert model.calls[-2:] == [["something new"], ["Thanks!", "something new", "Great app"]]  # all again, at once


def test_a_batch_does_not_mix_models_while_the_endpoint_alternates_between_two():
    class Alternating(ModelEndpoint):
        def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
            self.version = "v2" if self.version == "v1" else "v1"  # blue/green variants answering in turn
            return super().classify_batch(texts, correlation_id, deadline)

    model = Alternating("v2")
    endpoint = cached(model)
    batch(endpoint, ["a"])  # answered by v1, cached under v1

    answer = batch(endpoint, ["a", "b"])  # b's miss is answered by v2: everything again, answered by v1

    assert answer["model_version"] == "v1"
    assert {r["index"] for r in answer["results"]} == {0, 1}


def test_an_endpoint_answering_another_number_of_texts_is_a_model_error():
    from sentiment_api.errors import ModelError

    class Short(ModelEndpoint):
        def classify_batch(self, texts: Sequence[str], correlation_id: str, deadline: Deadline) -> list[Prediction]:
            return super().classify_batch(texts, correlation_id, deadline)[:-1]

    with pytest.raises(ModelError):
        batch(cached(Short()), ["a", "b"])


def test_an_endpoint_without_versions_is_keyed_by_its_name():
    model = ModelEndpoint(None)
    endpoint = cached(model)

    assert batch(endpoint, ["a"]) == batch(endpoint, ["a"])
    assert model.calls == [["a"]]


def test_failures_are_not_cached():
    class Failing(ModelEndpoint):
        def classify(self, text: str, correlation_id: str, deadline: Deadline) -> Prediction:
            self.calls.append([text])
            raise RuntimeError("down")

    model = Failing()
    endpoint = cached(model)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            single(endpoint, "Thanks!")

    assert len(model.calls) == 2


def test_the_setting_turns_the_cache_off_and_the_defaults_are_bounded():
    model = ModelEndpoint()
    off = CachedEndpoint.wrap(model, "sentiment-test", CacheSettings(False, 10, 1 << 20, 60))
    assert off is model

    settings = PredictSettings.from_env({**FUNCTION_ENV})
    assert settings.cache == CacheSettings(enabled=True, max_entries=10_000, max_bytes=4 * 1024 * 1024, ttl_s=300.0)
    assert PredictSettings.from_env({**FUNCTION_ENV, "PREDICTION_CACHE": "off"}).cache.enabled is False
