"""`forwarder doctor` against moto, with fakes for what moto cannot answer and for DNS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cli.conftest import (
    ALIAS_PATH,
    DOMAIN,
    REGION,
    Cli,
    Deployment,
    FakeResolver,
    FakeSesV2,
    client,
    deploy,
)


def rows(output: str) -> dict[str, str]:
    """Check name -> its line of the table (the symbol first)."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {"✓", "✗", "!", "-"}:
            found[line[4:].split("  ")[0].strip()] = line.strip()
    return found


def healthy_dns(resolver: FakeResolver, deployment: Deployment) -> None:
    resolver.delegations[DOMAIN] = [ns.upper() + "." for ns in deployment.name_servers]
    resolver.mx_records[DOMAIN] = [(10, f"inbound-smtp.{REGION}.amazonaws.com")]


@pytest.fixture
def ses(client_overrides: dict[str, Any], aws: None) -> FakeSesV2:
    fake = FakeSesV2()
    client_overrides["sesv2"] = fake
    return fake


def test_doctor_all_checks_pass_for_a_healthy_environment(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN a deployed, verified, delegated environment in production with valid aliases
    healthy_dns(resolver, deployed)

    # WHEN the doctor checks it
    result = cli("doctor", "--config-env", "dev")

    # THEN every check passes (the sandbox member check does not apply) and the exit code is 0
    assert result.code == 0, result.out
    table = rows(result.out)
    assert all(line.startswith("✓") for name, line in table.items() if name != "sandbox members"), result.out
    assert table["sandbox members"].startswith("-")
    assert "forwarder doctor: dev (stack email-forwarder-dev, us-east-1, dev.aws-educate.tw)" in result.out
    assert "production access; quota 50,000/24h at 14/s, 120 sent in the last 24h" in table["account"]
    assert "2 aliases, 3 members, all valid" in table["aliases"]
    assert "fix:" not in result.out
    assert result.out.rstrip().endswith("14 checks: 13 ✓  0 ✗  0 !  1 skipped")


def test_doctor_reports_each_broken_part_with_its_fix(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    # GIVEN an environment where much is wrong: DKIM and MAIL FROM pending, the parent delegating to
    # other servers, no MX, the rule disabled, the sandbox with an unverified member, a looping alias,
    # and two events parked in the failure queue
    deployment = deploy(
        {"team": "alice@gmail.com, bob@gmail.com, ops@dev.aws-educate.tw", "tech": ","}, rule_enabled=False
    )
    client("ses").verify_email_identity(EmailAddress="alice@gmail.com")
    client_overrides["sesv2"] = FakeSesV2(verified=False, dkim="PENDING", mail_from="PENDING", production=False)
    resolver.delegations[DOMAIN] = ["ns1.old-registrar.example"]
    deployment.park({"requestPayload": {}})
    deployment.park({"requestPayload": {}})

    # WHEN the doctor checks it
    result = cli("doctor", "--config-env", "dev")

    # THEN each problem is a ✗ row followed by its fix, and the exit code is 1
    assert result.code == 1
    table = rows(result.out)
    assert table["SES identity"].startswith("✗")
    assert table["DKIM"].startswith("✗") and "status PENDING" in table["DKIM"]
    assert "tok1._domainkey.dev.aws-educate.tw  CNAME  tok1.dkim.amazonses.com" in result.out
    assert table["MAIL FROM"].startswith("✗")
    assert "bounces.dev.aws-educate.tw  MX  10 feedback-smtp.us-east-1.amazonses.com" in result.out
    assert table["NS delegation"].startswith("✗") and "ns1.old-registrar.example" in table["NS delegation"]
    assert f"set the NS records of {DOMAIN} to:" in result.out
    assert deployment.name_servers[0] in result.out
    assert table["MX"].startswith("✗") and "has no MX record" in table["MX"]
    assert f"{DOMAIN}  MX  10 inbound-smtp.us-east-1.amazonaws.com" in result.out
    assert table["receipt rule"].startswith("✗") and "is disabled" in table["receipt rule"]
    assert table["account"].startswith("!") and "sandbox" in table["account"]
    assert "Request production access" in result.out
    assert table["sandbox members"].startswith("✗")
    assert "1 member(s) cannot receive in the sandbox: bob@gmail.com" in table["sandbox members"]
    assert table["aliases"].startswith("✗")
    assert "team: ops@dev.aws-educate.tw is on dev.aws-educate.tw itself (a forwarding loop)" in result.out
    assert "tech: no members" in result.out
    assert table["failure queue"].startswith("✗") and "2 parked event(s)" in table["failure queue"]
    assert "forwarder redrive --config-env dev" in result.out


def test_doctor_json_lists_every_check(cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver) -> None:
    healthy_dns(resolver, deployed)
    resolver.mx_records[DOMAIN] = [(10, "inbound-smtp.us-west-2.amazonaws.com")]

    result = cli("doctor", "--config-env", "dev", "--json")

    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False
    assert report["domain"] == DOMAIN
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["MX"]["status"] == "fail"
    assert "another region's endpoint" in checks["MX"]["detail"]
    assert checks["region"]["status"] == "ok"


def test_doctor_without_a_stack_says_to_deploy(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    # GIVEN nothing deployed (no stack, no identity)
    client_overrides["sesv2"] = FakeSesV2()

    result = cli("doctor", "--config-env", "dev")

    # THEN the stack row says to deploy it, the domain still comes from samconfig.toml
    assert result.code == 1
    table = rows(result.out)
    assert table["stack"].startswith("✗") and "email-forwarder-dev does not exist in us-east-1" in table["stack"]
    assert "fix: deploy it: `sam deploy --config-env dev`" in result.out
    assert table["SES identity"].startswith("✗")
    assert table["DKIM"].startswith("-")
    assert table["failure queue"].startswith("-")
    assert "Traceback" not in result.err


def test_doctor_names_the_regions_that_hold_the_identity_when_this_one_does_not(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    # GIVEN the domain verified by hand in us-west-2 and ap-northeast-1, nothing in dev's us-east-1
    for region in ("us-west-2", "ap-northeast-1"):
        client("sesv2", region).create_email_identity(EmailIdentity=DOMAIN)
    client("sesv2", "eu-west-1").create_email_identity(EmailIdentity=f"other.{DOMAIN}")
    client_overrides["sesv2"] = FakeSesV2()

    # WHEN the doctor checks dev
    result = cli("doctor", "--config-env", "dev", "--json")

    # THEN the identity row fails naming where the identity is, and says what deploying here would do
    check = {c["name"]: c for c in json.loads(result.out)["checks"]}["SES identity"]
    assert check["status"] == "fail"
    assert check["detail"] == f"{DOMAIN} is not an SES identity in us-east-1; it is one in ap-northeast-1, us-west-2"
    assert "deploying in us-east-1 makes a second identity there" in check["fix"]


def test_doctor_says_only_to_deploy_when_no_region_holds_the_identity(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    client("sesv2", "us-west-2").create_email_identity(EmailIdentity="someone@example.org")
    client_overrides["sesv2"] = FakeSesV2()

    result = cli("doctor", "--config-env", "dev", "--json")

    check = {c["name"]: c for c in json.loads(result.out)["checks"]}["SES identity"]
    assert check["detail"] == f"{DOMAIN} is not an SES identity in us-east-1"
    assert check["fix"] == "deploy the stack (it creates the identity); identities are per region"


def test_doctor_warns_about_a_region_it_does_not_know(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    client_overrides["sesv2"] = FakeSesV2()

    result = cli("doctor", "--config-env", "preview", "--json")

    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert checks["region"]["status"] == "warn"
    assert "Email receiving endpoints" in checks["region"]["fix"]


def test_doctor_mx_preferring_another_host_is_a_warning(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    healthy_dns(resolver, deployed)
    resolver.mx_records[DOMAIN] = [(5, "mx.old-host.example"), (10, f"inbound-smtp.{REGION}.amazonaws.com")]

    result = cli("doctor", "--config-env", "dev")

    assert result.code == 0
    assert rows(result.out)["MX"].startswith("!")
    assert "another host is preferred" in rows(result.out)["MX"]


def test_doctor_a_denied_call_is_inconclusive_not_a_crash(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an operator role without ses:GetAccount
    healthy_dns(resolver, deployed)
    ses.account_error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not allowed: ses:GetAccount"}}, "GetAccount"
    )

    result = cli("doctor", "--config-env", "dev")

    assert result.code == 0
    assert rows(result.out)["account"].startswith("!")
    assert "could not check: AccessDeniedException: not allowed: ses:GetAccount" in result.out


def test_doctor_sees_another_active_rule_set(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN someone activated another rule set in the region (only one is active)
    healthy_dns(resolver, deployed)
    client("ses").create_receipt_rule_set(RuleSetName="legacy")
    client("ses").set_active_receipt_rule_set(RuleSetName="legacy")

    result = cli("doctor", "--config-env", "dev")

    assert result.code == 1
    line = rows(result.out)["receipt rule"]
    assert line.startswith("✗") and "the active rule set is legacy, ours is email-forwarder-dev-rules" in line


@pytest.mark.parametrize(
    ("recipients", "covered"),
    [
        (["aws-educate.tw"], False),  # the parent domain: its own addresses, not its subdomains'
        ([".aws-educate.tw"], True),  # a leading dot: every subdomain
        ([f"team@{DOMAIN}"], True),  # an address of the domain
        ([], True),  # no recipients: every verified domain
    ],
)
def test_doctor_reads_the_rules_recipients_as_ses_matches_them(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver, recipients: list[str], covered: bool
) -> None:
    # GIVEN our rule's recipients changed by hand
    healthy_dns(resolver, deployed)
    rule = {"Name": "email-forwarder-dev-forward", "Enabled": True, "Recipients": recipients, "Actions": []}
    client("ses").update_receipt_rule(RuleSetName="email-forwarder-dev-rules", Rule=rule)

    # WHEN the doctor checks it
    line = rows(cli("doctor", "--config-env", "dev").out)["receipt rule"]

    # THEN a rule for the parent domain alone is said not to take the subdomain's mail, as SES matches it
    assert line.startswith("✓" if covered else "!"), line
    assert (f"does not list {DOMAIN} as a recipient" in line) != covered


@pytest.mark.parametrize(
    ("recipients", "symbol", "says"),
    [
        ([], "✗", f"stops the rule set for {DOMAIN} before"),  # every domain: nothing reaches ours
        ([DOMAIN], "✗", f"stops the rule set for {DOMAIN} before"),
        ([f"noreply@{DOMAIN}"], "!", f"stops the rule set for noreply@{DOMAIN} before"),  # one address only
        (["other.example.org"], "✓", "active and enabled"),  # another domain's rule
    ],
)
def test_doctor_sees_a_rule_that_stops_the_set_before_ours(
    cli: Cli,
    deployed: Deployment,
    ses: FakeSesV2,
    resolver: FakeResolver,
    recipients: list[str],
    symbol: str,
    says: str,
) -> None:
    # GIVEN a rule made by hand at the top of the active set, which stops the set for its recipients
    healthy_dns(resolver, deployed)
    stop = {
        "Name": "hand-made",
        "Enabled": True,
        "Recipients": recipients,
        "Actions": [{"StopAction": {"Scope": "RuleSet"}}],
    }
    client("ses").create_receipt_rule(RuleSetName="email-forwarder-dev-rules", Rule=stop)  # no After: first

    # WHEN the doctor checks it
    line = rows(cli("doctor", "--config-env", "dev").out)["receipt rule"]

    # THEN the mail it stops never reaches our rule: a failure for the whole domain, a warning for addresses
    assert line.startswith(symbol), line
    assert says in line


def test_doctor_without_aliases_warns(cli: Cli, aws: None, ses: FakeSesV2, resolver: FakeResolver) -> None:
    deployment = deploy({})
    healthy_dns(resolver, deployment)

    result = cli("doctor", "--config-env", "dev")

    assert result.code == 0
    assert rows(result.out)["aliases"].startswith("!")
    assert f"no aliases under {ALIAS_PATH}" in result.out


def test_doctor_sandbox_with_verified_members_passes(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN the sandbox, and every member verified (one by address, two by their domain)
    healthy_dns(resolver, deployed)
    ses.production = False
    client("ses").verify_email_identity(EmailAddress="alice@gmail.com")
    client("ses").verify_email_identity(EmailAddress="bob@gmail.com")
    client("ses").verify_domain_identity(Domain="example.org")

    result = cli("doctor", "--config-env", "dev")

    assert result.code == 0
    assert rows(result.out)["sandbox members"].startswith("✓")
    assert rows(result.out)["account"].startswith("!")


def test_doctor_with_flags_only_checks_what_it_can(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver, workdir: Path
) -> None:
    # GIVEN no samconfig.toml and no stack name: only a region and a domain
    (workdir / "samconfig.toml").unlink()
    client("ses").verify_domain_identity(Domain=DOMAIN)
    client_overrides["sesv2"] = FakeSesV2()
    resolver.mx_records[DOMAIN] = [(10, f"inbound-smtp.{REGION}.amazonaws.com")]

    result = cli("doctor", "--region", REGION, "--domain", DOMAIN)

    # THEN what needs the stack or the alias path is skipped with the reason; the rest is checked
    table = rows(result.out)
    assert table["stack"].startswith("-") and "no stack name" in table["stack"]
    assert table["aliases"].startswith("-") and "no alias path" in table["aliases"]
    assert table["SES identity"].startswith("✓")
    assert table["MX"].startswith("✓")
    assert result.code == 1  # no active receipt rule set in the region
    assert table["receipt rule"].startswith("✗")


def test_doctor_without_mail_from_names_the_template_s_domain(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an identity without a custom MAIL FROM domain
    healthy_dns(resolver, deployed)
    ses.mail_from = None
    # WHEN the doctor checks it THEN the fix names the MAIL FROM domain the stack sets (bounces.), not another
    result = cli("doctor", "--config-env", "dev")
    assert rows(result.out)["MAIL FROM"].startswith("!")
    assert "it sets bounces.dev.aws-educate.tw (the MailFromSubdomain parameter" in result.out
    assert "mail.dev.aws-educate.tw" not in result.out


@pytest.mark.parametrize("parent_zone_here", [True, False])
def test_doctor_says_where_the_missing_delegation_goes(
    cli: Cli, aws: None, ses: FakeSesV2, resolver: FakeResolver, parent_zone_here: bool
) -> None:
    # GIVEN dev's zone, not delegated, and the parent's zone in this account (or at another DNS provider)
    parent = DOMAIN.partition(".")[2]
    held = client("route53").create_hosted_zone(Name=parent, CallerReference="parent") if parent_zone_here else None
    deploy({"team": "alice@gmail.com"})

    # WHEN the doctor checks it
    out = cli("doctor", "--config-env", "dev").out

    # THEN the fix names the parent's zone here, or says to set it where the parent is managed
    assert f"set the NS records of {DOMAIN} to:" in out
    if held:
        assert f"in the parent zone {parent} ({held['HostedZone']['Id'].rsplit('/', 1)[-1]})" in out
    else:
        assert f"where {parent} is managed" in out


@pytest.mark.parametrize("apex", ["aws-educate.tw", "aws-educate.com.tw"])
def test_doctor_sends_an_apex_to_its_registrar(
    cli: Cli, aws: None, ses: FakeSesV2, resolver: FakeResolver, apex: str
) -> None:
    # GIVEN an environment on the apex whose zone's name servers the registry does not list
    deploy({"team": "alice@gmail.com"}, zone_name=apex)

    # WHEN the doctor checks it
    out = cli("doctor", "--config-env", "dev").out

    # THEN the fix is at the registrar, not "in the parent zone tw" (a registry nobody edits)
    assert f"at the registrar of {apex}" in out or f"where {apex.partition('.')[2]} is managed" in out
    assert f"in the parent zone {apex.partition('.')[2]}" not in out


def test_doctor_checks_the_delegation_of_the_parent_zone_that_holds_the_records(
    cli: Cli, aws: None, ses: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN an environment whose records are in the zone of the parent domain (HostedZoneId: no zone of its own)
    parent = DOMAIN.partition(".")[2]
    deployment = deploy({"team": "alice@gmail.com"}, zone_name=parent)
    resolver.delegations[parent] = [ns + "." for ns in deployment.name_servers]
    resolver.mx_records[DOMAIN] = [(10, f"inbound-smtp.{REGION}.amazonaws.com")]

    # WHEN the doctor checks it
    table = rows(cli("doctor", "--config-env", "dev").out)

    # THEN the delegation that matters is the parent zone's (the domain itself is not delegated: its records are
    # answered by the parent zone's name servers)
    assert table["NS delegation"].startswith("✓"), table["NS delegation"]
    assert f"delegates {parent} to the hosted zone {deployment.zone_id}" in table["NS delegation"]


def test_doctor_dkim_of_an_identity_with_its_own_key_asks_for_the_public_key_not_cnames() -> None:
    # GIVEN an identity signing with the team's own DKIM key (Bring Your Own DKIM), not yet verified
    from forwarder_ops.doctor import Doctor
    from forwarder_ops.envconfig import Target

    doctor = Doctor(Target(name="dev", region="us-east-1"), FakeResolver())
    doctor.domain = DOMAIN
    doctor._identity = lambda: {  # type: ignore[method-assign]
        "DkimAttributes": {"Status": "PENDING", "SigningAttributesOrigin": "EXTERNAL", "Tokens": ["team2026"]}
    }
    # WHEN the doctor checks DKIM
    check = doctor.check_dkim()
    # THEN the fix is the public key's TXT at the selector, not Easy DKIM's CNAME records
    assert check.status.name == "FAIL" and "Bring Your Own DKIM" in check.detail
    assert f"TXT record at team2026._domainkey.{DOMAIN}" in check.fix
    assert "CNAME" not in check.fix


@pytest.mark.parametrize(
    ("name", "kind", "says"),
    [
        ("Team", "String", "team is stored as 2 parameters whose names differ only in case"),
        ("secret", "SecureString", "secret is a SecureString parameter, which the forwarder reads without decryption"),
    ],
)
def test_doctor_names_alias_parameters_the_forwarder_misreads(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver, name: str, kind: str, says: str
) -> None:
    # GIVEN a parameter made by hand beside the valid lists: `Team` beside `team` (each hid the other in the
    # doctor's reading), or a SecureString (its members get no mail: the forwarder does not decrypt)
    healthy_dns(resolver, deployed)
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/{name}", Value="dave@gmail.com", Type=kind)

    # WHEN the doctor checks the aliases
    result = cli("doctor", "--config-env", "dev")

    # THEN the row fails and says what is wrong
    assert result.code == 1
    line = rows(result.out)["aliases"]
    assert line.startswith("✗"), line
    assert says in result.out


@pytest.mark.parametrize("value", ["dave@gmail.com; erin@gmail.com", "dave@gmail.com\nerin@gmail.com"])
def test_doctor_says_to_separate_members_with_commas(
    cli: Cli, deployed: Deployment, ses: FakeSesV2, resolver: FakeResolver, value: str
) -> None:
    # GIVEN a list edited in the console with semicolons or one member a line: one entry the forwarder skips
    healthy_dns(resolver, deployed)
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/board", Value=value, Type="String")

    # WHEN the doctor checks the aliases
    result = cli("doctor", "--config-env", "dev")

    # THEN it fails the row and says what to change, not only that the whole value is no address
    assert result.code == 1
    assert "is not a valid address (separate members with commas)" in rows(result.out)["aliases"]
