"""`forwarder preflight` and `adopt` on account states a first contact meets that the team's account does not
have: stacks stopped half way, records shared with other uses of a name, identities set up another way."""

from __future__ import annotations

import pytest

from forwarder_ops.adopt import plan_overrides
from forwarder_ops.preflight import Severity, evaluate
from forwarder_ops.survey import Facts, Settings, Zone
from tests.cli.team_account import APEX, DEV

STACK = "email-forwarder-dev"


def settings(**parameters: str) -> Settings:
    return Settings.of({"EnvironmentName": "dev", "DomainName": DEV, **parameters}, STACK, "us-east-1", "dev")


@pytest.mark.parametrize(
    ("status", "way_out"),
    [
        ("UPDATE_FAILED", "rollback-stack"),  # `sam deploy --disable-rollback` stopped an update
        ("IMPORT_ROLLBACK_FAILED", "describe-stack-events"),  # it may hold imported, hand-made resources
    ],
)
def test_preflight_never_advises_deleting_a_stack_that_holds_the_environment(status: str, way_out: str) -> None:
    # GIVEN a deployed stack in a failed state that keeps its resources (the mail bucket, the identity)
    facts = Facts(account="1", stack_status=status, logical={"MailBucket", "EmailIdentity"})

    # WHEN preflight judges it
    row = next(r for r in evaluate(settings(), facts) if r.check == "stack")

    # THEN it does not call it a failed creation that holds nothing, nor offer delete-stack (it deletes them all)
    assert "delete-stack" not in row.fix
    assert "holds nothing" not in row.fix
    assert way_out in row.fix
