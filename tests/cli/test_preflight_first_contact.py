"""`forwarder preflight` and `adopt` on first-contact states earlier tests did not cover: parameter values
written by hand that the template refuses, identities set up the old way, names under the stack's prefix."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from forwarder_ops.envconfig import Target
from forwarder_ops.preflight import Severity, evaluate
from forwarder_ops.survey import Facts, Settings, Zone, survey
from tests.cli.conftest import Cli
from tests.cli.team_account import APEX, DEV, PLAIN_SAMCONFIG, Account, BelowMoto
from tests.cli.test_preflight import account, below_moto, in_zones, overrides  # noqa: F401  (the team's account in moto)

STACK = "email-forwarder-dev"


def settings(**parameters: str) -> Settings:
    return Settings.of({"EnvironmentName": "dev", "DomainName": DEV, **parameters}, STACK, "us-east-1", "dev")


@pytest.mark.parametrize(
    ("key", "value", "fix"),
    [
        ("DomainName", "Dev.AWS-Educate.tw.", f"DomainName={DEV}"),  # as the console shows it, with the root dot
        ("DomainName", "dev.bücher.example", "DomainName=dev.xn--bcher-kva.example"),  # an IDN in Unicode
        # the Id as the Route 53 API answers it
        ("HostedZoneId", "/hostedzone/Z08123456DEV", "HostedZoneId=Z08123456DEV"),
        ("MailFromSubdomain", "Bounces", "MailFromSubdomain"),
        ("SpamAction", "Tag", "SpamAction"),
        ("RetentionDays", "0", "RetentionDays"),
    ],
)
def test_preflight_refuses_a_parameter_value_the_template_refuses(key: str, value: str, fix: str) -> None:
    # GIVEN an environment whose parameter_overrides hold a value the template's constraints refuse, in an account
    # where its zone exists (preflight reads the domain and the zone id normalised, and found nothing wrong)
    facts = Facts(account="1", zones={value: Zone("ZDEV", DEV), "ZDEV": Zone("ZDEV", DEV)})
    facts.zones_named[DEV] = [Zone("ZDEV", DEV)]

    # WHEN preflight judges it
    rows = evaluate(settings(**{key: value}), facts)

    # THEN it is an error (CloudFormation refuses the change set), with the value the template takes when it is
    # the same one written otherwise
    row = next(r for r in rows if r.check == "parameters" and r.resource == key)
    assert row.severity == Severity.ERROR
    assert repr(value) in row.problem
    assert fix in row.fix


def test_preflight_refuses_an_environment_without_environment_name() -> None:
    # GIVEN parameter_overrides without EnvironmentName (the template has no default for it)
    bare = Settings.of({"DomainName": DEV}, STACK, "us-east-1", "dev")

    # WHEN preflight judges it
    rows = evaluate(bare, Facts(account="1"))

    # THEN the deploy would be refused: an error row says so
    row = next(r for r in rows if r.check == "parameters" and r.resource == "EnvironmentName")
    assert row.severity == Severity.ERROR


def test_preflight_passes_the_template_defaults_and_the_values_adopt_writes() -> None:
    # GIVEN the parameters adopt writes for a hand-made account (bare zone id, modes, the active set)
    adopted = settings(
        HostedZoneId="ZDEV",
        EmailIdentityMode="existing",
        ReceiptRuleSetMode="join-existing",
        ReceiptRuleSetName="team-rules",
        ReservedConcurrency="0",
        DownloadConcurrency="0",
    )

    # WHEN preflight judges them THEN no parameter row
    assert [r for r in evaluate(adopted, Facts(account="1")) if r.check == "parameters"] == []


def test_adopt_writes_the_domain_as_the_template_takes_it(
    cli: Cli,
    account: Account,  # noqa: F811  (the fixture)
    workdir: Path,
) -> None:
    # GIVEN dev's DomainName written as the console shows it: upper case, with the root's trailing dot
    path = workdir / "samconfig.toml"
    path.write_text(PLAIN_SAMCONFIG.replace(f'"DomainName={DEV}"', '"DomainName=Dev.AWS-Educate.tw."'))

    # WHEN preflight checks dev, then adopt writes its parameters
    before = cli("preflight", "--config-env", "dev", "--json")
    result = cli("adopt", "--config-env", "dev", "--yes")

    # THEN preflight names the value the template refuses, and adopt writes it in the form the template takes, with
    # the zone looked up for it: preflight then passes
    assert before.code == 1
    assert any(f["resource"] == "DomainName" for f in json.loads(before.out)["findings"])
    assert result.code == 0, result.out + result.err
    parameters = overrides(path, "dev")
    assert parameters["DomainName"] == DEV
    assert parameters["HostedZoneId"] == account.dev_zone
    assert cli("preflight", "--config-env", "dev").code == 0


@pytest.mark.parametrize("verified", [False, True])
def test_preflight_stops_on_an_adopted_identity_without_dkim_that_is_not_verified(verified: bool) -> None:
    # GIVEN the domain identity made with SES v1's VerifyDomainIdentity: DKIM never started (no tokens), verified
    # only by its `_amazonses` TXT record, which was never published (or was)
    identity = {
        "IdentityType": "DOMAIN",
        "VerifiedForSendingStatus": verified,
        "FeedbackForwardingStatus": False,
        "DkimAttributes": {"SigningEnabled": False, "Status": "NOT_STARTED"},
        "MailFromAttributes": {
            "MailFromDomain": f"bounces.{DEV}",
            "MailFromDomainStatus": "SUCCESS",
            "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
        },
    }
    facts = in_zones({Zone("ZDEV", DEV): {}}, identity=identity)

    # WHEN preflight judges the identity adopted as it is
    rows = evaluate(settings(EmailIdentityMode="existing", HostedZoneId="ZDEV"), facts)

    # THEN unverified, it is an error (SES refuses every forward), with the ways to verify it; verified, it is not
    errors = [r for r in rows if r.check == "SES identity" and r.severity == Severity.ERROR]
    if verified:
        assert errors == []
    else:
        assert len(errors) == 1
        assert "not verified" in errors[0].problem
        assert f"_amazonses.{DEV}" in errors[0].fix
        assert "delete-email-identity" in errors[0].fix


def test_preflight_takes_only_the_templates_log_group_names_for_leftovers(
    below_moto: BelowMoto,  # noqa: F811  (the fixture: what moto lacks)
) -> None:
    # GIVEN log groups under the stack's prefix that the template does not name (a team's own function logging
    # there, an older version's), and one it does, left over
    import boto3
    from moto import mock_aws

    with mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        for name in ("forwarder-old", "tools/cleanup", "download"):
            logs.create_log_group(logGroupName=f"/aws/lambda/{STACK}/{name}")
        facts = survey(Target(name="dev", region="us-east-1", stack_name=STACK), settings())

    # WHEN preflight judges dev
    rows = evaluate(settings(), facts)

    # THEN only the template's name is a collision: CloudFormation fails on nothing else
    assert [r.resource for r in rows if r.check == "log groups"] == [f"/aws/lambda/{STACK}/download"]


def test_preflight_stops_a_deploy_over_another_templates_stack_of_the_same_name(
    cli: Cli,
    account: Account,  # noqa: F811  (the fixture)
    workdir: Path,
) -> None:
    # GIVEN the team's earlier forwarder deployed by hand as a stack named like dev's: its bucket and function
    import boto3

    (workdir / "samconfig.toml").write_text(PLAIN_SAMCONFIG)
    earlier = {
        "Resources": {
            "InboxBucket": {"Type": "AWS::S3::Bucket"},
            "ForwardQueue": {"Type": "AWS::SQS::Queue"},
        }
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=STACK, TemplateBody=json.dumps(earlier)
    )

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN it stops the deploy: updating that stack into the forwarder would delete the earlier bucket and queue
    assert result.code == 1, result.out + result.err
    row = next(f for f in json.loads(result.out)["findings"] if f["check"] == "stack")
    assert row["severity"] == "error"
    assert "ForwardQueue, InboxBucket" in row["problem"]
    assert "stack_name" in row["fix"]
    assert "delete-stack" not in row["fix"]


@pytest.mark.parametrize(("behavior", "severity"), [("REJECT_MESSAGE", "error"), ("USE_DEFAULT_VALUE", "warning")])
def test_preflight_says_what_an_adopted_identity_does_when_its_mail_from_mx_is_gone(
    behavior: str, severity: str
) -> None:
    # GIVEN an adopted identity whose MAIL FROM domain SES verified, and whose MX someone has since deleted (the SPF
    # TXT is left); the identity either rejects a send when the MX is not found or falls back to amazonses.com
    identity = {
        "IdentityType": "DOMAIN",
        "VerifiedForSendingStatus": True,
        "DkimAttributes": {"SigningEnabled": True, "Status": "SUCCESS", "Tokens": ["t1"]},
        "MailFromAttributes": {
            "MailFromDomain": f"bounces.{DEV}",
            "MailFromDomainStatus": "SUCCESS",
            "BehaviorOnMxFailure": behavior,
        },
    }
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                ("t1._domainkey." + DEV, "CNAME"): ["t1.dkim.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): ['"v=spf1 include:amazonses.com ~all"'],
            }
        },
        identity=identity,
    )

    # WHEN preflight judges the records left to what exists
    adopted = settings(EmailIdentityMode="existing", MailFromRecordsMode="existing", HostedZoneId="ZDEV")
    row = next(r for r in evaluate(adopted, facts) if r.resource == f"bounces.{DEV} MX in ZDEV")

    # THEN it says what SES does once it finds the MX gone: refuse every forward (an error), or send with
    # amazonses.com (a warning); the fix adds the MX either way
    assert row.severity == severity
    assert ("refuses every forward" in row.problem) == (behavior == "REJECT_MESSAGE")
    assert ("sends with amazonses.com" in row.problem) == (behavior == "USE_DEFAULT_VALUE")
    assert "feedback-smtp.us-east-1.amazonses.com" in row.fix


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # `$` of a pattern also matches before a final newline: the value reached samconfig.toml, newline and all
        (["adopt", "--config-env", "dev", "--alarm-email", "team@example.org\n", "--yes"], "not an e-mail address"),
        (
            ["init", "--config-env", "stg\n", "--domain", f"stg.{DEV}", "--region", "us-east-1", "--yes"],
            "new environment's name",
        ),
        (
            [
                "init",
                "--config-env",
                "stg",
                "--domain",
                f"stg.{DEV}",
                "--region",
                "us-east-1",
                "--alarm-email",
                "a@b.co\n",
            ],
            "not an e-mail address",
        ),
        # init wrote any stack name; CloudFormation takes letters, digits and '-' only
        (
            ["init", "--config-env", "stg", "--domain", f"stg.{DEV}", "--region", "us-east-1", "--stack-name", "a b"],
            "not a CloudFormation stack name",
        ),
    ],
)
def test_adopt_and_init_refuse_a_value_samconfig_would_keep_but_the_deploy_refuses(
    cli: Cli, workdir: Path, argv: list[str], message: str
) -> None:
    # GIVEN the team's samconfig and a bad argument
    path = workdir / "samconfig.toml"
    path.write_text(PLAIN_SAMCONFIG)

    # WHEN adopt or init runs with it
    result = cli(*argv)

    # THEN one line, exit 2, before reading the account; samconfig.toml is as it was
    assert result.code == 2, result.out + result.err
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert path.read_text() == PLAIN_SAMCONFIG


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"SendingEnabled": True, "EnforcementStatus": "SHUTDOWN"}, "enforcement status SHUTDOWN"),
        ({"SendingEnabled": False, "EnforcementStatus": "HEALTHY"}, "put-account-sending-attributes --sending-enabled"),
    ],
)
def test_preflight_stops_a_deploy_into_a_region_where_sending_is_paused(answer: dict[str, object], words: str) -> None:
    # GIVEN an account with production access whose sending SES paused, or someone paused in the account
    import boto3
    from botocore.stub import Stubber

    from forwarder_ops.survey import Survey

    sesv2 = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(sesv2) as stub:
        stub.add_response("get_account", {"ProductionAccessEnabled": True, **answer})
        target = Target(name="dev", region="us-east-1", stack_name=STACK)
        target.client = lambda service: sesv2  # type: ignore[method-assign]
        reading = Survey(target, settings())
        # WHEN preflight reads the account and judges it
        reading.read_account()
    row = next(r for r in evaluate(settings(), reading.facts) if r.check == "sending")

    # THEN it is an error (the stack would receive and forward nothing), with what to do about it
    assert row.severity == Severity.ERROR
    assert words in row.problem + row.fix


@pytest.mark.parametrize(
    ("values", "problem", "fix"),
    [
        # a verification string someone put at _dmarc: a TXT record set (the stack cannot create its own), no policy
        (['"google-site-verification=abc"'], "holds no DMARC record", '"google-site-verification=abc"'),
        # two policies, from two people: RFC 7489 6.6.3, receivers apply neither
        (['"v=DMARC1; p=none"', '"v=DMARC1; p=reject"'], "2 DMARC records", '"v=DMARC1; p=none"'),
    ],
)
def test_preflight_reads_a_dmarc_txt_record_set_that_applies_no_policy(
    values: list[str], problem: str, fix: str
) -> None:
    # GIVEN dev's _dmarc TXT record set as someone left it, adopted (DmarcRecordMode=existing: it exists), and no
    # organisational policy in the account
    facts = in_zones({Zone("ZDEV", DEV): {(f"_dmarc.{DEV}", "TXT"): values}})

    # WHEN preflight judges it
    row = next(
        r
        for r in evaluate(settings(HostedZoneId="ZDEV", DmarcRecordMode="existing"), facts)
        if r.check == "DMARC record"
    )

    # THEN it is not "exists; left unmanaged": receivers apply no policy, and the fix keeps the record set's values
    # (an UPSERT replaces them all) with one DMARC record among them
    assert row.severity == Severity.WARNING
    assert problem in row.problem
    assert "receivers apply no" in row.problem
    change = json.loads(row.fix.split("--change-batch '")[1].rstrip("'"))
    written = [r["Value"] for r in change["Changes"][0]["ResourceRecordSet"]["ResourceRecords"]]
    assert fix in written
    assert sum(v.startswith('"v=DMARC1') for v in written) == 1


def test_preflight_warns_of_two_spf_records_at_an_adopted_mail_from_domain() -> None:
    # GIVEN dev's MAIL FROM records made by hand: the MX, and two SPF records (one with amazonses.com, one added later)
    mail_from = f"bounces.{DEV}"
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (mail_from, "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (mail_from, "TXT"): ['"v=spf1 include:amazonses.com ~all"', '"v=spf1 include:_spf.google.com ~all"'],
            }
        },
    )

    # WHEN preflight judges the records left to what exists
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)

    # THEN not "MX and SPF exist": two SPF records are a permerror, so SPF fails for every forward
    row = next(r for r in rows if r.resource == f"{mail_from} TXT in ZDEV")
    assert row.severity == Severity.WARNING
    assert "2 SPF records" in row.problem
    assert "merge them into one" in row.fix
    assert not [r for r in rows if r.problem == "MX and SPF exist; left unmanaged"]


@pytest.mark.parametrize("mode", ["create", "existing"])
def test_preflight_refuses_a_domain_that_is_another_identitys_mail_from_domain(mode: str) -> None:
    # GIVEN the apex identity's custom MAIL FROM domain mail.<apex> (its MX at SES's feedback endpoint, its SPF), in
    # the apex zone, and an environment for mail.<apex> writing into that zone (as adopt sets it)
    domain = f"mail.{APEX}"
    facts = in_zones(
        {
            Zone("ZAPEX", APEX): {
                (domain, "MX"): ["10 feedback-smtp.ap-northeast-1.amazonses.com"],
                (domain, "TXT"): ['"v=spf1 include:amazonses.com ~all"'],
            }
        },
    )
    mail = Settings.of(
        {"EnvironmentName": "mail", "DomainName": domain, "HostedZoneId": "ZAPEX", "MxRecordMode": mode},
        STACK,
        "ap-northeast-1",
        "mail",
    )

    # WHEN preflight judges it
    row = next(r for r in evaluate(mail, facts) if r.check == "MX record")

    # THEN it is an error whatever the mode: no "MxRecordMode=existing" (the domain would receive nothing), and no
    # UPSERT to SES's inbound endpoint (it would break the apex identity's MAIL FROM)
    assert row.severity == Severity.ERROR
    assert "MAIL FROM domain of another SES identity" in row.problem
    assert "another DomainName" in row.fix
    assert "MxRecordMode=existing" not in row.fix
    assert "inbound-smtp" not in row.fix


def test_preflight_quotes_a_record_value_with_a_quote_in_the_upsert_for_the_shell() -> None:
    # GIVEN dev's MAIL FROM TXT record set made by hand without amazonses.com, one of its values holding a quote (and
    # what a shell would run after it)
    mail_from = f"bounces.{DEV}"
    hostile = '"note: it\'s $(touch pwned) here"'
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (mail_from, "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (mail_from, "TXT"): ['"v=spf1 ~all"', hostile],
            }
        },
    )

    # WHEN preflight prints the UPSERT that adds amazonses.com
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)
    row = next(r for r in rows if r.resource == f"{mail_from} TXT in ZDEV")

    # THEN a shell reads the command as one change batch holding every value as it is: nothing of it runs
    words = shlex.split(row.fix)
    batch = json.loads(words[words.index("--change-batch") + 1])
    written = [r["Value"] for r in batch["Changes"][0]["ResourceRecordSet"]["ResourceRecords"]]
    assert written == ['"v=spf1 include:amazonses.com ~all"', hostile]
    assert words[-1] == words[words.index("--change-batch") + 1]


@pytest.mark.parametrize("verified", [True, False])
def test_preflight_says_whether_deleting_a_colliding_identity_stops_sending(verified: bool) -> None:
    # GIVEN the domain's identity made by hand in the region, verified or not, and EmailIdentityMode=create
    identity = {"IdentityType": "DOMAIN", "VerifiedForSendingStatus": verified, "DkimAttributes": {}}
    facts = Facts(account="1", identity=identity)

    # WHEN preflight judges it
    row = next(r for r in evaluate(settings(), facts) if r.check == "SES identity")

    # THEN a collision either way; "do not delete it" only for one that sends: an unverified one sends nothing, and
    # deleting it lets the stack create it with its DKIM records
    assert row.severity == Severity.ERROR
    assert "AlreadyExists" in row.problem
    assert ("Do not delete it" in row.problem) == verified
    assert ("delete-email-identity" in row.fix) == (not verified)
    assert "EmailIdentityMode=existing" in row.fix
