"""template.yaml as the local stack and the tests read it: the functions (code folder, handler, layers,
environment, HTTP routes) and the rate-limit table's keys, so that a change to the template that the code does
not follow breaks the local stack and the tests, not a deployment.

Only what is needed is resolved: ``Ref`` / ``Fn::Sub`` / ``Fn::GetAtt`` in environment values, against the
parameters' defaults and the values the caller gives for resources (``refs``), and ``Fn::If`` on the template's
conditions (``Fn::Equals`` / ``Fn::Not`` / ``Fn::And`` / ``Fn::Or`` / ``Condition`` over the same values)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from . import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsics (``!Ref x`` -> ``{"Ref": "x"}``)."""


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Condition" if suffix == "Condition" else f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


@cache
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(path.read_text("utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return document


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    path: str
    scopes: tuple[str, ...]  # AuthorizationScopes, resolved


@dataclass(frozen=True, slots=True)
class Function:
    logical_id: str
    code_dir: Path  # CodeUri
    handler: str  # "<module>.<attribute>"
    layer_dirs: tuple[Path, ...]  # the ContentUri of each layer, in order
    environment: Mapping[str, Any]  # Globals + the function's own, unresolved
    timeout_s: float
    memory_mb: int
    routes: tuple[RouteSpec, ...]
    parameter_defaults: Mapping[str, str]
    conditions: Mapping[str, Any] = field(default_factory=dict)  # the template's Conditions, unevaluated

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    def resolved_environment(self, refs: Mapping[str, str]) -> dict[str, str]:
        """The environment with references resolved: ``refs``, then the parameters' defaults."""
        values = {**self.parameter_defaults, **refs}
        return {name: resolve(value, values, self.conditions) for name, value in self.environment.items()}


def parameter_defaults(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    template = load() if template is None else template
    return {name: str(decl["Default"]) for name, decl in template["Parameters"].items() if "Default" in decl}


def resolve(value: Any, refs: Mapping[str, str], conditions: Mapping[str, Any] | None = None) -> str:
    """An environment value: a literal, a Ref, a Sub, a GetAtt, or an If on one of ``conditions``; anything
    unknown raises KeyError."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind == "Ref":
            return refs[argument]
        if kind == "Fn::GetAtt":
            return refs[".".join(argument)]
        if kind == "Fn::Sub" and isinstance(argument, str):
            return _SUB.sub(lambda m: refs[m.group(1)], argument)
        if kind == "Fn::If" and conditions is not None:
            name, when_true, when_false = argument
            chosen = when_true if _condition(name, refs, conditions) else when_false
            return resolve(chosen, refs, conditions)
    raise KeyError(f"cannot resolve {value!r} locally")


def _condition(name: str, refs: Mapping[str, str], conditions: Mapping[str, Any]) -> bool:
    return _truth(conditions[name], refs, conditions)


def _truth(node: Any, refs: Mapping[str, str], conditions: Mapping[str, Any]) -> bool:
    if isinstance(node, dict) and len(node) == 1:
        ((kind, argument),) = node.items()
        if kind == "Condition":
            return _condition(argument, refs, conditions)
        if kind == "Fn::Equals":
            left, right = (resolve(item, refs, conditions) for item in argument)
            return left == right
        if kind == "Fn::Not":
            return not _truth(argument[0], refs, conditions)
        if kind == "Fn::And":
            return all(_truth(item, refs, conditions) for item in argument)
        if kind == "Fn::Or":
            return any(_truth(item, refs, conditions) for item in argument)
    raise KeyError(f"cannot evaluate condition {node!r} locally")


def _routes(properties: Mapping[str, Any], refs: Mapping[str, str]) -> tuple[RouteSpec, ...]:
    routes = []
    for event in (properties.get("Events") or {}).values():
        if event.get("Type") != "HttpApi":
            continue
        spec = event["Properties"]
        scopes = tuple(resolve(s, refs) for s in (spec.get("Auth") or {}).get("AuthorizationScopes", []))
        routes.append(RouteSpec(spec["Method"].upper(), spec["Path"], scopes))
    return tuple(routes)


def functions(refs: Mapping[str, str] | None = None, template: Mapping[str, Any] | None = None) -> dict[str, Function]:
    """Every AWS::Serverless::Function, by logical id. ``refs`` resolves route scopes (parameters' defaults
    when not given)."""
    template = load() if template is None else template
    defaults = parameter_defaults(template)
    refs = defaults | dict(refs or {})
    resources = template["Resources"]
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    found = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**globals_, **resource["Properties"]}
        environment = {
            **(globals_.get("Environment") or {}).get("Variables", {}),
            **(resource["Properties"].get("Environment") or {}).get("Variables", {}),
        }
        layers = tuple(
            REPO_ROOT / resources[layer["Ref"]]["Properties"]["ContentUri"] for layer in props.get("Layers", [])
        )
        found[logical_id] = Function(
            logical_id=logical_id,
            code_dir=REPO_ROOT / props["CodeUri"],
            handler=props["Handler"],
            layer_dirs=layers,
            environment=environment,
            timeout_s=float(props["Timeout"]),
            memory_mb=int(props["MemorySize"]),
            routes=_routes(props, refs),
            parameter_defaults=defaults,
            conditions=template.get("Conditions") or {},
        )
    return found


@dataclass(frozen=True, slots=True)
class Table:
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    ttl_attribute: str | None

    def create(self, client: Any, name: str) -> None:
        """Creates the table as the template defines it (on-demand), TTL included."""
        client.create_table(
            TableName=name,
            KeySchema=self.key_schema,
            AttributeDefinitions=self.attribute_definitions,
            BillingMode="PAY_PER_REQUEST",
        )
        if self.ttl_attribute:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": self.ttl_attribute}
            )


def table(logical_id: str, template: Mapping[str, Any] | None = None) -> Table:
    props = (load() if template is None else template)["Resources"][logical_id]["Properties"]
    ttl = props.get("TimeToLiveSpecification") or {}
    return Table(
        key_schema=props["KeySchema"],
        attribute_definitions=props["AttributeDefinitions"],
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled") else None,
    )
