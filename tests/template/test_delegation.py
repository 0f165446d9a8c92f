"""The rules on a zone this stack creates and delegates: every mail record must then be the stack's own."""

from __future__ import annotations

from typing import Any

import pytest

MODES = ("EmailIdentityMode", "MxRecordMode", "MailFromRecordsMode", "DmarcRecordMode")


@pytest.mark.parametrize("mode", MODES)
def test_delegation_refuses_records_left_behind_in_the_parent_zone(variant: Any, mode: str) -> None:
    # GIVEN dev creates its zone and delegates it from the apex zone, where an existing record would live
    # WHEN one group is left to what exists
    stack = variant("dev", **{mode: "existing"})
    assert stack.conditions["DelegateFromParent"]
    # THEN the deploy stops at its start, naming the parameter: the delegation would hide that record
    failures = stack.rule_failures()
    assert len(failures) == 1, failures
    assert mode in failures[0]
    assert "forwarder adopt" in failures[0]


@pytest.mark.parametrize("mode", MODES)
def test_delegation_rule_leaves_existing_zones_and_undelegated_zones_alone(variant: Any, mode: str) -> None:
    # GIVEN the records' own existing zone (HostedZoneId) THEN leaving a group to what exists is accepted
    assert (
        variant("dev", HostedZoneId="Z0HANDMADEZONE42", ParentHostedZoneId="", **{mode: "existing"}).rule_failures()
        == []
    )
    # GIVEN a new zone that the stack does not delegate (DNS served elsewhere) THEN it is accepted too
    assert variant("dev", ParentHostedZoneId="", **{mode: "existing"}).rule_failures() == []
