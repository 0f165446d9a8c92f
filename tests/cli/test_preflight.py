"""`forwarder preflight`, `adopt` and `init` against moto seeded like the team's hand-made account (issue 9)."""

from __future__ import annotations

import json
import shlex
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from forwarder_ops.adopt import plan_overrides
from forwarder_ops.envconfig import Target, parse_overrides
from forwarder_ops.preflight import Severity, covers, evaluate
from forwarder_ops.survey import Facts, Settings, Zone
from tests.cli.conftest import Cli
from tests.cli.team_account import (
    APEX,
    DEV,
    PLACEHOLDER_SAMCONFIG,
    PLAIN_SAMCONFIG,
    PROD_REGION,
    TEAM_RULE_SET,
    Account,
    BelowMoto,
    _mail_records,
    seed_team_account,
)


@pytest.fixture
def below_moto(monkeypatch: pytest.MonkeyPatch) -> BelowMoto:
    """Every client the CLI makes answers GetAccount, GetAccountSettings and a real GetEmailIdentity."""
    answers = BelowMoto()
    original = Target.client

    def make(self: Target, service: str) -> Any:
        return answers.install(original(self, service))

    monkeypatch.setattr(Target, "client", make)
    return answers


@pytest.fixture
def account(below_moto: BelowMoto) -> Iterator[Account]:
    with mock_aws():
        yield seed_team_account()


@pytest.fixture(params=["placeholder", "plain"])
def samconfig(request: pytest.FixtureRequest, workdir: Path) -> Path:
    """The team's samconfig.toml: with the old placeholder zone ids, and without any zone id."""
    path = workdir / "samconfig.toml"
    path.write_text(PLACEHOLDER_SAMCONFIG if request.param == "placeholder" else PLAIN_SAMCONFIG)
    return path


def findings(result_out: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = json.loads(result_out)["findings"]
    return found


def overrides(path: Path, environment: str) -> dict[str, str]:
    return parse_overrides(tomllib.loads(path.read_text())[environment]["deploy"]["parameters"]["parameter_overrides"])


# preflight on the hand-made account -------------------------------------------------------------------


def test_preflight_names_every_collision_of_the_subdomain(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN the hand-made dev zone, its NS record in the apex, the identity and another active rule set

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN it exits 1 and names each collision with its fix
    assert result.code == 1, result.out + result.err
    errors = {(f["check"], f["resource"]): f for f in findings(result.out) if f["severity"] == "error"}
    checks = {check for check, _ in errors}
    assert {"hosted zone", "SES identity", "rule set", "MX record", "MAIL FROM records", "DMARC record"} <= checks
    zone = errors[("hosted zone", f"{DEV} (zone {account.dev_zone})")]
    assert f"HostedZoneId={account.dev_zone} ParentHostedZoneId=" in zone["fix"]
    assert "EmailIdentityMode=existing" in errors[("SES identity", f"{DEV} in us-east-1")]["fix"]
    assert f"ReceiptRuleSetName={TEAM_RULE_SET}" in errors[("rule set", f"active set {TEAM_RULE_SET}")]["fix"]
    assert "MxRecordMode=existing" in errors[("MX record", f"{DEV} MX in {account.dev_zone}")]["fix"]
    assert "DmarcRecordMode=existing" in errors[("DMARC record", f"_dmarc.{DEV} TXT in {account.dev_zone}")]["fix"]
    mail_from = [f for (check, _), f in errors.items() if check == "MAIL FROM records"]
    assert {f["resource"].split()[1] for f in mail_from} == {"MX", "TXT"}
    assert all(set(f) >= {"check", "resource", "problem", "fix", "severity"} for f in findings(result.out))
    # AND the placeholder parent zone id is a finding of its own
    placeholder = [f for f in findings(result.out) if "Z0PLACEHOLDERAPEXZONE" in f["resource"]]
    assert bool(placeholder) == ("Z0PLACEHOLDER" in samconfig.read_text())


def test_preflight_names_every_collision_of_the_apex(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN prod on the apex: the apex zone with its records, a new account's Lambda concurrency, no AlarmEmail

    # WHEN preflight checks prod
    result = cli("preflight", "--config-env", "prod", "--json")

    # THEN the zone, each record, the identity, the rule set, the concurrency and AlarmEmail are findings
    assert result.code == 1, result.out + result.err
    errors = [f for f in findings(result.out) if f["severity"] == "error"]
    by_check = {f["check"] for f in errors}
    assert {"SES identity", "MX record", "MAIL FROM records", "DMARC record", "rule set"} <= by_check
    assert {"concurrency", "alarm email"} <= by_check
    concurrency = next(f for f in errors if f["check"] == "concurrency")
    assert "account limit 10, unreserved 10: the forwarder can reserve at most 0" in concurrency["problem"]
    assert concurrency["fix"].startswith("ReservedConcurrency=0")
    if "Z0PLACEHOLDER" in samconfig.read_text():
        zone = next(f for f in errors if f["resource"] == "HostedZoneId=Z0PLACEHOLDERAPEXZONE")
        assert "no such hosted zone" in zone["problem"]
        assert f"HostedZoneId={account.apex_zone}" in zone["fix"]
    else:
        zone = next(f for f in errors if f["check"] == "hosted zone")
        assert f"HostedZoneId={account.apex_zone}" in zone["fix"]


def test_preflight_warns_of_the_earlier_rule_with_the_command_that_disables_it(
    cli: Cli, account: Account, samconfig: Path
) -> None:
    # GIVEN the team's earlier forwarder rule in the active set, for the same domain

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN a warning names the rule, the double delivery, and the exact command that disables (not deletes) it
    warning = next(f for f in findings(result.out) if f["check"] == "earlier rule")
    assert warning["severity"] == "warning"
    assert warning["resource"] == f"forward-dev in {TEAM_RULE_SET}"
    assert "every member gets each mail twice" in warning["problem"]
    command = warning["fix"].splitlines()[-1]
    assert command.startswith(f"aws ses update-receipt-rule --region us-east-1 --rule-set-name {TEAM_RULE_SET} --rule ")
    rule = json.loads(command.split("--rule ", 1)[1].strip("'"))
    assert rule["Enabled"] is False
    assert rule["Recipients"] == [DEV]
    assert rule["Actions"][0]["S3Action"]["BucketName"] == "team-mail-us-east-1"  # the rest of the rule is kept


def test_preflight_table_shows_problems_with_their_fixes(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN the hand-made account

    # WHEN preflight prints its table
    result = cli("preflight", "--config-env", "dev")

    # THEN each problem has a ✗ row and a fix line, and the summary says it is not ready
    assert result.code == 1
    assert f"✗ SES identity       {DEV} in us-east-1" in result.out
    assert "    fix: EmailIdentityMode=existing (`forwarder adopt`)" in result.out
    assert "! earlier rule" in result.out
    assert result.out.rstrip().endswith("not ready: fix the ✗ rows (or run `forwarder adopt`)")


# adopt --------------------------------------------------------------------------------------------------


def test_adopt_writes_the_overrides_and_preflight_then_passes(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN the hand-made account and the team's samconfig

    # WHEN adopt writes dev's and prod's parameters
    dev = cli("adopt", "--config-env", "dev", "--yes")
    prod = cli("adopt", "--config-env", "prod", "--yes", "--alarm-email", "ops@aws-educate.tw")

    # THEN the existing zones, identity, records and the active rule set are adopted
    assert dev.code == 0, dev.out + dev.err
    assert prod.code == 0, prod.out + prod.err
    assert '+    "EmailIdentityMode=existing",' in dev.out  # the diff was shown
    dev_parameters, prod_parameters = overrides(samconfig, "dev"), overrides(samconfig, "prod")
    assert dev_parameters["HostedZoneId"] == account.dev_zone
    assert dev_parameters.get("ParentHostedZoneId", "") == ""
    assert prod_parameters["HostedZoneId"] == account.apex_zone
    for parameters in (dev_parameters, prod_parameters):
        assert parameters["EmailIdentityMode"] == "existing"
        assert parameters["MxRecordMode"] == "existing"
        assert parameters["MailFromRecordsMode"] == "existing"
        assert parameters["DmarcRecordMode"] == "existing"
        assert parameters["ReceiptRuleSetMode"] == "join-existing"
        assert parameters["ReceiptRuleSetName"] == TEAM_RULE_SET
    assert prod_parameters["ReservedConcurrency"] == "0"
    assert prod_parameters["AlarmEmail"] == "ops@aws-educate.tw"
    assert "Z0PLACEHOLDER" not in samconfig.read_text()
    assert "# At most 5 forwards at once (a comment adopt must keep)." in samconfig.read_text()
    # AND preflight passes for both: left are warnings for a person (the earlier rule, feedback forwarding)
    for environment in ("dev", "prod"):
        result = cli("preflight", "--config-env", environment, "--json")
        assert result.code == 0, result.out
        left = findings(result.out)
        assert {(f["severity"], f["check"]) for f in left} == {("warning", "earlier rule"), ("warning", "feedback")}
    # AND adopting again changes nothing
    again = cli("adopt", "--config-env", "dev", "--yes")
    assert again.code == 0
    assert "nothing to adopt" in again.out


def test_adopt_keeps_the_file_when_the_operator_declines(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN the hand-made account
    before = samconfig.read_text()

    # WHEN adopt asks at a terminal and the operator answers no
    result = cli("adopt", "--config-env", "dev", stdin="n\n", tty=True)

    # THEN the diff was shown and nothing was written
    assert result.code == 1
    assert "EmailIdentityMode=existing" in result.out
    assert "nothing written" in result.out
    assert samconfig.read_text() == before


def test_adopt_without_a_terminal_and_without_yes_writes_nothing(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN no terminal (a script)
    before = samconfig.read_text()

    # WHEN adopt runs without --yes
    result = cli("adopt", "--config-env", "dev")

    # THEN it refuses in one line and writes nothing
    assert result.code == 2
    assert "re-run with --yes" in result.err
    assert samconfig.read_text() == before


# init ---------------------------------------------------------------------------------------------------


def test_init_writes_a_new_environment_with_zone_ids_looked_up_by_name(cli: Cli, account: Account) -> None:
    # GIVEN the team's account: the apex zone exists, staging.aws-educate.tw has no zone yet

    # WHEN a new environment is initialised for it
    result = cli(
        "init", "--config-env", "staging", "--domain", "staging.aws-educate.tw", "--region", "us-east-1", "--yes"
    )

    # THEN samconfig.toml has the section: the stack creates the zone and delegates it from the apex zone,
    # and its rule joins the active rule set
    assert result.code == 0, result.out + result.err
    document = tomllib.loads(Path("samconfig.toml").read_text())
    assert document["staging"]["global"]["parameters"] == {
        "stack_name": "email-forwarder-staging",
        "region": "us-east-1",
    }
    parameters = overrides(Path("samconfig.toml"), "staging")
    assert parameters["DomainName"] == "staging.aws-educate.tw"
    assert parameters["ParentHostedZoneId"] == account.apex_zone
    assert "HostedZoneId" not in parameters
    assert parameters["ReceiptRuleSetMode"] == "join-existing"
    assert "EmailIdentityMode" not in parameters  # created by the stack: the template's default
    assert "dev" in document  # the other environments are kept
    assert cli("preflight", "--config-env", "staging").code == 0


def test_init_for_a_team_with_a_hand_made_apex_adopts_its_records(cli: Cli, account: Account, workdir: Path) -> None:
    # GIVEN no samconfig.toml yet (a new team), the apex zone and identity made by hand
    (workdir / "samconfig.toml").unlink()

    # WHEN init writes prod for the apex
    result = cli(
        "init", "--config-env", "prod", "--domain", APEX, "--region", PROD_REGION,
        "--alarm-email", "ops@aws-educate.tw", "--yes",
    )  # fmt: skip

    # THEN the apex's MX and DMARC stay the organisation's (existing), the zone id is the apex zone's
    assert result.code == 0, result.out + result.err
    parameters = overrides(workdir / "samconfig.toml", "prod")
    assert parameters["HostedZoneId"] == account.apex_zone
    assert parameters["MxRecordMode"] == "existing"
    assert parameters["DmarcRecordMode"] == "existing"
    assert tomllib.loads((workdir / "samconfig.toml").read_text())["prod"]["deploy"]["parameters"]["confirm_changeset"]


# bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["preflight", "--config-env", "nope"], "no environment 'nope'"),
        (["preflight", "--config-env", "dev", "--config-file", "missing.toml"], "no missing.toml here"),
        (["preflight", "--region", "us-east-1", "--stack-name", "s"], "no DomainName"),
        (["adopt", "--region", "us-east-1", "--domain", DEV, "--stack-name", "s"], "give the environment to adopt"),
        (["adopt", "--config-env", "dev", "--alarm-email", "nobody"], "is not an e-mail address"),
        (["init", "--config-env", "Bad_Name", "--domain", DEV, "--region", "us-east-1"], "new environment's name"),
        (["init", "--config-env", "dev2", "--domain", "Not A Domain", "--region", "us-east-1"], "not a lower-case"),
        # an internationalised name: DNS, SES and the template take its ASCII form
        (
            ["init", "--config-env", "dev2", "--domain", "\u4e2d\u6587.tw", "--region", "us-east-1"],
            "form, xn--fiq228c.tw",
        ),
        (["init", "--config-env", "dev2", "--domain", DEV, "--region", "eu-south-2"], "does not receive mail"),
        (["init", "--config-env", "dev", "--domain", DEV, "--region", "us-east-1", "--yes"], "already exists"),
    ],
)
def test_deploy_commands_refuse_bad_input_in_one_line(cli: Cli, workdir: Path, argv: list[str], message: str) -> None:
    # GIVEN the team's samconfig and a bad argument
    (workdir / "samconfig.toml").write_text(PLAIN_SAMCONFIG)

    # WHEN the command runs
    result = cli(*argv)

    # THEN one line on stderr, exit 2, no traceback
    assert result.code == 2, result.out
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_preflight_without_credentials_could_not_run(cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no AWS credentials anywhere
    (workdir / "samconfig.toml").write_text(PLAIN_SAMCONFIG)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    # WHEN preflight runs
    result = cli("preflight", "--config-env", "dev")

    # THEN exit 2 with the one-line reason
    assert result.code == 2
    assert "no AWS credentials" in result.err


# the checks on hand-made facts ----------------------------------------------------------------------------


def settings(**parameters: str) -> Settings:
    return Settings.of(
        {"EnvironmentName": "dev", "DomainName": DEV, **parameters}, "email-forwarder-dev", "us-east-1", "dev"
    )


def in_zones(records: dict[Zone, dict[tuple[str, str], list[str]]], **facts: Any) -> Facts:
    """The facts of an account whose hosted zones hold these records (zone -> its records), and the `facts` given."""
    named: dict[str, list[Zone]] = {}
    for zone in records:
        named.setdefault(zone.name, []).append(zone)
    zones = {zone.id: zone for zone in records}
    return Facts(account="1", zones=zones, zones_named=named, records={z.id: r for z, r in records.items()}, **facts)


def test_preflight_the_stacks_own_resources_are_not_collisions() -> None:
    # GIVEN a deployed stack that created the identity and the zone, and manages the records in it
    facts = in_zones(
        {
            Zone("ZOWN", DEV): {
                (DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"],
                (f"_dmarc.{DEV}", "TXT"): ["x"],
            }
        },
        stack_status="UPDATE_COMPLETE",
        owned={
            "AWS::SES::EmailIdentity": {DEV},
            "AWS::Route53::HostedZone": {"ZOWN"},
            "AWS::Route53::RecordSetGroup": {"records"},
            "AWS::SES::ReceiptRule": {"email-forwarder-dev"},
        },
        logical={"EmailIdentity", "DkimRecords", "HostedZone", "InboundMxRecord", "DmarcRecord", "ReceiptRule"},
        identity={"IdentityType": "DOMAIN"},
        active_rule_set="email-forwarder",
        rule_sets={"email-forwarder": [{"Name": "email-forwarder-dev", "Enabled": True, "Recipients": [DEV]}]},
    )

    # WHEN preflight judges it
    rows = evaluate(settings(), facts)

    # THEN nothing is a finding
    assert [r for r in rows if r.severity != Severity.OK] == []


def test_preflight_counts_the_functions_own_reservation_as_affordable() -> None:
    # GIVEN an account with 105 concurrency, 100 unreserved because the stack's function reserves 5 already
    facts = Facts(account="1", concurrency=(105, 100), function_reserved=5)

    # WHEN preflight judges ReservedConcurrency=5 and 6 (the download function unreserved)
    kept = evaluate(settings(ReservedConcurrency="5", DownloadConcurrency="0"), facts)
    more = evaluate(settings(ReservedConcurrency="6", DownloadConcurrency="0"), facts)

    # THEN keeping 5 is fine, 6 would take the unreserved pool below 100
    assert next(r for r in kept if r.check == "concurrency").severity == Severity.OK
    assert next(r for r in more if r.check == "concurrency").severity == Severity.ERROR


def test_preflight_flags_a_mail_from_mx_of_another_region() -> None:
    # GIVEN an adopted MAIL FROM domain whose MX points at us-west-2's feedback endpoint, for a us-east-1 stack
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (f"bounces.{DEV}", "MX"): ["10 feedback-smtp.us-west-2.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): ['"v=spf1 include:amazonses.com ~all"'],
            }
        },
    )

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)

    # THEN a warning says so and the fix adds this region's endpoint, keeping the other
    row = next(r for r in rows if r.check == "MAIL FROM records" and r.severity != Severity.OK)
    assert row.severity == Severity.WARNING
    assert "another region's feedback endpoint (feedback-smtp.us-west-2.amazonses.com)" in row.problem
    assert "10 feedback-smtp.us-west-2.amazonses.com" in row.fix
    assert "10 feedback-smtp.us-east-1.amazonses.com" in row.fix


def test_preflight_asks_for_the_dkim_records_of_an_existing_identity() -> None:
    # GIVEN an adopted identity whose DKIM is pending and whose CNAMEs are not in the zone
    identity = {"DkimAttributes": {"Status": "PENDING", "Tokens": ["t1", "t2", "t3"]}}
    facts = in_zones({Zone("ZDEV", DEV): {}}, identity=identity)

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN an error lists the three records to add
    row = next(r for r in rows if r.check == "DKIM records")
    assert row.severity == Severity.ERROR
    assert f"t2._domainkey.{DEV}  CNAME  t2.dkim.amazonses.com" in row.fix


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        ([], True),
        ([DEV], True),
        ([f"team@{DEV}"], True),
        ([".aws-educate.tw"], True),
        ([APEX], False),
        (["other.example.org"], False),
    ],
)
def test_preflight_covers_matches_recipients_like_ses(recipients: list[str], expected: bool) -> None:
    assert covers(recipients, DEV) is expected


def test_preflight_names_the_ns_collision_when_the_parent_zone_id_is_real(
    cli: Cli, account: Account, workdir: Path
) -> None:
    # GIVEN dev with the apex zone's real id as ParentHostedZoneId, while the hand-made dev zone is delegated
    (workdir / "samconfig.toml").write_text(
        PLAIN_SAMCONFIG.replace(
            '"DomainName=dev.aws-educate.tw",', f'"DomainName={DEV}", "ParentHostedZoneId={account.apex_zone}",'
        )
    )

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN the NS record in the apex zone is a collision, fixed by adopting the delegated zone
    assert result.code == 1
    collision = next(f for f in findings(result.out) if f["check"] == "NS delegation")
    assert collision["resource"] == f"{DEV} NS in {APEX} ({account.apex_zone})"
    assert "already exists" in collision["problem"]
    assert collision["fix"].startswith(f"HostedZoneId={account.dev_zone} ParentHostedZoneId=")


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        ("ROLLBACK_COMPLETE", "aws cloudformation delete-stack --stack-name email-forwarder-dev"),
        ("UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback"),
        ("UPDATE_IN_PROGRESS", "wait for it to finish"),
    ],
)
def test_preflight_stops_on_a_stack_that_cannot_take_an_update(status: str, fix: str) -> None:
    # GIVEN a stack left by an earlier deploy in a state CloudFormation cannot update
    facts = Facts(account="1", stack_status=status)

    # WHEN preflight judges it
    row = next(r for r in evaluate(settings(), facts) if r.check == "stack")

    # THEN it is an error with the way out
    assert row.severity == Severity.ERROR
    assert fix in row.fix


def test_preflight_warns_when_the_parent_does_not_delegate_to_the_adopted_zone() -> None:
    # GIVEN an adopted dev zone, and an apex zone that delegates dev to other name servers
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org.", "ns-2.awsdns-02.com."]},
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns1.old-provider.example."]},
        }
    )

    # WHEN preflight judges HostedZoneId=ZDEV
    rows = evaluate(settings(HostedZoneId="ZDEV"), facts)

    # THEN a warning gives the UPSERT that delegates to the adopted zone
    row = next(r for r in rows if r.check == "NS delegation")
    assert row.severity == Severity.WARNING
    assert "ns1.old-provider.example" in row.problem
    assert "--hosted-zone-id ZAPEX" in row.fix
    assert "ns-1.awsdns-01.org" in row.fix


def test_adopt_refuses_parameter_overrides_it_cannot_edit(cli: Cli, account: Account, workdir: Path) -> None:
    # GIVEN a samconfig whose dev parameter_overrides is a number
    text = PLAIN_SAMCONFIG.split("# --- dev")[0] + '[dev.deploy.parameters]\nstack_name = "s"\nregion = "us-east-1"\n'
    (workdir / "samconfig.toml").write_text(text + "parameter_overrides = 3\n")

    # WHEN adopt runs with a domain
    result = cli("adopt", "--config-env", "dev", "--domain", DEV, "--yes")

    # THEN one line, exit 2
    assert result.code == 2, result.out
    assert "parameter_overrides is neither a string nor a list" in result.err


def test_preflight_stops_a_mode_switch_that_would_delete_what_the_stack_made() -> None:
    # GIVEN a stack that created the identity and the MX record, and one of the older template holding the rule set
    facts = Facts(
        account="1",
        stack_status="UPDATE_COMPLETE",
        owned={"AWS::SES::EmailIdentity": {DEV}, "AWS::SES::ReceiptRuleSet": {"email-forwarder"}},
        logical={"EmailIdentity", "DkimRecords", "InboundMxRecord", "ReceiptRuleSet"},
    )

    # WHEN the environment now says the identity and the MX are `existing`
    rows = evaluate(settings(EmailIdentityMode="existing", MxRecordMode="existing"), facts)

    # THEN each switch is an error (CloudFormation would delete them), the rule set a warning to read the change set
    switches = {r.resource: r.severity for r in rows if r.check == "mode switch"}
    assert switches == {
        "EmailIdentityMode=existing": Severity.ERROR,
        "MxRecordMode=existing": Severity.ERROR,
        "rule set email-forwarder": Severity.WARNING,
    }


def test_preflight_tells_the_stacks_own_log_group_from_a_leftover(cli: Cli, account: Account, workdir: Path) -> None:
    # GIVEN a dev stack that owns the forwarder's log group, and the download function's log group left outside it
    import boto3

    (workdir / "samconfig.toml").write_text(PLAIN_SAMCONFIG)
    group = {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/lambda/email-forwarder-dev/forwarder"}}
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="email-forwarder-dev", TemplateBody=json.dumps({"Resources": {"ForwarderLogGroup": group}})
    )
    boto3.client("logs", region_name="us-east-1").create_log_group(
        logGroupName="/aws/lambda/email-forwarder-dev/download"
    )

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN only the leftover is a finding, with the command that removes it
    leftovers = [f for f in findings(result.out) if f["check"] == "log groups"]
    assert [f["resource"] for f in leftovers] == ["/aws/lambda/email-forwarder-dev/download"]
    assert "aws logs delete-log-group --log-group-name /aws/lambda/email-forwarder-dev/download" in leftovers[0]["fix"]
    stack = next(f for f in json.loads(result.out)["passed"] if f["check"] == "stack")
    assert stack["problem"].startswith("CREATE_COMPLETE")


# review: account states the first version missed ---------------------------------------------------------


def test_preflight_counts_the_download_functions_reservation_against_a_new_account(
    cli: Cli, account: Account, samconfig: Path
) -> None:
    # GIVEN a new account's Lambda concurrency (10: nothing to reserve), and dev reserving nothing for the
    # forwarder but the template's default DownloadConcurrency=2 for the download function

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN the download function's reservation is the error that would fail the deploy, fixed by 0
    concurrency = next(f for f in findings(result.out) if f["check"] == "concurrency")
    assert concurrency["severity"] == "error"
    assert concurrency["resource"] == "ReservedConcurrency=0 DownloadConcurrency=2"
    assert concurrency["fix"].startswith("ReservedConcurrency=0 DownloadConcurrency=0 (`forwarder adopt`)")
    # AND adopt writes DownloadConcurrency=0, after which preflight passes
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0
    assert overrides(samconfig, "dev")["DownloadConcurrency"] == "0"
    assert cli("preflight", "--config-env", "dev").code == 0


def test_preflight_lowers_the_download_reservation_before_the_forwarders() -> None:
    # GIVEN an account that can afford 3 more reserved executions, and ReservedConcurrency=5 DownloadConcurrency=2
    facts = Facts(account="1", concurrency=(1000, 103))
    wanted = settings(ReservedConcurrency="5", DownloadConcurrency="2")

    # WHEN preflight judges it and adopt plans the parameters
    row = next(r for r in evaluate(wanted, facts) if r.check == "concurrency")
    changes = plan_overrides(wanted, facts)

    # THEN the forwarder keeps what fits, the download function is left unreserved
    assert row.severity == Severity.ERROR
    assert row.fix.startswith("ReservedConcurrency=3 DownloadConcurrency=0")
    assert changes["ReservedConcurrency"] == "3"
    assert changes["DownloadConcurrency"] == "0"


@pytest.mark.parametrize(
    ("operation", "check"),
    [
        ("sesv2.GetEmailIdentity", "SES identity"),
        ("route53.ListHostedZonesByName", "hosted zone"),
        ("route53.ListResourceRecordSets", "hosted zone"),
        ("cloudformation.DescribeStacks", "stack"),
    ],
)
def test_preflight_reports_a_refused_read_as_could_not_check_and_nothing_else(
    cli: Cli, account: Account, below_moto: BelowMoto, workdir: Path, operation: str, check: str
) -> None:
    # GIVEN dev adopted already, and an identity that may not make one of preflight's reads
    (workdir / "samconfig.toml").write_text(PLAIN_SAMCONFIG)
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0
    below_moto.refused[operation] = "AccessDeniedException"

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN it runs to the end; the read's check has one row, "could not check", with what to grant
    assert result.code == 0, result.out + result.err
    document = json.loads(result.out)
    rows = [f for f in document["findings"] + document["passed"] if f["check"] == check]
    assert [(f["severity"], f["problem"].split(":")[0]) for f in rows] == [("warning", "could not check")]
    assert "read access" in rows[0]["fix"]
    # AND the checks that judge what the read would have found say nothing on empty facts
    judged = {"SES identity": {"DKIM records", "MAIL FROM", "feedback"}, "hosted zone": {"MX record", "DKIM records"}}
    assert not {f["check"] for f in document["passed"] + document["findings"]} & judged.get(check, set())


@pytest.mark.parametrize(
    ("operation", "kept"),
    [
        ("sesv2.GetEmailIdentity", "EmailIdentityMode"),
        ("route53.ListHostedZonesByName", "HostedZoneId"),
        ("route53.ListResourceRecordSets", "MxRecordMode"),
    ],
)
def test_adopt_leaves_what_a_refused_read_would_decide(
    cli: Cli, account: Account, below_moto: BelowMoto, workdir: Path, operation: str, kept: str
) -> None:
    # GIVEN dev adopted already (the identity, the zone, the records), then a read that AWS refuses (throttled)
    path = workdir / "samconfig.toml"
    path.write_text(PLAIN_SAMCONFIG)
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0
    before = overrides(path, "dev")
    below_moto.refused[operation] = "Throttling"

    # WHEN adopt runs again
    result = cli("adopt", "--config-env", "dev", "--yes")

    # THEN the parameter that read decides stays as it was (an unread account is not an empty one)
    assert overrides(path, "dev")[kept] == before[kept], result.out
    assert "could not check: Throttling" in result.out
    assert "run preflight again" in result.out


def test_adopt_refuses_when_the_stack_cannot_be_read(
    cli: Cli, account: Account, below_moto: BelowMoto, samconfig: Path
) -> None:
    # GIVEN an identity that may not describe the stack (what it made would look hand-made)
    below_moto.refused["cloudformation.DescribeStacks"] = "AccessDenied"
    before = samconfig.read_text()

    # WHEN adopt runs
    result = cli("adopt", "--config-env", "dev", "--yes")

    # THEN it writes nothing and says why in one line
    assert result.code == 2
    assert "could not read the stack email-forwarder-dev (AccessDenied: refused DescribeStacks)" in result.err
    assert samconfig.read_text() == before


def _replace_record(zone: str, name: str, old_type: str, new_type: str, value: str) -> None:
    """Swap the record set of `old_type` at `name` for one of `new_type` (as someone did by hand)."""
    import boto3

    route53 = boto3.client("route53", region_name="us-east-1")
    found = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    old = next(r for r in found if r["Name"].rstrip(".") == name and r["Type"] == old_type)
    new = {"Name": name, "Type": new_type, "TTL": 300, "ResourceRecords": [{"Value": value}]}
    changes = [{"Action": "DELETE", "ResourceRecordSet": old}, {"Action": "CREATE", "ResourceRecordSet": new}]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})


def test_preflight_takes_a_dmarc_cname_for_the_record_it_is(cli: Cli, account: Account, samconfig: Path) -> None:
    # GIVEN dev's DMARC policy published through a DMARC service: a CNAME at _dmarc, no TXT
    _replace_record(account.dev_zone, f"_dmarc.{DEV}", "TXT", "CNAME", f"{DEV}._dmarc.reports.example.net")

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN the CNAME is the collision (Route 53 refuses a TXT beside it), fixed like a hand-made TXT
    dmarc = next(f for f in findings(result.out) if f["check"] == "DMARC record")
    assert dmarc["severity"] == "error"
    assert dmarc["resource"] == f"_dmarc.{DEV} CNAME in {account.dev_zone}"
    assert dmarc["fix"].startswith("DmarcRecordMode=existing")
    # AND adopt leaves the DMARC record to the service, after which preflight passes
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0
    assert overrides(samconfig, "dev")["DmarcRecordMode"] == "existing"
    again = cli("preflight", "--config-env", "dev", "--json")
    assert again.code == 0, again.out
    passed = next(f for f in json.loads(again.out)["passed"] if f["check"] == "DMARC record")
    assert "a CNAME to" in passed["problem"]


def test_preflight_names_a_cname_where_the_mail_from_records_go() -> None:
    # GIVEN a CNAME at bounces.<domain> in the adopted zone, and MailFromRecordsMode=create
    facts = in_zones(
        {Zone("ZDEV", DEV): {(f"bounces.{DEV}", "CNAME"): ["bounce.mailer.example.net."]}},
    )

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV"), facts)

    # THEN the stack's MX and TXT there would fail the deploy: an error that says what to do
    row = next(r for r in rows if r.check == "MAIL FROM records")
    assert row.severity == Severity.ERROR
    assert row.resource == f"bounces.{DEV} CNAME in ZDEV"
    assert row.fix.startswith("delete the CNAME")


def test_preflight_quotes_the_earlier_rule_for_the_shell() -> None:
    # GIVEN the team's earlier rule bounces some mail with a message that has an apostrophe
    bounce = {"BounceAction": {"Message": "This address doesn't exist", "Sender": f"postmaster@{DEV}"}}
    rule = {"Name": "forward-dev", "Enabled": True, "Recipients": [DEV], "Actions": [bounce]}
    facts = Facts(account="1", active_rule_set="team-rules", rule_sets={"team-rules": [rule]})

    # WHEN preflight prints the command that disables it
    row = next(r for r in evaluate(settings(ReceiptRuleSetMode="join-existing"), facts) if r.check == "earlier rule")
    command = row.fix.splitlines()[-1]

    # THEN the shell reads it as one --rule argument: the whole rule, disabled
    words = shlex.split(command)
    disabled = json.loads(words[words.index("--rule") + 1])
    assert disabled == {**rule, "Enabled": False}


def test_adopt_takes_the_zone_the_parent_delegates_to_when_there_are_two(
    cli: Cli, account: Account, samconfig: Path
) -> None:
    # GIVEN a second public zone dev.aws-educate.tw made by hand, and the apex delegating dev to the one listed last
    import boto3

    route53 = boto3.client("route53", region_name="us-east-1")
    route53.create_hosted_zone(Name=DEV, CallerReference="made-twice")
    listed = route53.list_hosted_zones_by_name(DNSName=DEV)["HostedZones"]
    first, last = [z["Id"].rsplit("/", 1)[-1] for z in listed if z["Name"] == f"{DEV}."]
    for zone, label in ((first, "ns-1"), (last, "ns-2")):  # moto gives every zone the same name servers
        servers = [f"{label}.awsdns-0{i}.org" for i in (1, 2)]
        _upsert_ns(zone, DEV, servers)
        if zone == last:
            _upsert_ns(account.apex_zone, DEV, servers)

    # WHEN preflight and adopt look up dev's zone by name
    result = cli("preflight", "--config-env", "dev", "--json")
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0

    # THEN both take the delegated one, the one the internet sees
    zone = next(f for f in findings(result.out) if f["check"] == "hosted zone" and f["severity"] == "error")
    assert zone["fix"].startswith(f"HostedZoneId={last} ")
    assert overrides(samconfig, "dev")["HostedZoneId"] == last


def _upsert_ns(zone: str, name: str, servers: list[str]) -> None:
    import boto3

    record = {"Name": name, "Type": "NS", "TTL": 3600, "ResourceRecords": [{"Value": s} for s in servers]}
    boto3.client("route53", region_name="us-east-1").change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
    )


def test_preflight_moves_an_adopted_zone_to_its_delegated_twin() -> None:
    # GIVEN two zones named dev (ZA, ZB), the apex delegating dev to ZB, and HostedZoneId=ZA
    facts = in_zones(
        {
            Zone("ZA", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
            Zone("ZB", DEV): {(DEV, "NS"): ["ns-2.awsdns-02.org."]},
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns-2.awsdns-02.org"]},
        }
    )

    # WHEN preflight judges HostedZoneId=ZA and adopt plans it
    rows = evaluate(settings(HostedZoneId="ZA"), facts)
    changes = plan_overrides(settings(HostedZoneId="ZA"), facts)

    # THEN the records would be seen by nobody: an error whose fix is the other zone (not re-pointing the apex)
    row = next(r for r in rows if r.check == "NS delegation")
    assert row.severity == Severity.ERROR
    assert row.fix == "HostedZoneId=ZB (`forwarder adopt`)"
    assert changes["HostedZoneId"] == "ZB"


def test_preflight_warns_of_two_apex_zones_it_cannot_tell_apart() -> None:
    # GIVEN two public zones of the apex (no parent zone in the account to say which one is delegated)
    facts = in_zones(
        {
            Zone("ZA", APEX): {(APEX, "NS"): ["ns-1.awsdns-01.org."]},
            Zone("ZB", APEX): {(APEX, "NS"): ["ns-2.awsdns-02.org."]},
        }
    )

    # WHEN preflight judges prod with HostedZoneId=ZA
    prod = Settings.of({"EnvironmentName": "prod", "DomainName": APEX, "HostedZoneId": "ZA"}, "s", PROD_REGION, "prod")
    row = next(r for r in evaluate(prod, facts) if r.check == "hosted zone" and r.severity != Severity.OK)

    # THEN a warning lists each zone's name servers to compare with the registrar's
    assert row.severity == Severity.WARNING
    assert "ZA: ns-1.awsdns-01.org; ZB: ns-2.awsdns-02.org" in row.fix


def test_init_keeps_the_domains_records_in_the_parent_zone_that_holds_them(cli: Cli, account: Account) -> None:
    # GIVEN staging's identity made by hand, its records published into the apex zone (what the SES console does
    # when the domain has no zone of its own), and no staging zone
    import boto3

    staging = f"staging.{APEX}"
    _mail_records(account.apex_zone, staging, "us-east-1")
    boto3.client("sesv2", region_name="us-east-1").create_email_identity(EmailIdentity=staging)

    # WHEN init writes the staging environment
    result = cli("init", "--config-env", "staging", "--domain", staging, "--region", "us-east-1", "--yes")

    # THEN the stack is to write its records into the apex zone, beside the hand-made ones it adopts: no staging
    # zone, no delegation (which would hide them: DKIM, MX), nothing for a person to move
    parameters = overrides(Path("samconfig.toml"), "staging")
    assert parameters["HostedZoneId"] == account.apex_zone
    assert parameters.get("ParentHostedZoneId", "") == ""
    assert parameters["EmailIdentityMode"] == "existing"
    assert parameters["MxRecordMode"] == "existing"
    assert "✗ hosted zone" not in result.out
    assert result.code == 0, result.out + result.err
    assert (
        f"the zone of {APEX}, which holds the records of {staging}" in cli("preflight", "--config-env", "staging").out
    )
    # AND adopt, with nothing to change, does not claim it wrote the file
    again = cli("adopt", "--config-env", "staging", "--yes")
    assert "nothing to adopt" in again.out
    assert "written" not in again.out


@pytest.mark.parametrize(("verified", "severity"), [(True, Severity.WARNING), (False, Severity.ERROR)])
def test_preflight_asks_for_the_dkim_records_of_an_existing_identity_in_the_zone_the_stack_creates(
    verified: bool, severity: Severity
) -> None:
    # GIVEN a hand-made identity of dev (its DKIM CNAMEs published outside this account), no zone of dev here
    identity = {"VerifiedForSendingStatus": verified, "DkimAttributes": {"Tokens": ["t1", "t2", "t3"]}}
    facts = Facts(account="1", identity=identity)

    # WHEN preflight judges the adopted identity with a zone the stack creates
    rows = evaluate(settings(EmailIdentityMode="existing"), facts)

    # THEN it says the new zone lacks the identity's DKIM CNAMEs: to add after the deploy, or, unverified, to
    # let the stack make the identity
    row = next(r for r in rows if r.check == "DKIM records")
    assert row.severity == severity
    assert row.resource == f"{DEV} (the zone the stack creates)"
    if verified:
        assert f"t3._domainkey.{DEV}  CNAME  t3.dkim.amazonses.com" in row.fix
    else:
        assert f"aws sesv2 delete-email-identity --email-identity {DEV}" in row.fix


def test_adopt_writes_the_domain_it_was_given(cli: Cli, account: Account, workdir: Path) -> None:
    # GIVEN dev's parameter_overrides without DomainName, and adopt told the domain with --domain
    path = workdir / "samconfig.toml"
    path.write_text(PLAIN_SAMCONFIG.replace('    "DomainName=dev.aws-educate.tw",\n', ""))

    # WHEN adopt writes dev's parameters for that domain
    result = cli("adopt", "--config-env", "dev", "--domain", DEV, "--yes")

    # THEN the domain is written with the zone ids looked up for it: sam deploy (and preflight) read it from there
    assert result.code == 0, result.out + result.err
    parameters = overrides(path, "dev")
    assert parameters["DomainName"] == DEV
    assert parameters["HostedZoneId"] == account.dev_zone
    assert cli("preflight", "--config-env", "dev").code == 0


def test_preflight_names_the_rules_of_an_inactive_set_the_stack_would_activate() -> None:
    # GIVEN no active rule set, and a set named like the environment's, made by hand, with an enabled rule for dev
    rule = {"Name": "old-forward", "Enabled": True, "Recipients": [DEV], "Actions": []}
    facts = Facts(account="1", active_rule_set=None, rule_sets={"email-forwarder": [rule]})

    # WHEN preflight judges create-and-activate
    rows = evaluate(settings(), facts)

    # THEN it says the set exists with that rule, which the activation turns on, and that it doubles dev's mail
    rule_set = next(r for r in rows if r.check == "rule set")
    assert rule_set.severity == Severity.WARNING
    assert "exists, not active, with rules (old-forward)" in rule_set.problem
    earlier = next(r for r in rows if r.check == "earlier rule")
    assert earlier.resource == "old-forward in email-forwarder"


def test_preflight_takes_a_rolled_back_import_for_the_stack_it_was() -> None:
    # GIVEN a stack whose resource import (adopted to managed) failed and rolled back, with the MX record it made
    facts = in_zones(
        {Zone("ZOWN", DEV): {(DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"]}},
        stack_status="IMPORT_ROLLBACK_COMPLETE",
        owned={"AWS::Route53::HostedZone": {"ZOWN"}},
        logical={"HostedZone", "InboundMxRecord"},
    )

    # WHEN preflight judges it
    rows = evaluate(settings(), facts)

    # THEN the stack takes the update, and its own record is no collision
    assert next(r for r in rows if r.check == "stack").severity == Severity.OK
    assert next(r for r in rows if r.check == "MX record").severity == Severity.OK


def test_preflight_finds_the_domains_records_in_the_parent_zone_behind_a_placeholder_parent_id() -> None:
    # GIVEN dev's records in the apex zone (no dev zone), and the old placeholder as ParentHostedZoneId
    records = {(DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"], (f"t1._domainkey.{DEV}", "CNAME"): ["x"]}
    facts = in_zones({Zone("ZAPEX", APEX): records})

    # WHEN preflight judges it
    rows = evaluate(settings(ParentHostedZoneId="Z0PLACEHOLDERAPEXZONE"), facts)

    # THEN both are errors, and the placeholder's fix does not delegate over the records: the fix keeps them
    # where they are, the stack's records beside them
    shadowed = next(r for r in rows if r.resource == f"{DEV} records in {APEX} (ZAPEX)")
    assert shadowed.severity == Severity.ERROR
    assert shadowed.fix.startswith("HostedZoneId=ZAPEX ParentHostedZoneId= ")
    placeholder = next(r for r in rows if r.resource == "ParentHostedZoneId=Z0PLACEHOLDERAPEXZONE")
    assert placeholder.fix.startswith("ParentHostedZoneId= (empty)")
    # AND with that fix, the apex zone is the one the stack writes into, and the records are checked there
    fixed = evaluate(settings(HostedZoneId="ZAPEX", ParentHostedZoneId="", MxRecordMode="existing"), facts)
    assert next(r for r in fixed if r.check == "hosted zone").severity == Severity.OK
    assert next(r for r in fixed if r.check == "MX record").severity == Severity.OK
    assert not [r for r in fixed if r.check == "hosted zone" and r.severity != Severity.OK]


def test_preflight_refuses_a_parent_zone_that_delegates_the_domain_elsewhere() -> None:
    # GIVEN the apex zone, which delegates dev to name servers of dev's own zone (kept elsewhere)
    records = {(DEV, "NS"): ["ns-1.awsdns-01.org."]}
    facts = in_zones({Zone("ZAPEX", APEX): records})

    # WHEN preflight judges HostedZoneId set to the apex zone
    rows = evaluate(settings(HostedZoneId="ZAPEX"), facts)

    # THEN it is an error: records written there are hidden by the delegation
    row = next(r for r in rows if r.check == "hosted zone" and r.severity != Severity.OK)
    assert row.severity == Severity.ERROR
    assert f"which delegates {DEV} to other name servers" in row.problem


def test_preflight_stops_existing_modes_behind_a_zone_the_stack_creates_and_delegates() -> None:
    # GIVEN dev's identity and MX left to what exists, with a zone the stack creates and delegates from the parent
    facts = Facts(account="1")
    delegated = settings(
        HostedZoneId="", ParentHostedZoneId="ZPARENT", EmailIdentityMode="existing", MxRecordMode="existing"
    )
    undelegated = settings(
        HostedZoneId="", ParentHostedZoneId="", EmailIdentityMode="existing", MxRecordMode="existing"
    )

    # WHEN preflight judges both
    rows = [r for r in evaluate(delegated, facts) if r.check == "parameters"]
    others = [r for r in evaluate(undelegated, facts) if r.check == "parameters"]

    # THEN the delegated one is stopped as the template's rule would stop it, naming both modes; without the
    # delegation (NS records added by hand elsewhere) the rule does not apply
    (row,) = rows
    assert row.severity == Severity.ERROR
    assert row.resource == "EmailIdentityMode, MxRecordMode"
    assert "DelegatedZoneHoldsTheMailRecords" in row.problem
    assert f"create the zone of {DEV}" in row.fix
    assert others == []


@pytest.mark.parametrize(
    ("mx", "caution"),
    [
        ("10 aspmx.l.google.com.", "careful: aspmx.l.google.com receive(s) the mail of"),
        ("10 inbound-smtp.us-west-2.amazonaws.com", ""),
    ],
)
def test_preflight_warns_before_an_mx_fix_that_takes_the_mail_from_a_mail_provider(mx: str, caution: str) -> None:
    # GIVEN an MX left to what exists that points at a mail provider, or at SES in another region
    facts = in_zones({Zone("ZDEV", DEV): {(DEV, "MX"): [mx]}})

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", MxRecordMode="existing"), facts)

    # THEN the fix repoints the MX, and says first that the provider's mail would go to SES (not for SES elsewhere)
    row = next(r for r in rows if r.check == "MX record")
    assert row.severity == Severity.WARNING
    assert "10 inbound-smtp.us-east-1.amazonaws.com" in row.fix
    assert row.fix.startswith(caution) and ("careful" in row.fix) == bool(caution)


def test_survey_reads_every_resource_of_a_stack_past_the_first_page() -> None:
    # GIVEN a stack of 130 resources, which CloudFormation lists in pages (DescribeStackResources stops at 100)
    import boto3
    from botocore.stub import Stubber

    from forwarder_ops.survey import Survey

    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    summaries = [
        {
            "LogicalResourceId": f"Resource{i}",
            "PhysicalResourceId": f"physical-{i}",
            "ResourceType": "AWS::Route53::RecordSet",
            "LastUpdatedTimestamp": "2026-11-30T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }
        for i in range(130)
    ]
    stack = {"StackName": "email-forwarder-dev", "CreationTime": "2026-11-30T00:00:00Z"}
    stack["StackStatus"] = "CREATE_COMPLETE"
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "email-forwarder-dev"})
        stub.add_response(
            "list_stack_resources",
            {"StackResourceSummaries": summaries[:100], "NextToken": "page-2"},
            {"StackName": "email-forwarder-dev"},
        )
        stub.add_response(
            "list_stack_resources",
            {"StackResourceSummaries": summaries[100:]},
            {"StackName": "email-forwarder-dev", "NextToken": "page-2"},
        )
        target = Target(name="dev", region="us-east-1", stack_name="email-forwarder-dev")
        target.client = lambda service: cloudformation  # type: ignore[method-assign]
        survey = Survey(target, settings())
        # WHEN the survey reads the stack
        survey.read_stack()
        stub.assert_no_pending_responses()
    # THEN it knows all 130 as the stack's own
    assert len(survey.facts.owned["AWS::Route53::RecordSet"]) == 130
    assert survey.facts.physical["Resource129"] == "physical-129"


def test_preflight_a_zone_the_stack_creates_with_no_parent_here_needs_the_registrar() -> None:
    # GIVEN a domain with no hosted zone, and no zone of this account above it (its parent is a registry)
    facts = Facts(account="1", zones={}, zones_named={DEV: [], "aws-educate.tw.": [], "tw.": []})
    # WHEN preflight judges the first deploy, the stack creating the zone
    rows = evaluate(settings(), facts)
    # THEN it warns that the registrar must name the new zone's name servers, or no mail arrives
    [delegation] = [r for r in rows if r.check == "NS delegation"]
    assert delegation.severity == Severity.WARNING
    assert "registrar" in delegation.fix and "forwarder doctor" in delegation.fix
    assert any(r.check == "hosted zone" and "the stack creates it" in r.problem for r in rows)


def test_init_that_cannot_finish_writing_leaves_samconfig_as_it_was(
    cli: Cli, account: Account, workdir: Path, fill_disk: Callable[[], None]
) -> None:
    # GIVEN a disk that fills up half way through any file write
    before = (workdir / "samconfig.toml").read_bytes()
    fill_disk()

    # WHEN init writes the new environment
    result = cli(
        "init", "--config-env", "staging", "--domain", "staging.aws-educate.tw", "--region", "us-east-1", "--yes"
    )

    # THEN one line, exit code 2, and samconfig.toml is the whole old file, no temporary file left beside it
    assert result.code == 2
    assert result.err.startswith("forwarder: cannot write samconfig.toml") and result.err.count("\n") == 1
    assert (workdir / "samconfig.toml").read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == ["samconfig.toml"]


def _route53_sets(zone: str, name: str, record_type: str) -> list[dict[str, Any]]:
    import boto3

    listed = boto3.client("route53", region_name="us-east-1").list_resource_record_sets(HostedZoneId=zone)
    return [r for r in listed["ResourceRecordSets"] if r["Name"].rstrip(".") == name and r["Type"] == record_type]


def _routed(zone: str, name: str, record_type: str, sets: list[tuple[dict[str, Any], list[str]]]) -> None:
    """Replace the record set of `name` `record_type` with routed ones (routing fields, values), as made by hand."""
    import boto3

    changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in _route53_sets(zone, name, record_type)]
    for routing, values in sets:
        record = {"Name": name, "Type": record_type, "TTL": 60, **routing, "ResourceRecords": []}
        record["ResourceRecords"] = [{"Value": v} for v in values]
        changes.append({"Action": "CREATE", "ResourceRecordSet": record})
    boto3.client("route53", region_name="us-east-1").change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": changes}
    )


def _run_fix(fix: str) -> None:
    """Run the `aws route53 change-resource-record-sets` command at the end of a finding's fix against moto."""
    import boto3

    words = shlex.split(fix.splitlines()[-1])
    assert words[:3] == ["aws", "route53", "change-resource-record-sets"], fix
    zone, batch = words[words.index("--hosted-zone-id") + 1], json.loads(words[words.index("--change-batch") + 1])
    boto3.client("route53", region_name="us-east-1").change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)


def test_preflight_upserts_routed_record_sets_each_with_its_set_identifier(
    cli: Cli, account: Account, samconfig: Path
) -> None:
    # GIVEN dev adopted, and then by hand: its MX as two weighted record sets (a mail provider's hosts), the MAIL FROM
    # TXT as a failover pair without SPF
    assert cli("adopt", "--config-env", "dev", "--yes").code == 0
    weighted = [
        ({"SetIdentifier": "provider-a", "Weight": 70}, ["10 mx1.provider.example."]),
        ({"SetIdentifier": "provider-b", "Weight": 30}, ["10 mx2.provider.example."]),
    ]
    _routed(account.dev_zone, DEV, "MX", weighted)
    failover = [
        ({"SetIdentifier": "main", "Failover": "PRIMARY"}, ['"site-verification=main"']),
        ({"SetIdentifier": "spare", "Failover": "SECONDARY"}, ['"site-verification=spare"']),
    ]
    _routed(account.dev_zone, f"bounces.{DEV}", "TXT", failover)

    # WHEN preflight gives the UPSERTs that point the MX at SES and add the SPF record, and the operator runs them
    rows = findings(cli("preflight", "--config-env", "dev", "--json").out)
    mx = next(f for f in rows if f["check"] == "MX record" and f["severity"] == "warning")
    spf = next(f for f in rows if f["resource"] == f"bounces.{DEV} TXT in {account.dev_zone}")
    _run_fix(mx["fix"])
    _run_fix(spf["fix"])

    # THEN each routed record set was changed in place, keeping its identifier, routing and TTL; no simple record
    # set was added beside them (Route 53 refuses one)
    listed = _route53_sets(account.dev_zone, DEV, "MX")
    assert sorted(str(r.get("SetIdentifier")) for r in listed) == ["provider-a", "provider-b"]
    mx_sets = {r["SetIdentifier"]: r for r in listed}
    assert {k: mx_sets[k]["Weight"] for k in mx_sets} == {"provider-a": 70, "provider-b": 30}
    for record in mx_sets.values():
        assert record["TTL"] == 60
        assert record["ResourceRecords"] == [{"Value": "10 inbound-smtp.us-east-1.amazonaws.com"}]
    listed = _route53_sets(account.dev_zone, f"bounces.{DEV}", "TXT")
    assert sorted(str(r.get("SetIdentifier")) for r in listed) == ["main", "spare"]
    txt_sets = {r["SetIdentifier"]: r for r in listed}
    assert {k: r["Failover"] for k, r in txt_sets.items()} == {"main": "PRIMARY", "spare": "SECONDARY"}
    assert [v["Value"] for v in txt_sets["main"]["ResourceRecords"]] == [
        '"site-verification=main"',
        '"v=spf1 include:amazonses.com ~all"',
    ]
    assert [v["Value"] for v in txt_sets["spare"]["ResourceRecords"]] == [
        '"site-verification=spare"',
        '"v=spf1 include:amazonses.com ~all"',
    ]


def test_adopt_refuses_a_zone_the_parent_delegates_outside_the_account(
    cli: Cli, account: Account, samconfig: Path
) -> None:
    # GIVEN the hand-made dev zone, while the apex zone delegates dev to another DNS provider: that provider answers
    # for dev, and the records of the zone in this account are seen by nobody
    outside = ["ns1.old-provider.example.", "ns2.old-provider.example."]
    _upsert_ns(account.apex_zone, DEV, outside)
    before = samconfig.read_text()

    # WHEN adopt looks up dev's zone by name
    refused = cli("adopt", "--config-env", "dev", "--yes")

    # THEN it does not choose that zone: one line that says why and how to choose it anyway, nothing written
    assert refused.code == 2, refused.out + refused.err
    assert refused.err.strip().count("\n") == 0
    assert "ns1.old-provider.example, ns2.old-provider.example, outside this account" in refused.err
    assert f"--hosted-zone-id {account.dev_zone}" in refused.err
    assert samconfig.read_text() == before
    # AND preflight's fix for the zone names that choice too
    zone = next(
        f for f in findings(cli("preflight", "--config-env", "dev", "--json").out) if f["check"] == "hosted zone"
    )
    assert f"`forwarder adopt --hosted-zone-id {account.dev_zone}` once you mean to move the delegation" in zone["fix"]

    # WHEN the operator names a zone that is not dev's
    wrong = cli("adopt", "--config-env", "dev", "--yes", "--hosted-zone-id", "ZNOSUCHZONE")

    # THEN nothing is written either
    assert wrong.code == 2
    assert "--hosted-zone-id ZNOSUCHZONE is no hosted zone of this account" in wrong.err
    assert samconfig.read_text() == before

    # WHEN the operator names dev's zone
    chosen = cli("adopt", "--config-env", "dev", "--yes", "--hosted-zone-id", f"/hostedzone/{account.dev_zone}")

    # THEN it is adopted, and what is left is the delegation to move, with its command
    assert chosen.code == 0, chosen.out + chosen.err
    assert overrides(samconfig, "dev")["HostedZoneId"] == account.dev_zone
    assert overrides(samconfig, "dev").get("ParentHostedZoneId", "") == ""
    assert "ns1.old-provider.example" in chosen.out
    assert f"--hosted-zone-id {account.apex_zone}" in chosen.out


def test_adopt_takes_a_zone_the_parent_delegates_to() -> None:
    # GIVEN the apex zone delegating dev to the name servers of dev's zone in this account (the case adopt takes)
    servers = ["ns-1.awsdns-01.org.", "ns-2.awsdns-02.com."]
    facts = in_zones({Zone("ZDEV", DEV): {(DEV, "NS"): servers}, Zone("ZAPEX", APEX): {(DEV, "NS"): servers}})

    # WHEN adopt plans dev's parameters THEN it takes dev's zone by name
    assert facts.delegated_outside(DEV) == []
    assert plan_overrides(settings(), facts)["HostedZoneId"] == "ZDEV"


def test_preflight_fix_for_a_placeholder_zone_names_the_choice_when_the_parent_delegates_outside() -> None:
    # GIVEN a placeholder HostedZoneId, dev's zone in this account, and the apex delegating dev to another provider
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns1.old-provider.example."]},
        }
    )

    # WHEN preflight judges it
    row = next(r for r in evaluate(settings(HostedZoneId="Z0PLACEHOLDER"), facts) if r.check == "hosted zone")

    # THEN the fix is adopt naming dev's zone deliberately (adopt alone refuses to choose it)
    assert "`forwarder adopt --hosted-zone-id ZDEV` once you mean to move the delegation" in row.fix
    assert "ns1.old-provider.example, outside this account" in row.fix
