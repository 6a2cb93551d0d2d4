"""JSON Schemas compiled once at import by fastjsonschema, and the functions that apply them."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastjsonschema

from .errors import InvalidResponse, ValidationFailed


def _compile(name: str) -> Callable[[Any], Any]:
    document = json.loads(resources.files(__package__).joinpath("schemas", name).read_text("utf-8"))
    return fastjsonschema.compile(document)


_PREDICT_REQUEST = _compile("predict_request.json")
_PREDICT_RESPONSE = _compile("predict_response.json")
_ERROR = _compile("error.json")


def _explain(exc: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema names the root "data"; "data.text" reads better as "text", the root as "body".
    message = str(exc.message)
    if message.startswith("data."):
        return message[len("data.") :]
    if message.startswith("data "):
        return "body " + message[len("data ") :]
    return message


def validate_predict_request(document: Any) -> dict[str, Any]:
    """Validates a parsed /predict body; raises ValidationFailed with the validator's explanation."""
    try:
        return _PREDICT_REQUEST(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValidationFailed(_explain(exc)) from None


def validate_predict_response(document: dict[str, Any]) -> dict[str, Any]:
    """Validates what we are about to return; a failure is our bug, never the client's."""
    try:
        return _PREDICT_RESPONSE(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidResponse(f"response failed its schema: {exc.message}") from None


def validate_error_body(document: dict[str, Any]) -> dict[str, Any]:
    return _ERROR(document)
