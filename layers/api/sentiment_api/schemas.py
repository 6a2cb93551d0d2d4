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


def compile_schema(path: Path, definition: str | None = None) -> Validator:
    """Compiles the JSON Schema document at ``path``, or its ``definitions`` entry ``definition`` (call it at
    import time: once per cold start)."""
    schema = json.loads(path.read_text("utf-8"))
    return fastjsonschema.compile(schema if definition is None else schema["definitions"][definition])


_TYPE_NAMES = {
    "string": "a string",
    "object": "a JSON object",
    "array": "an array",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _where(path: list[Any], root: str = "") -> str:
    """``text``, ``texts[3]``, or ``body`` for the root. Only names the schema defines reach a path: unknown
    properties fail at their parent (additionalProperties: false). ``root`` names what the validated
    document is, when it is a part of the body (``texts[3]``)."""
    where = root
    for part in path[1:]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "body"


def explain(exc: fastjsonschema.JsonSchemaValueException, root: str = "") -> str:
    """The client's message for a schema violation, written here from the rule that failed and the schema's
    own values: never the validator's text, which quotes the client's data (an unknown property's name)."""
    where, rule, value = _where(list(exc.path), root), exc.rule, exc.rule_definition
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    if rule == "type":
        names = value if isinstance(value, list) else [value]
        return f"{where} must be {' or '.join(_TYPE_NAMES.get(str(n), str(n)) for n in names)}."
    if rule == "required":
        return f"{where} must have the properties {', '.join(map(str, value))}."
    if rule == "additionalProperties":
        allowed = ", ".join(sorted(definition.get("properties", {})))
        return f"{where} has a property that is not allowed (allowed: {allowed})."
    if rule in ("maxLength", "minLength"):
        return f"{where} must be at {'most' if rule == 'maxLength' else 'least'} {value} characters long."
    if rule == "enum":
        return f"{where} must be one of {', '.join(json.dumps(v) for v in value)}."
    if rule in ("maximum", "minimum"):
        return f"{where} must be at {'most' if rule == 'maximum' else 'least'} {value}."
    if rule in ("maxItems", "minItems"):
        return f"{where} must have at {'most' if rule == 'maxItems' else 'least'} {value} items."
    return f"{where} is not valid ({rule})."


def validate_input(validator: Validator, document: Any, root: str = "") -> Any:
    """A parsed request body (or the part of it named ``root``); raises ValidationFailed (400) with our
    explanation (``explain``)."""
    try:
        return validator(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ValidationFailed(explain(exc, root)) from None


def validate_output(validator: Validator, document: dict[str, Any], what: str) -> dict[str, Any]:
    """What we are about to return; a failure is our bug (InvalidResponse, a 500), never the client's."""
    try:
        valid: dict[str, Any] = validator(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise InvalidResponse(f"{what} failed its schema: {exc.message}") from None
    return valid
