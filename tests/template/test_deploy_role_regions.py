"""The deploy role's calls that IAM gives no resource type, or on resources whose names do not say which stack's
they are, are held to its environment's region (deploy/deploy-role-policy.json, with the conditions evaluated): each
environment has a region of its own, so one environment's role cannot reach another's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.template.cloudformation import ACCOUNT, ENVIRONMENTS, load_environments
from tests.template.test_deploy_role_scopes import allowed_for


def other_regions(env: str) -> list[str]:
    environments = load_environments()
    return [e.region for name, e in environments.items() if name != env and e.region != environments[env].region]


def assert_own_region_only(env: str, action: str, arn: Callable[[str], str]) -> None:
    """`env`'s role may make `action` on the resource `arn(region)` names in its own region, in no other's."""
    assert allowed_for(env, action, arn(load_environments()[env].region))
    for region in other_regions(env):
        assert not allowed_for(env, action, arn(region)), (action, region)


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


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("action", ["secretsmanager:DeleteSecret", "secretsmanager:UpdateSecret"])
def test_deploy_role_link_secret_of_its_own_region_only(env: str, action: str) -> None:
    # GIVEN the link secret's name, which CloudFormation makes from the logical id (LinkSecret-<random>) and so
    # does not name the stack
    def secret(region: str) -> str:
        return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:LinkSecret-AbCdEfGhIjKl-1a2B3c"

    # THEN an environment's role manages the one in its region, and not another environment's: deleting prod's key
    # would break every download link and reply address its mail carries
    assert_own_region_only(env, action, secret)


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("action", ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion"])
def test_deploy_role_dependencies_layer_of_its_own_region_only(env: str, action: str) -> None:
    # GIVEN the layer's name, the logical id DependenciesLayer in every environment's stack
    def layer(region: str) -> str:
        return f"arn:aws:lambda:{region}:{ACCOUNT}:layer:DependenciesLayer:7"

    # THEN an environment's role publishes and deletes versions of the one in its region, and not another's
    assert_own_region_only(env, action, layer)
