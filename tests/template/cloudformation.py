"""The template as CloudFormation would see it for one environment: SAM-transformed, conditions evaluated.

moto's CloudFormation has no AWS::SES::* resources, so the tests read the transformed template instead of
deploying it: `transform` runs samtranslator (what `sam deploy` and CloudFormation's transform do), and
`Stack` evaluates conditions, `Ref`, `Fn::Sub`, `Fn::If`, `Fn::Join` with the environment's parameters.
A reference to a resource resolves to a readable token: `<Ref:MailBucket>`, `<MailBucket.Arn>`.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
ENVIRONMENTS = ("prod", "preview", "dev", "local-dev")
ACCOUNT = "123456789012"
# samconfig.toml leaves the zone ids unset: `forwarder adopt` / `forwarder init` look the zones up by name and write
# them. The tests deploy each environment as it is after that: prod in the existing apex zone, the others in a zone
# of their own delegated from it. The id has the shape of a real one and is no documented example.
APEX_ZONE = "Z04317142LA2XBR9RUU3Z"
LOOKED_UP_ZONES = {
    "prod": {"HostedZoneId": APEX_ZONE},
    "preview": {"ParentHostedZoneId": APEX_ZONE},
    "dev": {"ParentHostedZoneId": APEX_ZONE},
    "local-dev": {"ParentHostedZoneId": APEX_ZONE},
}


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def load_template() -> dict[str, Any]:
    """template.yaml as SAM reads it (short-form intrinsics expanded)."""
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


@dataclass(frozen=True)
class Environment:
    """One `[<name>.*.parameters]` family of samconfig.toml."""

    name: str
    stack_name: str
    region: str
    deploy: dict[str, Any]
    parameters: dict[str, str]
    validate: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)


def parse_overrides(value: str | list[str]) -> dict[str, str]:
    """`parameter_overrides` as a list (or space-separated string) of Key=Value items."""
    items = value.split() if isinstance(value, str) else value
    pairs = (item.split("=", 1) for item in items)
    return dict(pairs)


def load_environments() -> dict[str, Environment]:
    config = tomllib.loads(SAMCONFIG.read_text())
    environments = {}
    for name, sections in config.items():
        if not isinstance(sections, dict) or "deploy" not in sections:
            continue
        merged = {**sections.get("global", {}).get("parameters", {}), **sections["deploy"]["parameters"]}
        environments[name] = Environment(
            name=name,
            stack_name=merged["stack_name"],
            region=merged["region"],
            deploy=merged,
            parameters=parse_overrides(merged.get("parameter_overrides", [])),
            validate=sections.get("validate", {}).get("parameters", {}),
            build=sections.get("build", {}).get("parameters", {}),
        )
    return environments


def transform(template: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of `template` in `region`."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(template)
    # `sam deploy` uploads the built code and puts S3 URIs here; the transform accepts nothing else.
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://artifacts/{properties[key].strip('/')}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(template, parameter_values=dict(parameters), get_managed_policy_map=dict)


class Stack:
    """A transformed template with one environment's parameter values."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str], region: str, stack_name: str) -> None:
        self.template = template
        defaults = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        self.parameters = {name: str(value) for name, value in {**defaults, **parameters}.items() if value is not None}
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }

    # conditions --------------------------------------------------------------------------------------

    @cached_property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.template.get("Conditions", {})}

    def condition(self, name: str) -> bool:
        return bool(self.evaluate(self.template["Conditions"][name]))

    def evaluate(self, expression: Any) -> Any:
        """A condition or rule expression: Fn::Equals/Not/And/Or/Contains, Condition, Ref."""
        if isinstance(expression, dict) and len(expression) == 1:
            ((function, argument),) = expression.items()
            if function == "Fn::Equals":
                left, right = (self.resolve(a) for a in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self.evaluate(argument[0])
            if function == "Fn::And":
                return all(self.evaluate(a) for a in argument)
            if function == "Fn::Or":
                return any(self.evaluate(a) for a in argument)
            if function == "Fn::Contains":
                values, value = argument
                return self.resolve(value) in [self.resolve(v) for v in values]
            if function == "Condition":
                return self.condition(argument)
        return self.resolve(expression)

    def rule_failures(self) -> list[str]:
        """The AssertDescription of every Rules assertion these parameters break."""
        failures = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.evaluate(rule["RuleCondition"]):
                continue
            failures += [a["AssertDescription"] for a in rule["Assertions"] if not self.evaluate(a["Assert"])]
        return failures

    # resources ---------------------------------------------------------------------------------------

    def exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"].get(logical_id)
        return resource is not None and ("Condition" not in resource or self.condition(resource["Condition"]))

    def resources(self, resource_type: str | None = None) -> dict[str, dict[str, Any]]:
        """The resources this environment creates (conditions applied), optionally of one type."""
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if self.exists(logical_id) and (resource_type is None or resource["Type"] == resource_type)
        }

    def resource(self, logical_id: str) -> dict[str, Any]:
        assert self.exists(logical_id), f"{logical_id} is not created in this environment"
        return self.template["Resources"][logical_id]

    def properties(self, logical_id: str) -> Any:
        """A resource's properties with every intrinsic resolved."""
        return self.resolve(self.resource(logical_id).get("Properties", {}))

    def outputs(self) -> dict[str, Any]:
        return {
            name: self.resolve(output["Value"])
            for name, output in self.template.get("Outputs", {}).items()
            if "Condition" not in output or self.condition(output["Condition"])
        }

    # intrinsics --------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return f"<{logical_id}.{attribute}>"
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                resolved = self.resolve(items)
                return separator.join(resolved) if isinstance(resolved, list) else f"<join {resolved}>"
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(index)]
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return f"<Ref:{name}>"

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name not in self.parameters:
                return f"<{name}>"
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def statements(role: dict[str, Any], stack: Stack) -> list[dict[str, Any]]:
    """Every inline policy statement of an AWS::IAM::Role, resolved, with list-valued Action/Resource."""
    found = []
    for policy in stack.resolve(role["Properties"].get("Policies", [])):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions, resources = statement["Action"], statement.get("Resource", [])
            found.append(
                {
                    **statement,
                    "Action": actions if isinstance(actions, list) else [actions],
                    "Resource": resources if isinstance(resources, list) else [resources],
                }
            )
    return found
