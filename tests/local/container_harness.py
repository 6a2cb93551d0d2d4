"""The SageMaker container contract around an extracted model bundle, for tests: ``GET /ping`` and
``POST /invocations`` (and the runtime path ``/endpoints/<name>/invocations``, so that boto3's
``invoke_endpoint`` reaches it) dispatched by the sagemaker-inference toolkit's own ``Transformer``, the code
the AWS PyTorch inference container runs behind TorchServe (its sagemaker-pytorch-inference package carries
the same ``sagemaker_inference``). What TorchServe itself adds is emulated here: loading the model once at
start (a failed ``model_fn`` leaves /ping unhealthy), the request properties, and the status and content type
the handler sets on its context.

Run as a script, with ``PYTHONPATH=<model_dir>/code`` only (as TorchServe's workers get it), so that the
bundle's own copies of sentiment_model and sentiment_core are what runs:

    SAGEMAKER_PROGRAM=inference.py PYTHONPATH=<dir>/code python tests/local/container_harness.py --model-dir <dir>
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sagemaker_inference.transformer import Transformer


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self._headers.get(key)


class Context:
    """What TorchServe hands the handler: system properties, the request's properties, and setters."""

    def __init__(self, model_dir: str, headers: dict[str, str]) -> None:
        self.system_properties = {"model_dir": model_dir}
        self.request_processor = [_RequestProcessor(headers)]
        self.status = 200
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "") -> None:
        self.status = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type = value


def make_handler(transformer: Transformer, model_dir: str, healthy: bool, lock: threading.Lock) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path != "/ping":
                return self._send(404, b"", "text/plain")
            status = 200 if healthy else 500
            self._send(
                status, json.dumps({"status": "Healthy" if healthy else "Unhealthy"}).encode(), "application/json"
            )

        def do_POST(self) -> None:
            if self.path != "/invocations" and not (
                self.path.startswith("/endpoints/") and self.path.endswith("/invocations")
            ):
                return self._send(404, b"", "text/plain")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()}
            headers.setdefault("Content-Type", headers.get("content-type", ""))
            context = Context(model_dir, headers)
            with lock:  # one worker (SAGEMAKER_MODEL_SERVER_WORKERS=1)
                (result,) = transformer.transform([{"body": body}], context)
            data = result if isinstance(result, bytes) else str(result).encode("utf-8")
            if context.status != 200:
                # the SageMaker runtime wraps a container error as a ModelError (InvokeEndpoint's errors)
                error = {
                    "__type": "ModelError",
                    "message": f"Received client error ({context.status}) from model",
                    "OriginalStatusCode": context.status,
                    "OriginalMessage": data.decode("utf-8", "replace"),
                }
                return self._send(
                    424 if self.path.startswith("/endpoints/") else context.status,
                    json.dumps(error).encode(),
                    "application/json",
                    {"x-amzn-ErrorType": "ModelError"},
                )
            self._send(200, data, context.content_type or "application/json")

        def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    transformer = Transformer()
    healthy = True
    try:  # TorchServe loads the model when the worker starts (the toolkit's initialize)
        transformer.validate_and_initialize(model_dir=args.model_dir, context=Context(args.model_dir, {}))
    except Exception as exc:
        print(f"model_fn failed: {type(exc).__name__}", file=sys.stderr, flush=True)
        healthy = False
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(transformer, args.model_dir, healthy, threading.Lock())
    )
    modules = {
        name: getattr(sys.modules.get(name), "__file__", None)
        for name in ("sentiment_model", "sentiment_core", "inference")
    }
    print(json.dumps({"port": server.server_address[1], "modules": modules, "loaded": sorted(sys.modules)}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
