"""docs/openapi.yaml: a valid OpenAPI 3.1 document whose schemas are the layer's JSON Schemas, whose routes
are the template's and the local stack's, and whose error codes are the ones the code can answer.

``response_validator`` is also what tests/local/test_fuzz.py checks live answers with.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.template.cfn_helpers import of_type
from tests.template.conftest import EDGE_TEMPLATE_PATH, REPO_ROOT

OPENAPI_PATH = REPO_ROOT / "docs" / "openapi.yaml"
#: Every JSON Schema the functions compile: the API layer's and each function's own.
SCHEMA_FILES = {
    p.name: p for p in [*REPO_ROOT.glob("layers/*/*/schemas/*.json"), *REPO_ROOT.glob("functions/*/*/schemas/*.json")]
}
EXPLAIN_SCHEMA = REPO_ROOT / "functions" / "explain" / "explanation" / "schemas" / "explain_response.json"


@functools.cache
def load_openapi() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI_PATH.read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def resolve(document: Mapping[str, Any], node: Any) -> Any:
    """Follows a local ``$ref`` (``#/a/b``) until a non-reference node."""
    while isinstance(node, Mapping) and set(node) == {"$ref"}:
        pointer = str(node["$ref"])
        assert pointer.startswith("#/"), f"only local references: {pointer}"
        node = document
        for part in pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def documented_response(path: str, method: str, status: int) -> dict[str, Any] | None:
    document = load_openapi()
    responses = document["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status))
    return None if response is None else resolve(document, response)


@functools.cache
def response_validator(path: str, method: str, status: int) -> Draft202012Validator | None:
    """A validator of the JSON body documented for that answer (None: the status is not documented)."""
    response = documented_response(path, method, status)
    if response is None:
        return None
    schema = response["content"]["application/json"]["schema"]
    # The components ride along in the root so that "#/components/..." references resolve.
    root = {"components": load_openapi()["components"], **copy.deepcopy(schema)}
    return Draft202012Validator(root)


def local_routes() -> list[Any]:
    """The routes the local stack serves (read from template.yaml, resolved with the local values)."""
    from local_stack.api import api_functions

    return [route for function in api_functions() for route in function.routes]


def without_dialect(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in {"$schema", "$id"}}


# ---- the document ---------------------------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1() -> None:
    document = load_openapi()
    assert document["openapi"].startswith("3.1.")
    try:
        validate_spec(document)
    except OpenAPIValidationError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"docs/openapi.yaml is not valid OpenAPI: {exc}")


def test_a_broken_document_is_caught() -> None:
    broken = copy.deepcopy(load_openapi())
    broken["paths"]["/predict"]["post"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(OpenAPIValidationError):
        validate_spec(broken)


@pytest.mark.parametrize("schema_file", sorted(SCHEMA_FILES))
def test_component_schemas_are_the_layer_schemas(schema_file: str) -> None:
    """Every layer schema is in the document under its title, unchanged (the dialect keywords aside: the
    document's dialect is 2020-12, and these schemas mean the same in draft-07 and 2020-12)."""
    layer = json.loads(SCHEMA_FILES[schema_file].read_text("utf-8"))
    components = load_openapi()["components"]["schemas"]
    assert layer["title"] in components, f"{schema_file} ({layer['title']}) is missing from docs/openapi.yaml"
    assert components[layer["title"]] == without_dialect(layer)


def test_the_explain_schema_is_the_layers() -> None:
    layer = json.loads(EXPLAIN_SCHEMA.read_text("utf-8"))
    assert load_openapi()["components"]["schemas"][layer["title"]] == without_dialect(layer)


def test_bodies_use_the_component_schemas() -> None:
    post = load_openapi()["paths"]["/predict"]["post"]
    assert post["requestBody"]["required"] is True
    request_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/PredictRequest"}
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictResponse"
    }


# ---- routes and security --------------------------------------------------------------------------
def template_routes(resources: Mapping[str, Any]) -> set[tuple[str, str]]:
    routes = set()
    for route in of_type(resources, "AWS::ApiGatewayV2::Route").values():
        method, _, path = route["Properties"]["RouteKey"].partition(" ")
        routes.add((method, path))
    for api in of_type(resources, "AWS::ApiGatewayV2::Api").values():
        for path, operations in (api["Properties"].get("Body", {}).get("paths") or {}).items():
            for method in operations:
                routes.add(("ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path))
    assert routes, "the template defines no HTTP API route"
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in load_openapi()["paths"].items() for method in ops}


def test_every_route_of_the_template_is_documented(resources: dict[str, Any]) -> None:
    assert template_routes(resources) <= documented_routes()


def test_every_route_of_the_local_stack_is_documented() -> None:
    assert {(route.method, route.path) for route in local_routes()} <= documented_routes()


def test_every_operation_needs_the_jwt_with_its_scope() -> None:
    document = load_openapi()
    scheme = document["components"]["securitySchemes"]["jwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    scopes = {(route.method, route.path): list(route.scopes) for route in local_routes()}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            security = operation.get("security", document["security"])
            assert security and all(set(req) == {"jwt"} for req in security), (method, path)
            if (method.upper(), path) in scopes:
                assert security == [{"jwt": scopes[(method.upper(), path)]}]


# ---- error codes ----------------------------------------------------------------------------------
def code_enums(node: Any) -> set[str]:
    """Every error code that the document's error schemas enumerate."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        code = node.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
        if isinstance(code, Mapping) and "enum" in code:
            found.update(code["enum"])
        for value in node.values():
            found |= code_enums(value)
    elif isinstance(node, list):
        for value in node:
            found |= code_enums(value)
    return found


def api_error_codes() -> dict[str, int]:
    errors = importlib.import_module("sentiment_api.errors")
    codes: dict[str, int] = {}
    stack = [errors.ApiError]
    while stack:
        cls = stack.pop()
        codes[cls.code] = int(cls.status)
        stack.extend(cls.__subclasses__())
    return codes


def edge_error_codes() -> set[str]:
    """The codes of the edge web ACL's refusals (deploy/edge-waf.yaml's custom response bodies)."""
    from tools.transform_template import load_template

    bodies = load_template(EDGE_TEMPLATE_PATH)["Resources"]["EdgeWebAcl"]["Properties"]
    return {json.loads(body["Content"])["error"]["code"] for body in bodies["CustomResponseBodies"].values()}


def test_the_documented_codes_are_exactly_the_codes_of_the_code() -> None:
    assert code_enums(load_openapi()) == set(api_error_codes()) | edge_error_codes()


def test_each_code_is_documented_under_its_status() -> None:
    document = load_openapi()
    for code, status in api_error_codes().items():
        statuses = [
            int(s)
            for ops in document["paths"].values()
            for op in ops.values()
            for s, response in op["responses"].items()
            if code in code_enums(resolve(document, response))
        ]
        assert statuses and set(statuses) == {status}, (code, status, statuses)


def test_every_error_answer_has_the_error_or_the_gateway_shape() -> None:
    document = load_openapi()
    for ops in document["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                if int(status) < 400:
                    continue
                text = json.dumps(resolve(document, response))
                assert "#/components/schemas/ErrorResponse" in text or "#/components/schemas/GatewayMessage" in text
                assert HTTPStatus(int(status))


def test_the_validator_accepts_documented_answers_and_refuses_others() -> None:
    error = {"error": {"code": "RATE_LIMITED", "message": "slow down", "correlation_id": "abc"}}
    v429 = response_validator("/predict", "post", 429)
    assert v429 is not None
    assert v429.is_valid(error) and v429.is_valid({"message": "Too Many Requests"})
    assert not v429.is_valid({"error": {**error["error"], "code": "MODEL_ERROR"}})
    assert not v429.is_valid({"message": "Too Many Requests", "extra": 1})
    v400 = response_validator("/predict", "post", 400)
    assert v400 is not None and not v400.is_valid({"error": {"code": "INVALID_JSON", "message": "x"}})
    assert response_validator("/predict", "post", 418) is None


def test_the_readme_links_the_document() -> None:
    readme = Path(REPO_ROOT / "README.md")
    if not readme.exists():
        pytest.skip("no README yet")
    assert "docs/openapi.yaml" in readme.read_text("utf-8")
