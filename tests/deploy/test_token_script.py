"""deploy/token.sh against a fake AWS CLI and a local token endpoint that checks the client credentials grant
as Cognito's /oauth2/token does (HTTP Basic client authentication, grant_type, scope)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "deploy" / "token.sh"
CLIENT_ID = "4machineclientid0000000000"
SECRET = "s3cr3tvalue0123456789abcdefghijklmnopqrstuvwxyz012"

FAKE_AWS = r'''#!PYTHON
"""A fake aws CLI: the stack outputs and the client secret of the test, and a log of its arguments."""
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
state = json.load(open(os.environ["FAKE_AWS_STATE"]))
if args[:2] == ["cloudformation", "describe-stacks"]:
    key = re.search(r"OutputKey=='(\w+)'", args[args.index("--query") + 1]).group(1)
    print(state["outputs"].get(key, ""))
elif args[:2] == ["cognito-idp", "describe-user-pool-client"]:
    assert args[args.index("--client-id") + 1] == state["outputs"]["MachineClientId"]
    print(state["secret"])
else:
    sys.exit(f"unexpected aws call {args}")
'''

FAKE_CURL = r"""#!/usr/bin/env bash
# records curl's arguments, then runs the real one
printf '%s\n' "$*" >> "$FAKE_CURL_LOG"
exec REAL_CURL "$@"
"""


class _TokenEndpoint(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        form = {k: v[0] for k, v in parse_qs(body).items()}
        auth = self.headers.get("Authorization", "")
        self.requests.append({"auth": auth, "form": form, "type": self.headers.get("Content-Type")})
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
        if auth != expected:
            self._answer(400, {"error": "invalid_client"})
        elif form != {"grant_type": "client_credentials", "scope": "sentiment-api/predict"}:
            self._answer(400, {"error": "invalid_request"})
        else:
            self._answer(200, {"access_token": "eyJ.token.sig", "expires_in": 3600, "token_type": "Bearer"})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[str]:
    _TokenEndpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/token"
    server.shutdown()
    server.server_close()


def _run(tmp_path: Path, outputs: dict[str, str], secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    real_curl = subprocess.run(["bash", "-c", "command -v curl"], capture_output=True, text=True, check=True)
    for name, text in {
        "aws": FAKE_AWS.replace("#!PYTHON", f"#!{sys.executable}"),
        "curl": FAKE_CURL.replace("REAL_CURL", real_curl.stdout.strip()),
    }.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "state.json").write_text(json.dumps({"outputs": outputs, "secret": secret}))
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(home),
        "FAKE_AWS_STATE": str(tmp_path / "state.json"),
        "FAKE_AWS_LOG": str(tmp_path / "aws.log"),
        "FAKE_CURL_LOG": str(tmp_path / "curl.log"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "dev"], capture_output=True, text=True, env=env, cwd=home, timeout=60, check=False
    )


def test_prints_the_access_token_and_keeps_the_secret_out_of_argv_and_disk(tmp_path: Path, token_endpoint: str) -> None:
    outputs = {"TokenUrl": token_endpoint, "MachineClientId": CLIENT_ID, "UserPoolId": "us-east-1_POOL"}
    result = _run(tmp_path, outputs)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "eyJ.token.sig\n"
    (request,) = _TokenEndpoint.requests
    assert request["type"] == "application/x-www-form-urlencoded"
    # the secret reached the endpoint (Basic auth), and nowhere else: not curl's or aws's argv, not a file
    assert SECRET not in (tmp_path / "curl.log").read_text()
    assert SECRET not in (tmp_path / "aws.log").read_text()
    assert SECRET not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "state.json"]
    assert all(SECRET not in p.read_text(errors="replace") for p in written), written


def test_a_wrong_secret_fails_with_the_endpoints_error(tmp_path: Path, token_endpoint: str) -> None:
    outputs = {"TokenUrl": token_endpoint, "MachineClientId": CLIENT_ID, "UserPoolId": "us-east-1_POOL"}
    result = _run(tmp_path, outputs, secret="wrong")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "invalid_client" in result.stderr


def test_a_stack_with_an_external_issuer_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, {"TokenUrl": "None", "MachineClientId": "None", "UserPoolId": "None"})
    assert result.returncode != 0
    assert "external issuer" in result.stderr


def test_only_a_known_environment(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(SCRIPT), "qa"], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "must be dev, staging or prod" in result.stderr
