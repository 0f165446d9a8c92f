"""The deploy role's calls that IAM gives no resource type are held to its environment's region by
`aws:RequestedRegion` (deploy/deploy-role-policy.json, with the conditions evaluated): each environment has a region
of its own, so one environment's role cannot reach another's."""

from __future__ import annotations

import pytest

from tests.template.cloudformation import ENVIRONMENTS, load_environments
from tests.template.test_deploy_role_scopes import allowed_for


def other_regions(env: str) -> list[str]:
    environments = load_environments()
    return [e.region for name, e in environments.items() if name != env and e.region != environments[env].region]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize(
    "action",
    ["ses:CreateReceiptRule", "ses:UpdateReceiptRule", "ses:DeleteReceiptRule", "ses:DeleteReceiptRuleSet"],
)
def test_deploy_role_receipt_rules_of_its_own_region_only(env: str, action: str) -> None:
    # GIVEN an environment's role and the receipt calls, which IAM gives no resource type (Resource "*")
    # THEN it may make them in its environment's region, where its stack's rule is
    assert allowed_for(env, action, "*")
    # AND not in another environment's: there the dev role could delete prod's rule or rule set, and prod's
    # mail would bounce
    for region in other_regions(env):
        assert not allowed_for(env, action, "*", region), (action, region)
