"""Turn a dynamically int8-quantised ONNX graph into a weight-only int8 graph whose answers do not depend on
the batch.

``onnxruntime.quantization.quantize_dynamic`` rewrites every ``MatMul`` with a constant weight into::

    DynamicQuantizeLinear(X) -> (Xq, Xs, Xz)
    MatMulInteger(Xq, Wq, Xz, Wz) -> Cast(float) -> Mul(., Mul(Xs, Ws))

``DynamicQuantizeLinear`` computes **one** scale for the whole activation tensor, i.e. for every text of a
padded batch together: a text's logits then depend on the other texts it shares a graph run with (about 3 % of
``vader_test`` labels change between batch sizes 1 and 256). This module replaces each such group with::

    DequantizeLinear(Wq, Ws, Wz) -> W (float)
    MatMul(X, W)

Only standard ONNX operators (opset 13+), the same int8 weights and scales (so the file keeps its size and
the trained weights are unchanged), and no scale shared between rows. The serving runtime
(:mod:`sentiment_model.runtime`) has onnxruntime dequantise the weights once, at load, and compute every product in
float32 (``session.disable_quant_qdq``): onnxruntime would otherwise fuse the pair into ``MatMulNBits``, whose
int8 activation path made one text's logits differ by 2.3e-4 between a run alone and a run of two. In float32
a text's answer depends on the text alone, up to float rounding (max probability difference between one text
per run and runs of 25, on every held-out set: about 1e-7; ``docs/model-card.md``).

The embedding ``Gather -> DequantizeLinear`` pattern (constant per-tensor scales, applied row by row) is
already batch-independent and is kept as it is.

    python -m sentiment_model.weight_only --src <artefact dir> --out <artefact dir>

converts an artefact directory (``onnx-transformer-v1``): the graph, a copy of the tokenizer, and a manifest
with the new file's sha256, a derived version (``<version>-w8``) and ``derived_from``. Needs ``onnx`` (tooling
only: ``requirements/eval.txt`` and ``requirements/train.txt``; serving never imports this module).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONVERSION = "weight-only-int8 (sentiment_model.weight_only)"
VERSION_SUFFIX = "-w8"


class ConversionError(ValueError):
    """The graph does not have the shape quantize_dynamic produces."""


def convert(model: Any) -> Any:
    """The weight-only graph of a ``quantize_dynamic`` model (an ``onnx.ModelProto``; modified in place and
    returned). Raises ConversionError when a quantised MatMul does not have the expected shape, and when
    nothing was quantised."""
    import onnx
    from onnx import helper

    graph = model.graph
    producer = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {init.name for init in graph.initializer}

    def only_consumer(name: str, op_type: str) -> Any:
        users = consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type:
            raise ConversionError(f"{name}: expected one {op_type} consumer, found {[u.op_type for u in users]}")
        return users[0]

    replaced: dict[int, list[Any]] = {}
    removed: set[int] = set()
    quantizers: set[int] = set()
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        if len(node.input) != 4 or node.input[1] not in initializers:
            raise ConversionError(f"{node.name}: MatMulInteger without a constant weight and both zero points")
        quantizer = producer.get(node.input[0])
        if quantizer is None or quantizer.op_type != "DynamicQuantizeLinear":
            raise ConversionError(f"{node.name}: its input does not come from DynamicQuantizeLinear")
        cast = only_consumer(node.output[0], "Cast")
        rescale = only_consumer(cast.output[0], "Mul")
        scales = producer.get(next(i for i in rescale.input if i != cast.output[0]))
        if scales is None or scales.op_type != "Mul" or quantizer.output[1] not in scales.input:
            raise ConversionError(f"{node.name}: the output is not rescaled by activation scale x weight scale")
        weight_scale = next(i for i in scales.input if i != quantizer.output[1])
        weight = f"{node.input[1]}_dequantized"
        name = node.name or rescale.output[0]  # node names are optional; output names are unique
        replaced[id(node)] = [
            helper.make_node("DequantizeLinear", [node.input[1], weight_scale, node.input[3]], [weight],
                             name=f"{name}_weight_dequantize"),
            helper.make_node("MatMul", [quantizer.input[0], weight], [rescale.output[0]], name=f"{name}_float"),
        ]  # fmt: skip
        removed |= {id(cast), id(rescale), id(scales)}
        quantizers.add(id(quantizer))
    if not replaced:
        raise ConversionError("no dynamically quantised MatMul in the graph")
    kept = []
    for node in graph.node:
        if id(node) in replaced:
            kept.extend(replaced[id(node)])
        elif id(node) not in removed:
            kept.append(node)
    used = {name for node in kept for name in node.input}
    for node in kept:  # a DynamicQuantizeLinear whose outputs nothing reads any more
        if id(node) in quantizers and not used.intersection(node.output):
            removed.add(id(node))
    kept = [node for node in kept if id(node) not in removed]
    used = {name for node in kept for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return model


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def convert_artefact(src: Path, out: Path, data_csv: Path | None = None) -> dict[str, Any]:
    """Convert the artefact directory ``src`` into ``out`` (created); returns the new manifest. With
    ``data_csv`` (the VADER dataset the model was trained from), the manifest's ONNX metrics are measured
    again on the new graph (validation and test splits, through the serving runtime); the source's metrics
    are kept under ``derived_from``."""
    import onnx

    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    source = (src / files["model"]).read_bytes()
    if sha256(source) != manifest["model_sha256"]:
        raise ConversionError(f"{src / files['model']}: sha256 does not match the manifest")
    converted = convert(onnx.load_from_string(source)).SerializeToString()
    out.mkdir(parents=True, exist_ok=True)
    (out / files["model"]).write_bytes(converted)
    if src.resolve() != out.resolve():
        shutil.copyfile(src / files["tokenizer"], out / files["tokenizer"])
    derived = {
        "version": manifest["version"],
        "model_sha256": manifest["model_sha256"],
        "conversion": CONVERSION,
        "metrics": dict(manifest.get("metrics", {})),
    }
    manifest.update(
        version=f"{manifest['version']}{VERSION_SUFFIX}",
        model_sha256=sha256(converted),
        quantization="int8 weights (per tensor), float32 activations and products",
        derived_from=derived,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if data_csv is not None:
        manifest["metrics"] = {**_torch_metrics(manifest), **measure(out, data_csv)}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _torch_metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.get("metrics", {}).items() if k.endswith("_torch")}


def measure(artefact: Path, data_csv: Path) -> dict[str, float]:
    """The manifest's ONNX metrics of ``artefact``, measured through the serving runtime (its default batch)."""
    import numpy as np

    from sentiment_model import metrics
    from sentiment_model.data import training_splits
    from sentiment_model.runtime import load_model

    model = load_model(artefact)
    splits = training_splits(data_csv)
    out: dict[str, float] = {}
    for split in ("validation", "test"):
        gold = metrics.encode([ex.label for ex in splits[split]], model.labels)
        proba = model.predict_proba([ex.text for ex in splits[split]])
        pred = proba.argmax(axis=1)
        out[f"{split}_macro_f1_int8"] = round(float(metrics.report(gold, pred, model.labels)["macro_f1"]), 4)
        if split == "test":
            out["test_accuracy_int8"] = round(float((pred == np.asarray(gold)).mean()), 4)
            out["test_ece_int8"] = round(float(metrics.expected_calibration_error(proba, gold, bins=15)[0]), 4)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sentiment_model.weight_only", description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="artefact directory with a quantize_dynamic graph")
    parser.add_argument("--out", type=Path, required=True, help="directory for the converted artefact")
    parser.add_argument("--data", type=Path, help="VADER dataset CSV: measure the manifest's metrics again")
    args = parser.parse_args(argv)
    try:
        manifest = convert_artefact(args.src, args.out, args.data)
    except (ConversionError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {manifest['version']} (model sha256 {manifest['model_sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
