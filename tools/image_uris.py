"""The bootstrap endpoint's container image per Region, from the SageMaker Python SDK's image list.

deploy/image_uris/pytorch-inference.json is the SDK's entry for the newest PyTorch CPU inference image (its
``source`` names the SDK file and commit; refresh it from a newer SDK the same way). This prints the
template's ``BootstrapInferenceImage`` mapping from it; tests/template/test_template_bootstrap.py checks that
the template holds exactly that, and that the image tag is the one the SDK builds
(``{version}-{processor}-{py_version}``, sagemaker.image_uris._format_tag).

    python -m tools.image_uris        # the Mappings block to paste into template.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent.parent / "deploy" / "image_uris" / "pytorch-inference.json"
#: SageMaker Serverless Inference is not offered in the China Regions (the serverless endpoints guide).
UNSUPPORTED_REGIONS = ("cn-north-1", "cn-northwest-1")


def entry(path: Path = SOURCE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def image_tag(data: dict[str, Any] | None = None) -> str:
    data = entry() if data is None else data
    return f"{data['version']}-{data['processor']}-{data['py_version']}"


def mapping(data: dict[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """Region -> {"Account": registry account} for the Regions serverless endpoints exist in."""
    data = entry() if data is None else data
    return {
        region: {"Account": account}
        for region, account in sorted(data["registries"].items())
        if region not in UNSUPPORTED_REGIONS
    }


def main() -> int:
    print("Mappings:")
    print(f"  # {image_tag()} (tools/image_uris.py)")
    print("  BootstrapInferenceImage:")
    for region, value in mapping().items():
        print(f'    {region}: {{Account: "{value["Account"]}"}}')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
