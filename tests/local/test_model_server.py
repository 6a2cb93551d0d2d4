"""The SageMaker-compatible model server: the WSGI app through werkzeug's test client, one round trip
through real boto3 over HTTP, and the command line. Uses a tiny model trained on synthetic sentences
(sentiment_model.testing), never the real artefact."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from local_stack.model_server.app import (
    CUSTOM_ATTRIBUTES,
    MAX_PAYLOAD_BYTES,
    Faults,
    InvocationError,
    create_app,
    serve,
)
from sentiment_model.runtime import SentimentModel, load_model
from sentiment_model.testing import build_tiny_artifact
from werkzeug.test import Client, TestResponse
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "sentiment-local"
PATH = f"/endpoints/{ENDPOINT}/invocations"
LABELS = ["negative", "neutral", "positive"]
POSITIVE = "I love the phone, it is wonderful!"
NEGATIVE = "I hate the phone, it is terrible."
NEUTRAL = "The phone was shipped on Tuesday."


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path) -> SentimentModel:
    return load_model(tiny_model_dir)


@pytest.fixture
def app(tiny_model: SentimentModel):
    return create_app(tiny_model, ENDPOINT)


@pytest.fixture
def client(app) -> Client:
    return Client(app)


def csv_record(*texts: str) -> bytes:
    """What the predict function sends (sentiment_core.wire.encode_texts): RFC 4180, QUOTE_ALL."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for text in texts:
        writer.writerow([text])
    return buffer.getvalue().encode("utf-8")


def invoke(client: Client, body: bytes | str, content_type: str | None = "text/csv", **headers: str) -> TestResponse:
    sent = {"Accept": "application/json", **headers}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return client.post(PATH, data=body, headers=sent)


def assert_prediction(obj: dict[str, Any], version: str) -> None:
    assert set(obj) == {"predicted_label", "probability", "probabilities", "labels", "model_version"}
    assert obj["labels"] == LABELS
    assert obj["model_version"] == version
    assert len(obj["probabilities"]) == 3
    assert sum(obj["probabilities"]) == pytest.approx(1.0)
    assert obj["probability"] == max(obj["probabilities"])
    assert obj["predicted_label"] == LABELS[obj["probabilities"].index(obj["probability"])]


def assert_error(response: TestResponse, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["x-amzn-ErrorType"] == error_type
    body = response.get_json()
    assert body["__type"] == error_type
    assert body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


# ---- happy paths --------------------------------------------------------------------------------------


def test_ping(client: Client, tiny_model: SentimentModel):
    response = client.get("/ping")

    assert response.status_code == 200
    assert response.get_json() == {"status": "Healthy", "model_version": tiny_model.version}


def test_one_csv_record_gets_one_object_with_the_version_in_custom_attributes(
    client: Client, tiny_model: SentimentModel
):
    response = invoke(client, csv_record(POSITIVE))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers[CUSTOM_ATTRIBUTES] == f"model_version={tiny_model.version}"
    body = response.get_json()
    assert_prediction(body, tiny_model.version)
    assert body["predicted_label"] == "positive"


def test_several_csv_records_get_predictions_in_order(client: Client, tiny_model: SentimentModel):
    body = csv_record(POSITIVE, 'He said "no, never", then: I hate the phone,\nit is terrible.', NEUTRAL)

    response = invoke(client, body)

    predictions = response.get_json()["predictions"]
    assert [p["predicted_label"] for p in predictions] == ["positive", "negative", "neutral"]
    for p in predictions:
        assert_prediction(p, tiny_model.version)


def test_unquoted_csv_and_charset_parameters_are_accepted(client: Client):
    response = invoke(client, NEGATIVE.replace(",", "") + "\r\n", "text/csv; charset=utf-8")

    assert response.status_code == 200
    assert response.get_json()["predicted_label"] == "negative"


def test_json_text_and_instances(client: Client, tiny_model: SentimentModel):
    single = invoke(client, json.dumps({"text": NEGATIVE}), "application/json")
    batch = invoke(client, json.dumps({"instances": [{"text": POSITIVE}, {"text": NEUTRAL}]}), "application/json")
    batch_of_one = invoke(client, json.dumps({"instances": [{"text": POSITIVE}]}), "application/json")

    assert_prediction(single.get_json(), tiny_model.version)
    assert single.get_json()["predicted_label"] == "negative"
    assert [p["predicted_label"] for p in batch.get_json()["predictions"]] == ["positive", "neutral"]
    assert len(batch_of_one.get_json()["predictions"]) == 1  # the shape follows the request's shape


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"", "text/csv"), (b'""\n', "text/csv"), (b'"   "\n', "text/csv"), (b"\n\n", "text/csv"),
     (b'{"text": ""}', "application/json"), (b'{"text": " \\t\\n "}', "application/json")],
)  # fmt: skip
def test_empty_and_whitespace_texts_are_answered(client: Client, body: bytes, content_type: str):
    response = invoke(client, body, content_type)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["predicted_label"] in LABELS


def test_the_container_contract_path_needs_no_endpoint_name(client: Client):
    response = client.post("/invocations", data=csv_record(POSITIVE), headers={"Content-Type": "text/csv"})

    assert response.status_code == 200
    assert response.get_json()["predicted_label"] == "positive"


def test_the_predict_functions_parser_accepts_the_answer(client: Client, tiny_model: SentimentModel):
    from sentiment_api.endpoint import read_answer
    from sentiment_core.wire import encode_texts

    response = invoke(client, encode_texts([NEGATIVE]))

    answer = read_answer(response.get_data(), response.content_type, response.headers[CUSTOM_ATTRIBUTES])

    assert answer.label == "negative"
    assert answer.model_version == tiny_model.version
    assert answer.scores is not None and set(answer.scores) == set(LABELS)


# ---- errors -------------------------------------------------------------------------------------------


def test_an_unknown_endpoint_is_a_validation_error_like_sagemakers(client: Client):
    response = client.post(
        "/endpoints/nope/invocations", data=csv_record(POSITIVE), headers={"Content-Type": "text/csv"}
    )

    body = assert_error(response, 400, "ValidationError")
    assert re.fullmatch(r"Endpoint nope of account \d{12} not found\.", body["message"])


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'"caf\xe9"\n', "text/csv", "UTF-8"),
        (b'"one","two"\n', "text/csv", "one text per record"),
        (b'"unterminated\n', "text/csv", "not valid CSV"),
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"txt": "x"}', "application/json", "expected"),
        (b'{"text": 3}', "application/json", "must be a string"),
        (b'{"instances": []}', "application/json", "non-empty list"),
        (b'{"instances": [{"text": "a"}, "b"]}', "application/json", r"instances\[1\]"),
        (b'["a"]', "application/json", "expected"),
    ],
)
def test_bad_bodies_are_400_model_errors(client: Client, body: bytes, content_type: str, message: str):
    response = invoke(client, body, content_type)

    error = assert_error(response, 400, "ModelError")
    assert re.search(message, error["message"])
    assert error["OriginalStatusCode"] == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_unsupported_content_types_are_415(client: Client, content_type: str | None):
    assert_error(invoke(client, b"hello", content_type), 415, "ModelError")


def test_an_accept_header_that_excludes_json_is_406(client: Client):
    assert_error(invoke(client, csv_record(POSITIVE), Accept="text/csv"), 406, "ModelError")


def test_bodies_over_the_sagemaker_payload_limit_are_413(client: Client):
    assert_error(invoke(client, b"a" * (MAX_PAYLOAD_BYTES + 1)), 413, "ModelError")


def test_unknown_paths_and_methods(client: Client):
    assert_error(client.get("/nope"), 404, "UnknownOperationException")
    assert_error(client.get(PATH), 405, "UnknownOperationException")


class _ExplodingModel:
    labels = ("negative", "neutral", "positive")
    version = "exploding-1"

    def predict_proba(self, texts):
        raise RuntimeError("secret internal detail")


def test_a_failing_model_is_a_generic_500_without_internals(caplog: pytest.LogCaptureFixture):
    client = Client(create_app(_ExplodingModel(), ENDPOINT))

    with caplog.at_level(logging.ERROR, logger="local_stack.model_server"):
        response = invoke(client, csv_record(POSITIVE))

    body = assert_error(response, 500, "InternalFailure")
    assert "secret" not in json.dumps(body)
    assert "secret internal detail" in caplog.text  # the details go to the log


def test_one_log_line_per_request_without_the_text(client: Client, caplog: pytest.LogCaptureFixture):
    secret_text = "My private diary entry about the phone"

    with caplog.at_level(logging.INFO, logger="local_stack.model_server"):
        invoke(client, csv_record(secret_text), **{CUSTOM_ATTRIBUTES: "correlation_id=abc-123"})
        client.post("/endpoints/nope/invocations", data=csv_record(secret_text), headers={"Content-Type": "text/csv"})

    records = [r for r in caplog.records if r.name == "local_stack.model_server"]
    assert len(records) == 2
    first, second = (r.getMessage() for r in records)
    assert f"POST {PATH} status=200 texts=1" in first and "correlation_id=abc-123" in first
    assert "status=400" in second
    assert "diary" not in caplog.text


def test_the_labels_and_version_come_from_the_model():
    class OtherLabels:
        labels = ("bad", "good")
        version = "other-7"

        def predict_proba(self, texts):
            return np.tile([0.25, 0.75], (len(texts), 1))

    response = invoke(Client(create_app(OtherLabels(), ENDPOINT)), csv_record("x"))

    assert response.get_json() == {
        "predicted_label": "good",
        "probability": 0.75,
        "probabilities": [0.25, 0.75],
        "labels": ["bad", "good"],
        "model_version": "other-7",
    }


def test_the_faults_hook_can_replace_or_fail_an_invocation(app, client: Client):
    class Unavailable(Faults):
        def before_invocation(self, request: Request, endpoint_name: str | None) -> Response | None:
            if endpoint_name is None:
                raise InvocationError(503, "ServiceUnavailable", "injected")
            return Response("injected", status=200, mimetype="text/plain")

    app.faults = Unavailable()

    assert invoke(client, csv_record(POSITIVE)).get_data() == b"injected"
    assert_error(
        client.post("/invocations", data=b"x", headers={"Content-Type": "text/csv"}), 503, "ServiceUnavailable"
    )
    assert client.get("/ping").status_code == 200  # ping is not an invocation


# ---- over real HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def http_server(app) -> Iterator[str]:
    server = serve(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_boto3_sagemaker_runtime_round_trip(http_server: str, tiny_model: SentimentModel, monkeypatch):
    """What the predict function does in the local stack: boto3 + AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", http_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = boto3.client("sagemaker-runtime", config=Config(retries={"total_max_attempts": 1}))

    response = client.invoke_endpoint(
        EndpointName=ENDPOINT,
        ContentType="text/csv",
        Accept="application/json",
        Body=csv_record('Quoted, "tricky" text: I love the phone, it is wonderful!'),
        CustomAttributes="correlation_id=boto3-test",
    )

    assert response["ContentType"] == "application/json"
    assert response["CustomAttributes"] == f"model_version={tiny_model.version}"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = json.loads(response["Body"].read())
    assert_prediction(body, tiny_model.version)
    assert body["predicted_label"] == "positive"

    with pytest.raises(ClientError) as unknown:
        client.invoke_endpoint(EndpointName="missing-endpoint", ContentType="text/csv", Body=b'"x"\n')
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert isinstance(unknown.value, client.exceptions.ValidationError)
    assert "missing-endpoint" in unknown.value.response["Error"]["Message"]

    with pytest.raises(client.exceptions.ModelError) as bad_body:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=b'"\xff"\n')
    assert bad_body.value.response["OriginalStatusCode"] == 400


def test_the_command_line_serves_the_artefact_and_stops_on_sigterm(tiny_model_dir: Path, tiny_model):
    command = [sys.executable, "-m", "local_stack.model_server", "--port", "0", "--model-dir", str(tiny_model_dir)]
    env = {"PYTHONPATH": f"{ROOT / 'local'}:{ROOT / 'model'}:{ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+) endpoint=sentiment-local model_version=(\S+)", banner)
        assert match, banner
        url = f"http://127.0.0.1:{match.group(1)}"
        assert match.group(2) == tiny_model.version
        response = requests.post(
            f"{url}{PATH}", data=csv_record(NEUTRAL), headers={"Content-Type": "text/csv"}, timeout=10
        )
        assert response.status_code == 200
        assert response.json()["predicted_label"] == "neutral"
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
    assert process.wait() == 0
    log = process.stdout.read()
    assert "status=200 texts=1" in log and "shipped" not in log


def test_the_command_line_refuses_a_missing_artefact(tmp_path: Path):
    command = [sys.executable, "-m", "local_stack.model_server", "--port", "0", "--model-dir", str(tmp_path)]
    env = {"PYTHONPATH": f"{ROOT / 'local'}:{ROOT / 'model'}:{ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"}

    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 2
    assert "manifest.json: not found" in proc.stderr
    assert "Traceback" not in proc.stderr
