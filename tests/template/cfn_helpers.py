"""Small helpers to query a CloudFormation template (dict) in the template tests."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
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


def evaluate_conditions(conditions: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, bool]:
    """Every condition of a template with parameters resolved from ``values`` (name -> string or list):
    Fn::Equals of Ref/literal, Fn::Not, Fn::And, Fn::Or and Condition, as CloudFormation evaluates them."""
    truth: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, Mapping) and set(node) == {"Ref"}:
            return values[node["Ref"]]
        assert isinstance(node, str), f"cannot evaluate {node!r} in a condition"
        return node

    def holds(node: Any) -> bool:
        ((fn, arg),) = node.items()
        if fn == "Condition":
            return named(arg)
        if fn == "Fn::Equals":
            return bool(value(arg[0]) == value(arg[1]))
        if fn == "Fn::Not":
            return not holds(arg[0])
        if fn == "Fn::And":
            return all(holds(a) for a in arg)
        if fn == "Fn::Or":
            return any(holds(a) for a in arg)
        raise AssertionError(f"unknown condition function {fn}")

    def named(name: str) -> bool:
        if name not in truth:
            truth[name] = holds(conditions[name])
        return truth[name]

    for name in conditions:
        named(name)
    return truth


_NO_VALUE = object()


def _choose(node: Any, truth: Mapping[str, bool]) -> Any:
    if isinstance(node, Mapping):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return _choose(when_true if truth[name] else when_false, truth)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        chosen = {k: _choose(v, truth) for k, v in node.items()}
        return {k: v for k, v in chosen.items() if v is not _NO_VALUE}
    if isinstance(node, list):
        return [c for c in (_choose(v, truth) for v in node) if c is not _NO_VALUE]
    return node


def deployed(template: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """What CloudFormation would deploy from a (transformed) template with these parameter values: resources
    and outputs whose Condition is false dropped, every Fn::If replaced by its chosen branch
    (AWS::NoValue removed). References are left as they are."""
    truth = evaluate_conditions(template.get("Conditions", {}), values)
    kept: dict[str, Any] = {}
    for section in ("Resources", "Outputs"):
        kept[section] = {
            lid: _choose({k: v for k, v in body.items() if k != "Condition"}, truth)
            for lid, body in (template.get(section) or {}).items()
            if "Condition" not in body or truth[body["Condition"]]
        }
    kept["Conditions"] = truth
    return kept


def referenced_ids(node: Any) -> set[str]:
    """Logical ids a node refers to (Ref, Fn::GetAtt, ${Name} and ${Name.Attr} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        if set(node) == {"Ref"} and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        elif set(node) == {"Fn::GetAtt"}:
            target = node["Fn::GetAtt"]
            found.add(target.split(".", 1)[0] if isinstance(target, str) else target[0])
        elif set(node) == {"Fn::Sub"}:
            body = node["Fn::Sub"]
            text, local = (body[0], body[1]) if isinstance(body, list) else (body, {})
            found |= {m.split(".", 1)[0] for m in _SUB_VAR.findall(text) if m.split(".", 1)[0] not in local}
            found |= referenced_ids(local)
        else:
            for item in node.values():
                found |= referenced_ids(item)
    elif isinstance(node, list):
        for item in node:
            found |= referenced_ids(item)
    return found


def samconfig_overrides() -> dict[str, dict[str, str]]:
    """Each samconfig.toml environment's deploy parameter overrides, as name -> value, read by the function
    deploy/deploy.sh uses (deploy/parameters.py, loaded from its file: deploy/ is not a package)."""
    import importlib.util
    import tomllib

    path = Path(__file__).resolve().parents[2] / "deploy" / "parameters.py"
    spec = importlib.util.spec_from_file_location("deploy_parameters", path)
    assert spec is not None and spec.loader is not None
    parameters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parameters)
    environments = tomllib.loads(parameters.SAMCONFIG.read_text("utf-8"))
    return {
        env: dict(pair.split("=", 1) for pair in parameters.samconfig_overrides(env))
        for env, section in environments.items()
        if isinstance(section, dict)
    }


def stage_throttles(parameters: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The stage throttle (rate, burst) of the template's defaults (``parameters``: its Parameters) and of every
    samconfig environment that sets its own; there are at least three (the default, staging, prod)."""
    throttles = [
        (
            float(parameters["ApiThrottlingRateLimit"]["Default"]),
            float(parameters["ApiThrottlingBurstLimit"]["Default"]),
        )
    ]
    for overrides in samconfig_overrides().values():
        if "ApiThrottlingRateLimit" in overrides:
            throttles.append((float(overrides["ApiThrottlingRateLimit"]), float(overrides["ApiThrottlingBurstLimit"])))
    assert len(throttles) >= 3, "samconfig.toml's environments set their own stage throttle"
    return throttles
