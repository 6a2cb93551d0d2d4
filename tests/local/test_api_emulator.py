"""The HTTP API emulator with fake handlers: routing, authorizer answers, the 2.0 event it builds (against
the `sam local generate-event apigateway http-api-proxy` sample) and the 2.0 response rules."""

from __future__ import annotations

import base64
import itertools
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from local_stack import REPO_ROOT
from local_stack.api import (
    LOCAL_REFS,
    Route,
    api_functions,
    apply_environment,
    authorizer_config,
    create_app,
    function_name,
    lambda_environment,
)
from local_stack.authorizer import Authorized, authorize
from local_stack.cli import main
from local_stack.idp import PREDICT_SCOPE, DevIdentityProvider, load_or_create
from local_stack.runtime import load_handler
from werkzeug.test import Client, TestResponse

# Generated with the real SAM CLI (1.170.0): sam local generate-event apigateway http-api-proxy \
#   --path predict --body '{"text":"I love it"}'
SAMPLE = json.loads((Path(__file__).parent / "data" / "http-api-proxy.json").read_text("utf-8"))
# Keys of the sample API Gateway leaves out for this API: static routes (no path parameters), no stage
# variables, no mutual TLS.
NOT_SENT = {"pathParameters", "stageVariables"}
NOT_SENT_IN_CONTEXT = {"authentication"}
JSON = {"content-type": "application/json"}


class FakeHandler:
    """Records each (event, context) and answers with ``result`` (or raises it, if it is an exception)."""

    def __init__(self, result: Any = None) -> None:
        self.result = {"statusCode": 200, "headers": JSON, "body": "{}"} if result is None else result
        self.calls: list[tuple[dict[str, Any], Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.calls.append((event, context))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    @property
    def event(self) -> dict[str, Any]:
        (event, _), *_ = self.calls
        return event


def client_for(handler: FakeHandler, idp: DevIdentityProvider) -> Client:
    route = Route("POST", "/predict", "sentiment-api-PredictFunction", handler, scopes=(PREDICT_SCOPE,))
    return Client(create_app([route], idp), use_cookies=False)  # cookies are sent as raw headers


def post(client: Client, token: str | None, **kwargs: Any) -> TestResponse:
    headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    kwargs.setdefault("data", b'{"text": "I love it"}')
    headers.setdefault("content-type", "application/json")
    return client.post(kwargs.pop("path", "/predict"), headers=headers, **kwargs)


def shape(value: Any) -> Any:
    """Keys and value types, recursively: what two events must share."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


# ---- the event --------------------------------------------------------------------------------------
@pytest.fixture
def sample_like_event(idp: DevIdentityProvider, token) -> dict[str, Any]:
    """The event for a request carrying everything the sample has: query string, cookies, a JSON body."""
    handler = FakeHandler()
    post(
        client_for(handler, idp),
        token(sub="alice"),
        path="/predict?parameter1=value1&parameter1=value2&parameter2=value",
        headers={"Cookie": "cookie1=a; cookie2=b", "User-Agent": "agent", "X-Custom": "x"},
    )
    return handler.event


def test_the_event_has_the_keys_and_types_of_the_sam_sample(sample_like_event: dict[str, Any]):
    expected = shape({key: value for key, value in SAMPLE.items() if key not in NOT_SENT})
    expected["requestContext"] = {
        key: value for key, value in expected["requestContext"].items() if key not in NOT_SENT_IN_CONTEXT
    }
    # The sample's body is base64 (isBase64Encoded true); a JSON body is passed as text: both strings.
    actual = shape(sample_like_event)

    # Free-form maps: only their type is compared, not their (request-specific) keys.
    for free_form in ("headers", "queryStringParameters"):
        assert set(actual.pop(free_form).values()) == {"str"}
        expected.pop(free_form)
    claims = actual["requestContext"]["authorizer"]["jwt"].pop("claims")
    expected["requestContext"]["authorizer"]["jwt"].pop("claims")
    assert set(claims.values()) == {"str"}, "claims are passed as strings"
    assert actual == expected


def test_the_event_carries_the_request(sample_like_event: dict[str, Any]):
    event = sample_like_event
    context = event["requestContext"]

    assert (event["version"], event["routeKey"], context["routeKey"]) == ("2.0", "POST /predict", "POST /predict")
    assert event["rawPath"] == context["http"]["path"] == "/predict"
    assert event["rawQueryString"] == SAMPLE["rawQueryString"]
    assert event["queryStringParameters"] == SAMPLE["queryStringParameters"]
    assert event["cookies"] == ["cookie1=a", "cookie2=b"]
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-custom"] == "x"
    assert event["headers"]["authorization"].startswith("Bearer ")
    assert (event["body"], event["isBase64Encoded"]) == ('{"text": "I love it"}', False)
    assert context["http"]["method"] == "POST"
    assert context["http"]["userAgent"] == "agent"
    assert context["stage"] == "$default"
    assert context["authorizer"]["jwt"]["scopes"] == [PREDICT_SCOPE]
    claims = context["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "alice"
    assert claims["exp"].isdigit()


def test_keys_without_a_value_are_left_out(idp: DevIdentityProvider, token):
    handler = FakeHandler()
    post(client_for(handler, idp), token(), data=b"")

    assert not {"cookies", "queryStringParameters", "body"} & handler.event.keys()
    assert handler.event["isBase64Encoded"] is False


def test_repeated_query_parameters_are_joined_with_commas(idp: DevIdentityProvider, token):
    handler = FakeHandler()
    post(client_for(handler, idp), token(), path="/predict?a=1&a=2&b=&c=x%20y")

    assert handler.event["queryStringParameters"] == {"a": "1,2", "b": "", "c": "x y"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/octet-stream", b"\x00\xff\x10binary"),
        ("application/json", b'{"text": "\xff\xfe not utf-8"}'),
        ("image/png", b"\x89PNG\r\n"),
        ("application/x-www-form-urlencoded", b"text=hello"),
    ],
)
def test_binary_bodies_are_base64_encoded(content_type: str, body: bytes, idp: DevIdentityProvider, token):
    handler = FakeHandler()
    post(client_for(handler, idp), token(), data=body, headers={"content-type": content_type})

    assert handler.event["isBase64Encoded"] is True
    assert base64.b64decode(handler.event["body"]) == body


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "application/problem+json", "APPLICATION/JSON"])
def test_textual_bodies_are_passed_as_they_are(content_type: str, idp: DevIdentityProvider, token):
    handler = FakeHandler()
    post(client_for(handler, idp), token(), data="héllo".encode(), headers={"content-type": content_type})

    assert (handler.event["body"], handler.event["isBase64Encoded"]) == ("héllo", False)


def test_the_handler_gets_a_lambda_context(idp: DevIdentityProvider, token):
    handler = FakeHandler()
    post(client_for(handler, idp), token())
    (_, context), *_ = handler.calls

    assert context.function_name == "sentiment-api-PredictFunction"
    assert context.invoked_function_arn.endswith(":function:sentiment-api-PredictFunction:live")
    assert context.memory_limit_in_mb == 512
    assert 2500 < context.get_remaining_time_in_millis() <= 3000
    assert context.aws_request_id
    assert context.log_group_name == "/aws/lambda/sentiment-api-PredictFunction"


# ---- what API Gateway answers itself ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/predict"), ("PUT", "/predict"), ("POST", "/nope"), ("POST", "/predict/"), ("GET", "/")],
)
def test_unmatched_path_or_method_is_404_even_without_a_token(method: str, path: str, idp: DevIdentityProvider):
    handler = FakeHandler()
    response = client_for(handler, idp).open(path, method=method)

    assert response.status_code == 404
    assert response.get_json() == {"message": "Not Found"}
    assert handler.calls == []


def test_no_token_is_401_and_the_handler_is_not_called(idp: DevIdentityProvider):
    handler = FakeHandler()
    response = post(client_for(handler, idp), None)

    assert response.status_code == 401
    assert response.get_data() == b'{"message":"Unauthorized"}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == (
        'Bearer scope="" error="invalid_token" error_description="the token is missing"'
    )
    assert handler.calls == []


def test_a_forged_token_is_401(idp: DevIdentityProvider, other_idp: DevIdentityProvider):
    handler = FakeHandler()
    forged = other_idp.sign(idp.claims(), header={"kid": idp.kid})
    response = post(client_for(handler, idp), forged)

    assert response.status_code == 401
    assert 'error_description="the token signature is invalid"' in response.headers["www-authenticate"]
    assert handler.calls == []


def test_a_token_without_the_scope_is_403(idp: DevIdentityProvider, token):
    handler = FakeHandler()
    response = post(client_for(handler, idp), token(scope="openid"))

    assert response.status_code == 403
    assert response.get_json() == {"message": "Forbidden"}
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert handler.calls == []


def test_a_handler_that_raises_gives_500(idp: DevIdentityProvider, token):
    response = post(client_for(FakeHandler(RuntimeError("boom")), idp), token())

    assert response.status_code == 500
    assert response.get_json() == {"message": "Internal Server Error"}
    assert b"boom" not in response.get_data()


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "200", "body": "{}"},
        {"statusCode": 99, "body": "{}"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "cookies": "a=1"},
        {1, 2},
    ],
    ids=[
        "status-as-string",
        "status-out-of-range",
        "body-not-a-string",
        "bad-base64",
        "nested-header",
        "cookies-not-a-list",
        "not-json",
    ],
)
def test_a_malformed_handler_response_gives_500(result: Any, idp: DevIdentityProvider, token):
    response = post(client_for(FakeHandler(result), idp), token())

    assert response.status_code == 500
    assert response.get_json() == {"message": "Internal Server Error"}


def test_the_jwks_is_served_without_auth(idp: DevIdentityProvider):
    response = client_for(FakeHandler(), idp).get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.get_json() == idp.jwks()


# ---- the 2.0 response rules -------------------------------------------------------------------------
def test_a_structured_response_is_passed_through(idp: DevIdentityProvider, token):
    result = {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-correlation-id": "abc", "x-count": 3},
        "cookies": ["a=1; Secure", "b=2"],
        "body": '{"ok": true}',
        "isBase64Encoded": False,
    }
    response = post(client_for(FakeHandler(result), idp), token())

    assert response.status_code == 201
    assert response.get_data() == b'{"ok": true}'
    assert response.headers["x-correlation-id"] == "abc"
    assert response.headers["x-count"] == "3"
    assert response.headers.getlist("set-cookie") == ["a=1; Secure", "b=2"]
    assert response.headers["apigw-requestid"]


def test_a_base64_response_body_is_decoded(idp: DevIdentityProvider, token):
    result = {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    response = post(client_for(FakeHandler(result), idp), token())

    assert response.get_data() == b"\x00\x01"
    assert "content-type" not in response.headers  # none set by the function, none added


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ({"sentiment": "positive"}, b'{"sentiment": "positive"}'),
        ("plain text", b"plain text"),
        ([1, 2], b"[1, 2]"),
        (None, b"null"),
    ],
)
def test_a_response_without_status_code_is_a_200_json_body(result: Any, body: bytes, idp: DevIdentityProvider, token):
    handler = FakeHandler()
    handler.result = result
    response = post(client_for(handler, idp), token())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.get_data() == body


# ---- the function runtime ---------------------------------------------------------------------------
def test_the_route_table_maps_predict_to_its_handler_and_scope():
    predict, explain, jobs = api_functions()  # read from template.yaml
    assert [(r.method, r.path) for r in jobs.routes] == [
        ("POST", "/jobs"),
        ("GET", "/jobs/{job_id}"),
        ("POST", "/jobs/{job_id}/start"),
    ]
    assert [(r.method, r.path) for r in explain.routes] == [("GET", "/explain")]
    assert explain.code_dir == REPO_ROOT / "functions" / "explain" and explain.handler == "app.lambda_handler"
    assert explain.routes[0].scopes == (PREDICT_SCOPE,)

    assert [(r.method, r.path) for r in predict.routes] == [("POST", "/predict"), ("POST", "/predict/batch")]
    assert predict.code_dir == REPO_ROOT / "functions" / "predict" and predict.handler == "app.lambda_handler"
    assert {r.scopes for r in predict.routes} == {(PREDICT_SCOPE,)}
    assert function_name(predict) == "sentiment-api-PredictFunction"
    assert predict.layer_dirs == (REPO_ROOT / "layers" / "core", REPO_ROOT / "layers" / "api")


def test_handlers_are_loaded_by_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "path", [*sys.path])  # undone after the test, like sys.modules below
    monkeypatch.setitem(sys.modules, "emulator_test_app", None)
    code = tmp_path / "app.py"
    code.write_text("def lambda_handler(event, context):\n    return {'statusCode': 204}\n")
    predict = api_functions()[0]
    function = replace(predict, code_dir=tmp_path)

    handler = load_handler(function, "emulator_test_app")

    assert handler({}, None) == {"statusCode": 204}
    assert all(str(layer) in sys.path for layer in predict.layer_dirs)


def test_the_function_environment_points_boto3_at_the_local_model(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_PROFILE", "real-account")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-session")
    env = lambda_environment("http://127.0.0.1:8123", "http://127.0.0.1:8124")
    for name in env:
        monkeypatch.setenv(name, "before")  # so that monkeypatch restores (or removes) each one afterwards

    apply_environment(env)

    assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://127.0.0.1:8123"
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:8124"
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:"), "any other service: not AWS"
    assert os.environ["SAGEMAKER_ENDPOINT_NAME"] == "sentiment-local"
    assert os.environ["RATE_LIMIT_TABLE_NAME"]
    assert os.environ["STAGE"] == "local"
    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]) == ("local", "local")
    assert "AWS_PROFILE" not in os.environ
    assert "AWS_SESSION_TOKEN" not in os.environ


# ---- the CLI ------------------------------------------------------------------------------------------
def test_token_prints_only_a_token_that_the_authorizer_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["token", "--sub", "bob", "--ttl", "60", "--keys-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert out.count("\n") == 1
    result = authorize(out.strip(), (PREDICT_SCOPE,), authorizer_config(load_or_create(tmp_path)), time.time())
    assert isinstance(result, Authorized)
    assert result.claims["sub"] == "bob"
    assert result.claims["exp"] - result.claims["iat"] == 60


def test_serve_without_a_model_artefact_exits_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["serve", "--model-dir", str(tmp_path / "missing"), "--keys-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no model artefact" in err and "minilm-sentiment" in err and "make model" in err


def test_no_two_functions_set_one_variable_to_different_values() -> None:
    """lambda_environment gives every function instance the union of the API functions' environments."""
    environments = [function.resolved_environment(LOCAL_REFS) for function in api_functions()]
    for first, other in itertools.combinations(environments, 2):
        assert {k: v for k, v in first.items() if k in other and other[k] != v} == {}


# ---- path parameters (GET /jobs/{job_id}) -----------------------------------------------------------
def test_a_path_variable_matches_one_segment_and_reaches_the_event():
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": "{}"}

    route = Route("GET", "/jobs/{job_id}", "sentiment-api-JobsFunction", handler)
    assert route.match("GET", "/jobs/abc") == {"job_id": "abc"}
    for method, path in (("POST", "/jobs/abc"), ("GET", "/jobs"), ("GET", "/jobs/"), ("GET", "/jobs/a/b")):
        assert route.match(method, path) is None, (method, path)
    start = Route("POST", "/jobs/{job_id}/start", "sentiment-api-JobsFunction", handler)
    assert start.match("POST", "/jobs/abc/start") == {"job_id": "abc"}
    assert start.match("POST", "/jobs/abc/stop") is None
