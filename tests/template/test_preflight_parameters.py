"""preflight's copies of the template (forwarder_ops/parameters.py, the survey's log group names) are the template's."""

from __future__ import annotations

from typing import Any

from forwarder_ops.parameters import CONSTRAINTS, Constraint
from forwarder_ops.preflight import TEMPLATE_RESOURCES
from forwarder_ops.survey import LOG_GROUPS


def test_preflight_parameters_are_the_templates_constraints(template: dict[str, Any]) -> None:
    # GIVEN the template's parameters THEN preflight checks each with the same constraints CloudFormation applies
    declared = {
        name: Constraint(
            pattern=spec.get("AllowedPattern"),
            values=tuple(spec.get("AllowedValues", ())),
            minimum=spec.get("MinValue"),
            maximum=spec.get("MaxValue"),
            required="Default" not in spec,
        )
        for name, spec in template["Parameters"].items()
    }
    assert dict(CONSTRAINTS) == declared


def test_preflight_log_groups_are_the_ones_the_template_names(template: dict[str, Any]) -> None:
    # GIVEN the log groups the template names after the stack THEN preflight looks for leftovers of exactly those
    named = [
        resource["Properties"]["LogGroupName"]["Fn::Sub"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    ]
    assert sorted(named) == sorted(f"/aws/lambda/${{AWS::StackName}}/{name}" for name in LOG_GROUPS)


def test_preflight_knows_the_templates_resources(template: dict[str, Any]) -> None:
    # GIVEN the template's logical ids THEN preflight tells a stack of this template from another of the same name
    assert sorted(TEMPLATE_RESOURCES) == sorted(template["Resources"])
