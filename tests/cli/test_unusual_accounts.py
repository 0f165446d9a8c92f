"""The read-and-advise commands (doctor, trace, suppression, redrive) against accounts in unusual states:
a stack half-created or being deleted, calls the operator's role may not make, an account whose quota or
sending state is out of the ordinary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cli.conftest import RULE, RULE_SET, STACK, Cli, Deployment, FakeResolver, FakeSesV2, client
from tests.cli.test_doctor import healthy_dns, rows


@pytest.fixture
def ses(client_overrides: dict[str, Any], aws: None) -> FakeSesV2:
    fake = FakeSesV2()
    client_overrides["sesv2"] = fake
    return fake


def denied(operation: str, action: str) -> ClientError:
    """AWS's refusal of a call the operator's role may not make."""
    message = f"User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: {action}"
    return ClientError({"Error": {"Code": "AccessDenied", "Message": message}}, operation)


class StackInState:
    """CloudFormation as moto answers it, but the stack in `status` (moto cannot fail a deploy), without its
    outputs when `outputs` is False (a stack whose creation rolled back has none); `error` refuses the call."""

    def __init__(self, status: str, *, outputs: bool = True, error: Exception | None = None) -> None:
        self._client = client("cloudformation")
        self.status, self.keep_outputs, self.error = status, outputs, error

    def describe_stacks(self, **request: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        answer: dict[str, Any] = self._client.describe_stacks(**request)
        for stack in answer["Stacks"]:
            stack["StackStatus"] = self.status
            if not self.keep_outputs:
                stack.pop("Outputs", None)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# the stack --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outputs", "says"),
    [
        ("ROLLBACK_COMPLETE", False, f"aws cloudformation delete-stack --stack-name {STACK} --region us-east-1"),
        ("DELETE_IN_PROGRESS", True, "wait stack-delete-complete"),
        ("UPDATE_ROLLBACK_FAILED", True, f"continue-update-rollback --stack-name {STACK} --region us-east-1"),
        ("REVIEW_IN_PROGRESS", False, "execute the change set"),
    ],
)
def test_doctor_stack_that_sam_deploy_alone_cannot_fix_gets_its_own_fix(
    cli: Cli,
    deployed: Deployment,
    ses: FakeSesV2,
    resolver: FakeResolver,
    client_overrides: dict[str, Any],
    status: str,
    outputs: bool,
    says: str,
) -> None:
    # GIVEN a stack whose creation rolled back, that is being deleted, whose update could not be rolled back,
    # or whose first change set was never executed
    healthy_dns(resolver, deployed)
    client_overrides["cloudformation"] = StackInState(status, outputs=outputs)

    # WHEN the doctor checks the environment
    result = cli("doctor", "--config-env", "dev")

    # THEN the stack row is a failure whose fix is what CloudFormation accepts in that state, not "wait for the
    # deploy" or a bare `sam deploy`
    line = rows(result.out)["stack"]
    assert result.code == 1
    assert line.startswith("✗") and status in line, line
    assert says in result.out
    assert "wait for the deploy" not in result.out


def test_doctor_rolled_back_update_still_works_and_says_why(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver, client_overrides: dict[str, Any]
) -> None:
    # GIVEN a stack whose last update failed and was rolled back to the template before it
    healthy_dns(resolver, deployed)
    client_overrides["cloudformation"] = StackInState("UPDATE_ROLLBACK_COMPLETE")

    result = cli("doctor", "--config-env", "dev")

    # THEN it is a warning (the previous version still forwards) with where to see what failed
    assert result.code == 0, result.out
    assert rows(result.out)["stack"].startswith("!")
    assert f"describe-stack-events --stack-name {STACK} --region us-east-1" in result.out


@pytest.mark.parametrize("command", [("redrive", "--dry-run"), ("trace", "--since", "1d")])
def test_commands_needing_an_output_of_a_failed_stack_say_to_delete_it(
    cli: Cli, deployed: Deployment, client_overrides: dict[str, Any], command: tuple[str, ...]
) -> None:
    # GIVEN a stack whose creation failed: ROLLBACK_COMPLETE, no outputs
    client_overrides["cloudformation"] = StackInState("ROLLBACK_COMPLETE", outputs=False)

    # WHEN a command needs one of its outputs
    result = cli(*command, "--config-env", "dev")

    # THEN one line says the stack failed and must be deleted first ("redeploy it" would fail again)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "it is ROLLBACK_COMPLETE" in result.err
    assert f"aws cloudformation delete-stack --stack-name {STACK} --region us-east-1" in result.err
    assert "redeploy it with the current template" not in result.err


# a call the operator may not make ------------------------------------------------------------------


def test_doctor_denied_the_stack_still_reports_the_rest_and_names_the_permission(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver, client_overrides: dict[str, Any]
) -> None:
    # GIVEN an operator role without cloudformation:DescribeStacks
    healthy_dns(resolver, deployed)
    client_overrides["cloudformation"] = StackInState(
        "CREATE_COMPLETE", error=denied("DescribeStacks", "cloudformation:DescribeStacks")
    )

    # WHEN the doctor checks the environment
    result = cli("doctor", "--config-env", "dev", "--json")

    # THEN the report still comes out (not one line and exit 2); the stack row is inconclusive and names the
    # permission; the checks that need no stack output still run
    assert result.code in {0, 1}, result.err
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert checks["stack"]["status"] == "warn"
    assert "cloudformation:DescribeStacks" in checks["stack"]["fix"]
    assert checks["SES identity"]["status"] == "ok"
    assert checks["account"]["status"] == "ok"


def test_doctor_denied_row_names_the_missing_permission_even_when_aws_does_not(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN a refusal of ses:GetAccount whose message does not name the action (an explicit deny by an SCP)
    healthy_dns(resolver, deployed)
    ses.account_error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "explicit deny in a service control policy"}},
        "GetAccount",
    )

    result = cli("doctor", "--config-env", "dev", "--json")

    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert checks["account"]["status"] == "warn"
    assert "ses:GetAccount" in checks["account"]["fix"]


def test_doctor_without_the_account_does_not_claim_the_sandbox_is_off(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an operator role without ses:GetAccount, in an account that may be in the sandbox
    healthy_dns(resolver, deployed)
    ses.account_error = denied("GetAccount", "ses:GetAccount")

    result = cli("doctor", "--config-env", "dev", "--json")

    # THEN the sandbox row says it cannot tell, instead of "not in the sandbox: any address may receive"
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert checks["sandbox members"]["status"] == "skip"
    assert "unknown whether us-east-1 is in the sandbox" in checks["sandbox members"]["detail"]
    assert "any address may receive" not in result.out


# the account's sending state --------------------------------------------------------------------


def test_doctor_reads_an_unlimited_quota_as_unlimited(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an account whose daily quota SES reports as -1 ("unlimited")
    healthy_dns(resolver, deployed)
    ses.quota = (-1.0, 500.0, 120_000.0)

    result = cli("doctor", "--config-env", "dev")

    # THEN the account row is fine and says so, not "quota -1/24h" with a warning to ask for more
    assert result.code == 0, result.out
    line = rows(result.out)["account"]
    assert line.startswith("✓"), line
    assert "quota unlimited at 500/s, 120,000 sent in the last 24h" in line


@pytest.mark.parametrize(
    ("sending", "enforcement", "says", "fix"),
    [
        (False, "HEALTHY", "sending is paused", "aws sesv2 put-account-sending-attributes --sending-enabled"),
        (False, "SHUTDOWN", "SES has paused sending", "answer AWS's case"),
    ],
)
def test_doctor_paused_sending_says_who_paused_it_and_how_to_resume(
    cli: Cli,
    deployed: Deployment,
    ses: FakeSesV2,
    resolver: FakeResolver,
    sending: bool,
    enforcement: str,
    says: str,
    fix: str,
) -> None:
    # GIVEN sending paused in the account (by someone in it) or by SES's enforcement
    healthy_dns(resolver, deployed)
    ses.sending_enabled, ses.enforcement = sending, enforcement

    result = cli("doctor", "--config-env", "dev")

    # THEN the account row fails, saying which, and the fix resumes it in the environment's region
    assert result.code == 1
    assert rows(result.out)["account"].startswith("✗") and says in rows(result.out)["account"]
    assert fix in result.out
    if enforcement == "HEALTHY":
        assert "--region us-east-1" in result.out


# DKIM and MAIL FROM -----------------------------------------------------------------------------


def test_doctor_dkim_never_started_says_to_switch_it_on(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an identity made without Easy DKIM (SES v1's verify-domain-identity, by hand): no tokens
    healthy_dns(resolver, deployed)
    ses.dkim = "NOT_STARTED"

    result = cli("doctor", "--config-env", "dev")

    # THEN the fix switches DKIM on in the environment's region, rather than sending to the NS delegation row
    assert rows(result.out)["DKIM"].startswith("✗")
    assert (
        "aws sesv2 put-email-identity-dkim-signing-attributes --email-identity dev.aws-educate.tw "
        "--signing-attributes-origin AWS_SES --region us-east-1" in result.out
    )
    assert "NS delegation row" not in result.out


def test_doctor_dkim_temporary_failure_is_a_warning(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN SES could not look up the DKIM records of a verified identity this time
    healthy_dns(resolver, deployed)
    ses.dkim = "TEMPORARY_FAILURE"

    result = cli("doctor", "--config-env", "dev")

    # THEN it is worth a look, not a failure: SES looks again
    assert result.code == 0, result.out
    assert rows(result.out)["DKIM"].startswith("!") and "tries again" in rows(result.out)["DKIM"]


@pytest.mark.parametrize(
    ("status", "behavior", "symbol", "says"),
    [
        ("FAILED", "REJECT_MESSAGE", "✗", "SES refuses every send meanwhile"),
        ("FAILED", "USE_DEFAULT_VALUE", "✗", "SES sends with its own MAIL FROM meanwhile"),
        ("TEMPORARY_FAILURE", "USE_DEFAULT_VALUE", "!", "could not look up its MX record just now"),
        ("TEMPORARY_FAILURE", "REJECT_MESSAGE", "✗", "SES refuses every send meanwhile"),
    ],
)
def test_doctor_mail_from_says_what_ses_does_until_it_is_fixed(
    cli: Cli,
    deployed: Deployment,
    ses: FakeSesV2,
    resolver: FakeResolver,
    status: str,
    behavior: str,
    symbol: str,
    says: str,
) -> None:
    # GIVEN the MAIL FROM domain failed (or could not be checked this time), with either behaviour on MX failure
    healthy_dns(resolver, deployed)
    ses.mail_from, ses.mail_from_behavior = status, behavior

    line = rows(cli("doctor", "--config-env", "dev").out)["MAIL FROM"]

    # THEN the row says whether mail still goes out meanwhile: with REJECT_MESSAGE nothing is forwarded
    assert line.startswith(symbol), line
    assert says in line


# the receipt rule set ---------------------------------------------------------------------------


def test_doctor_a_copy_of_our_rule_set_made_active_by_hand_still_takes_the_mail(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN our rule set copied under another name by hand, the copy (holding our rule) made the active one
    healthy_dns(resolver, deployed)
    client("ses").clone_receipt_rule_set(RuleSetName="renamed-rules", OriginalRuleSetName=RULE_SET)
    client("ses").set_active_receipt_rule_set(RuleSetName="renamed-rules")

    result = cli("doctor", "--config-env", "dev")

    # THEN mail still reaches our rule: a warning that deploys no longer change that rule, not a failure
    line = rows(result.out)["receipt rule"]
    assert result.code == 0, result.out
    assert line.startswith("!") and f"renamed-rules/{RULE} active and enabled" in line
    assert "ReceiptRuleSetName=renamed-rules with ReceiptRuleSetMode=join-existing" in result.out


def test_doctor_our_rule_set_gone_says_to_redeploy_before_activating_it(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN another set active and the stack's set deleted by hand
    healthy_dns(resolver, deployed)
    client("ses").create_receipt_rule_set(RuleSetName="legacy")
    client("ses").set_active_receipt_rule_set(RuleSetName="legacy")
    client("ses").delete_receipt_rule_set(RuleSetName=RULE_SET)

    result = cli("doctor", "--config-env", "dev")

    # THEN the fix does not just say to activate a set that does not exist
    line = rows(result.out)["receipt rule"]
    assert result.code == 1
    assert line.startswith("✗") and f"the stack's {RULE_SET} does not exist any more" in line
    assert f"redeploy the stack (it creates {RULE_SET})" in result.out


def test_doctor_a_hosted_zone_deleted_by_hand_is_a_failure_with_the_fix(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN the stack's hosted zone deleted outside the stack (HostedZoneId names a zone that is gone)
    healthy_dns(resolver, deployed)
    client("route53").delete_hosted_zone(Id=deployed.zone_id)

    result = cli("doctor", "--config-env", "dev")

    # THEN the delegation row fails (not "could not check"), naming the zone and how to find the right one
    line = rows(result.out)["NS delegation"]
    assert result.code == 1
    assert line.startswith("✗") and f"hosted zone {deployed.zone_id} does not exist in this account" in line
    assert "forwarder adopt --config-env dev" in result.out


def test_doctor_checks_the_aliases_under_the_alias_path_the_operator_gives(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN a second alias path beside the stack's (aliases being moved), with a looping alias
    healthy_dns(resolver, deployed)
    other = "/email-forwarder/staging/aliases"
    client("ssm").put_parameter(Name=f"{other}/ops", Value="ops@dev.aws-educate.tw", Type="StringList")

    # WHEN the operator checks that path explicitly
    result = cli("doctor", "--config-env", "dev", "--alias-path", other)

    # THEN the doctor reads it (as every other command does), not the stack's AliasPath output
    line = rows(result.out)["aliases"]
    assert line.startswith("✗") and f"1 problem(s) under {other}" in line, line


# the suppression list ---------------------------------------------------------------------------


def test_suppression_list_without_members_does_not_say_none_is_suppressed(cli: Cli, aws: None, ses: FakeSesV2) -> None:
    # GIVEN an alias path that holds nothing (a wrong --alias-path, or the wrong region), and a suppressed address
    ses.suppressed.add("bob@gmail.com")

    result = cli("suppression", "list", "--config-env", "dev", "--alias-path", "/email-forwarder/typo/aliases")
    data = json.loads(
        cli("suppression", "list", "--config-env", "dev", "--alias-path", "/email-forwarder/typo/aliases", "--json").out
    )

    # THEN it says that no member was checked, rather than reassuring that no member is suppressed
    assert "no alias members under /email-forwarder/typo/aliases in us-east-1: nothing to check" in result.out
    assert "is on the suppression list" not in result.out
    assert data["members"] == 0 and data["alias_path"] == "/email-forwarder/typo/aliases"


def test_suppression_list_says_how_many_members_it_checked(cli: Cli, deployed: Deployment, ses: FakeSesV2) -> None:
    result = cli("suppression", "list", "--config-env", "dev")
    assert result.code == 0
    assert "none of 3 alias members is on the suppression list of us-east-1" in result.out


# advice -----------------------------------------------------------------------------------------


def test_doctor_advice_without_config_env_names_the_region_and_stack_it_checked(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an environment checked by --region and --stack-name alone (no samconfig environment), with a parked
    # event and a suppressed member
    healthy_dns(resolver, deployed)
    deployed.park({"requestPayload": {}})
    ses.suppressed.add("bob@gmail.com")

    result = cli("doctor", "--region", "us-east-1", "--stack-name", STACK)

    # THEN the commands the fixes suggest act on that region and stack, not on the shell's default region
    flags = f"--region us-east-1 --stack-name {STACK}"
    assert f"`forwarder redrive {flags} --dry-run`" in result.out
    assert f"`forwarder suppression remove bob@gmail.com {flags}`" in result.out
