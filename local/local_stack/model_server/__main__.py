"""``python -m local_stack.model_server``: serve one model artefact as a SageMaker-compatible endpoint."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ..processes import exit_with_parent
from .app import DEFAULT_ENDPOINT_NAME, create_app, serve
from .faults import CorrelationIdFaults


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-compatible local model server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--model-dir", type=Path, default=Path(".cache") / "model")
    parser.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT_NAME)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--enable-fault-injection",
        action="store_true",
        help="tests only: inject the fault named by a correlation id fault-<kind>-... (off by default)",
    )
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when the starting process dies")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        exit_with_parent()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from sentiment_model.runtime import ModelArtifactError, load_model

    try:
        model = load_model(args.model_dir)
    except ModelArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    faults = CorrelationIdFaults() if args.enable_fault_injection else None
    server = serve(
        create_app(model, args.endpoint_name, faults=faults), args.host, args.port, fault_injection=bool(faults)
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        f"model server: http://{args.host}:{server.server_port} endpoint={args.endpoint_name} "
        f"model_version={model.version}" + (" FAULT INJECTION ENABLED" if faults else ""),
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
