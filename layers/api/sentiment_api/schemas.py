"""JSON Schemas as data files, compiled once at import by fastjsonschema, and the two ways of applying one:
to what comes in (a client error) and to what goes out (our bug)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema

from .errors import InvalidResponse, ValidationFailed

Validator = Callable[[Any], Any]

#: The one error body shape (docs/openapi.yaml); the tests check every error answer against it.
ERROR_SCHEMA = Path(__file__).with_name("schemas") / "error.json"


def compile_schema(path: Path) -> Validator:
    """Compiles the JSON Schema document at ``path`` (call it at import time: once per cold start)."""
    return fastjsonschema.compile(json.loads(path.read_text("utf-8")))


def _explain(exc: fastjsonschema.JsonSchemaValueException) -> str:
    # fastjsonschema names the root "data"; "data.text" reads better as "text", the root as "body".
    message = str(exc.message)
    if message.startswith("data."):
        return message[len("data.") :]
    if message.startswith("data "):
        return "body " + message[len("data ") :]
    return message


def validate_input(validator: Validator, document: Any) -> dict[str, Any]:
    """A parsed request body; raises ValidationFailed (400) with the validator's explanation."""
    try:
        valid: dict[str, Any] = validator(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValidationFailed(_explain(exc)) from None
    return valid


def validate_output(validator: Validator, document: dict[str, Any], what: str) -> dict[str, Any]:
    """What we are about to return; a failure is our bug (InvalidResponse, a 500), never the client's."""
    try:
        valid: dict[str, Any] = validator(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidResponse(f"{what} failed its schema: {exc.message}") from None
    return valid
