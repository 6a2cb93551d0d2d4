"""sentiment_model.weight_only on a small graph quantised by onnxruntime's own quantize_dynamic: the converted
graph keeps the int8 weights, loses the per-batch activation scale, and so answers each row alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # requirements/eval.txt pins it; skipped only outside the dev venv
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402
from sentiment_model.weight_only import ConversionError, convert, convert_artefact, main  # noqa: E402


def float_graph(path: Path) -> None:
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = (
        8  # what torch.onnx writes for opset 17; onnx 1.23 defaults to a newer one than onnxruntime reads
    )
    onnx.save(model, str(path))


@pytest.fixture
def dynamic(tmp_path: Path) -> Path:
    float_graph(tmp_path / "fp32.onnx")
    quantize_dynamic(str(tmp_path / "fp32.onnx"), str(tmp_path / "dynamic.onnx"), weight_type=QuantType.QInt8)
    return tmp_path / "dynamic.onnx"


def run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"x": x})[0])


def rows() -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(6, 8)).astype(np.float32)
    x[0] *= 50.0  # one row with a much wider range: under a per-batch scale it coarsens its companions
    return x


def test_the_dynamic_graph_depends_on_the_batch(dynamic: Path):
    """The problem being solved, shown on onnxruntime's own output."""
    x = rows()
    together = run(dynamic.read_bytes(), x)
    alone = np.vstack([run(dynamic.read_bytes(), x[i : i + 1]) for i in range(len(x))])

    assert np.abs(together - alone).max() > 1e-3


def test_the_converted_graph_answers_each_row_alone_and_keeps_the_weights(dynamic: Path, tmp_path: Path):
    model = convert(onnx.load(str(dynamic)))
    ops = [node.op_type for node in model.graph.node]
    payload = model.SerializeToString()
    x = rows()

    together = run(payload, x)
    alone = np.vstack([run(payload, x[i : i + 1]) for i in range(len(x))])

    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert ops.count("DequantizeLinear") == 2 and ops.count("MatMul") == 2
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert {w.dtype for name, w in weights.items() if name.endswith("_quantized")} == {np.dtype(np.int8)}
    assert np.abs(together - alone).max() < 1e-5
    reference = run((tmp_path / "fp32.onnx").read_bytes(), x)
    assert np.abs(alone - reference).max() < 0.05 * np.abs(reference).max()  # int8 weights: close to float


def test_a_graph_without_dynamic_quantisation_is_refused(tmp_path: Path):
    float_graph(tmp_path / "fp32.onnx")

    with pytest.raises(ConversionError, match="no dynamically quantised MatMul"):
        convert(onnx.load(str(tmp_path / "fp32.onnx")))


def test_an_artefact_directory_is_converted_with_a_derived_version(dynamic: Path, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "model.onnx").write_bytes(dynamic.read_bytes())
    (src / "tokenizer.json").write_text("{}")
    manifest = {
        "format": "onnx-transformer-v1",
        "version": "tiny-1",
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "model_sha256": hashlib.sha256(dynamic.read_bytes()).hexdigest(),
        "metrics": {"test_macro_f1_torch": 0.5, "test_macro_f1_int8": 0.4},
    }
    (src / "manifest.json").write_text(json.dumps(manifest))

    assert main(["--src", str(src), "--out", str(out)]) == 0

    written = json.loads((out / "manifest.json").read_text())
    assert written["version"] == "tiny-1-w8"
    assert written["model_sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert written["derived_from"]["version"] == "tiny-1"
    assert written["derived_from"]["metrics"] == manifest["metrics"]
    assert (out / "tokenizer.json").read_text() == "{}"


def test_a_tampered_source_is_refused(dynamic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(dynamic.read_bytes())
    manifest = {"version": "x", "files": {"model": "model.onnx", "tokenizer": "t"}, "model_sha256": "0" * 64}
    (src / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ConversionError, match="sha256"):
        convert_artefact(src, tmp_path / "out")
    assert main(["--src", str(src), "--out", str(tmp_path / "out")]) == 2
    assert "sha256 does not match" in capsys.readouterr().err
