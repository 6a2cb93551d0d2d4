"""Small helpers to query a CloudFormation template (dict) in the template tests."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def of_type(resources: Mapping[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return {lid: res for lid, res in resources.items() if res.get("Type") == rtype}


def only(resources: Mapping[str, Any], rtype: str) -> tuple[str, dict[str, Any]]:
    """The single resource of a type (fails the test if there are none or several)."""
    found = of_type(resources, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolve_sub(value: Any, variables: Mapping[str, Any]) -> str:
    """Evaluates an Fn::Sub (string or [string, map] form) or a plain string with the given variables.

    `variables` maps parameter and pseudo-parameter names to strings; a name without a value fails.
    """
    if isinstance(value, str):
        return value
    assert isinstance(value, dict) and list(value) == ["Fn::Sub"], f"not a string or Fn::Sub: {value!r}"
    body = value["Fn::Sub"]
    local: dict[str, Any] = {}
    if isinstance(body, list):
        body, local = body[0], body[1]
    scope = {**variables, **local}

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in scope, f"${{{name}}} has no value in the test scope"
        resolved = scope[name]
        assert isinstance(resolved, str), f"${{{name}}} resolves to a non-string {resolved!r}"
        return resolved

    return _SUB_VAR.sub(repl, body).replace("${!", "${")


def policy_statements(role: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a role's inline policies."""
    for policy in role["Properties"].get("Policies", []):
        yield from as_list(policy["PolicyDocument"]["Statement"])


def contains_wildcard(value: Any) -> bool:
    """True if a '*' appears anywhere inside (strings, intrinsic functions, lists)."""
    if isinstance(value, str):
        return "*" in value
    if isinstance(value, Mapping):
        return any(contains_wildcard(k) or contains_wildcard(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_wildcard(v) for v in value)
    return False
