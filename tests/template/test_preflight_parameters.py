"""preflight's copy of the template's parameter constraints (forwarder_ops/parameters.py) is the template's."""

from __future__ import annotations

from typing import Any

from forwarder_ops.parameters import CONSTRAINTS, Constraint


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
