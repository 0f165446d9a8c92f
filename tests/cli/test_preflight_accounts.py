"""`forwarder preflight` and `adopt` on account states a first contact meets that the team's account does not
have: stacks stopped half way, records shared with other uses of a name, identities set up another way."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from forwarder_ops.adopt import plan_overrides
from forwarder_ops.preflight import Finding, Severity, evaluate
from forwarder_ops.survey import Facts, Settings, Zone
from tests.cli.conftest import Cli
from tests.cli.team_account import APEX, DEV, PLAIN_SAMCONFIG, TEAM_RULE_SET
from tests.cli.test_preflight import account, below_moto, in_zones  # noqa: F401  (the team's account in moto)

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


@pytest.mark.parametrize("status", ["UPDATE_FAILED", "UPDATE_ROLLBACK_FAILED", "UPDATE_IN_PROGRESS"])
def test_adopt_keeps_create_for_the_records_a_stack_holds_while_it_is_not_settled(status: str) -> None:
    # GIVEN a deployed stack that created the MX, MAIL FROM and DMARC records in the team's zone, caught in a state
    # that takes no update now (the operator runs adopt before settling it)
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"],
                (f"bounces.{DEV}", "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): ['"v=spf1 include:amazonses.com ~all"'],
                (f"_dmarc.{DEV}", "TXT"): ['"v=DMARC1; p=none"'],
            }
        },
        stack_status=status,
        owned={"AWS::Route53::RecordSet": {DEV, f"_dmarc.{DEV}"}, "AWS::Route53::RecordSetGroup": {"mailfrom"}},
        logical={"InboundMxRecord", "MailFromRecords", "DmarcRecord"},
    )

    # WHEN adopt plans the parameters
    changes = plan_overrides(settings(HostedZoneId="ZDEV"), facts)

    # THEN the stack's own records stay `create`: `existing` would take them out of the stack, and CloudFormation
    # deletes them in the next update (mail to the domain bounces)
    assert {k: v for k, v in changes.items() if k.endswith("RecordsMode") or k.endswith("RecordMode")} == {}


def test_survey_takes_no_deleted_resource_for_one_the_stack_holds() -> None:
    # GIVEN a stack whose creation rolled back: CloudFormation still lists what it created and deleted again
    import boto3
    from botocore.stub import Stubber

    from forwarder_ops.envconfig import Target
    from forwarder_ops.survey import Survey

    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    summaries = [
        {
            "LogicalResourceId": logical,
            "PhysicalResourceId": physical,
            "ResourceType": kind,
            "LastUpdatedTimestamp": "2026-11-30T00:00:00Z",
            "ResourceStatus": status,
        }
        for logical, physical, kind, status in (
            ("HostedZone", "ZGONE", "AWS::Route53::HostedZone", "DELETE_COMPLETE"),
            ("InboundMxRecord", DEV, "AWS::Route53::RecordSet", "DELETE_COMPLETE"),
            ("MailBucket", "kept-bucket", "AWS::S3::Bucket", "DELETE_SKIPPED"),
        )
    ]
    stack = {"StackName": STACK, "CreationTime": "2026-11-30T00:00:00Z", "StackStatus": "ROLLBACK_COMPLETE"}
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": STACK})
        stub.add_response("list_stack_resources", {"StackResourceSummaries": summaries}, {"StackName": STACK})
        target = Target(name="dev", region="us-east-1", stack_name=STACK)
        target.client = lambda service: cloudformation  # type: ignore[method-assign]
        survey = Survey(target, settings())

        # WHEN the survey reads the stack
        survey.read_stack()

    # THEN what the rollback deleted is not the stack's (a zone of the domain made since is hand-made)
    assert not survey.facts.owns("AWS::Route53::HostedZone")
    assert "InboundMxRecord" not in survey.facts.logical
    assert survey.facts.owns("AWS::S3::Bucket", "kept-bucket") is False  # retained: out of the stack, left as it is


def test_preflight_stops_a_mode_switch_on_a_stack_whose_update_stopped() -> None:
    # GIVEN a stack in UPDATE_FAILED (it takes the next update) that created the inbound MX
    facts = Facts(account="1", stack_status="UPDATE_FAILED", logical={"InboundMxRecord"})

    # WHEN preflight judges MxRecordMode=existing
    rows = evaluate(settings(MxRecordMode="existing"), facts)

    # THEN the switch is an error: the update that resumes would delete the MX
    row = next(r for r in rows if r.check == "mode switch")
    assert row.severity == Severity.ERROR


def test_preflight_adds_amazonses_to_the_mail_from_spf_it_finds_keeping_every_other_value() -> None:
    # GIVEN an adopted MAIL FROM domain whose TXT record set holds the team's SPF (another provider's include) and
    # a verification string, and an MX at this region's feedback endpoint
    spf = '"v=spf1 include:_spf.google.com ~all"'
    verification = '"google-site-verification=abc123"'
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (f"bounces.{DEV}", "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): [spf, verification],
            }
        },
    )

    # WHEN preflight judges MailFromRecordsMode=existing
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)

    # THEN the fix's UPSERT (which replaces the whole TXT set) keeps the verification string and the other include,
    # and adds amazonses.com to the one SPF record (a second `v=spf1` record makes SPF fail with a permerror)
    row = next(r for r in rows if r.check == "MAIL FROM records" and "TXT" in r.resource)
    change = json.loads(row.fix.split("--change-batch ", 1)[1].strip("'"))
    values = [v["Value"] for v in change["Changes"][0]["ResourceRecordSet"]["ResourceRecords"]]
    assert verification in values
    assert [v for v in values if "v=spf1" in v] == ['"v=spf1 include:amazonses.com include:_spf.google.com ~all"']


@pytest.mark.parametrize("mode", ["create", "existing"])
def test_preflight_refuses_a_domain_that_is_a_cname_in_the_zone_holding_its_records(mode: str) -> None:
    # GIVEN no zone of dev, and in the apex zone a CNAME at dev (a web host) beside dev's hand-made DKIM records
    facts = in_zones(
        {
            Zone("ZAPEX", APEX): {
                (DEV, "CNAME"): ["dev-site.example.net"],
                (f"t1._domainkey.{DEV}", "CNAME"): ["t1.dkim.amazonses.com"],
            }
        },
    )

    # WHEN preflight judges the records in the apex zone (adopt's HostedZoneId)
    rows = evaluate(settings(HostedZoneId="ZAPEX", MxRecordMode=mode), facts)

    # THEN the MX row is an error naming the CNAME: Route 53 refuses an MX beside it, so the deploy fails (create)
    # or no MX can ever be published (existing); neither is "the stack creates it"
    row = next(r for r in rows if r.check == "MX record")
    assert row.severity == Severity.ERROR
    assert row.resource == f"{DEV} CNAME in ZAPEX"
    assert "dev-site.example.net" in row.problem
    assert "MxRecordMode" not in row.fix


BYODKIM = {"SigningEnabled": True, "SigningAttributesOrigin": "EXTERNAL", "Tokens": ["team2026"]}


@pytest.mark.parametrize("status", ["SUCCESS", "PENDING"])
def test_preflight_finds_the_public_key_of_an_identity_with_its_own_dkim_key(status: str) -> None:
    # GIVEN an adopted identity with Bring Your Own DKIM (SES answers the selector as its one token), whose public
    # key is published as a TXT record at the selector
    identity = {"DkimAttributes": {**BYODKIM, "Status": status}}
    records = {(f"team2026._domainkey.{DEV}", "TXT"): ['"v=DKIM1; k=rsa; p=MIIBIjAN"']}
    facts = in_zones({Zone("ZDEV", DEV): records})
    facts.identity = identity

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN the DKIM row is fine: no Easy DKIM CNAME is asked for (one at the selector would be refused beside the TXT)
    row = next(r for r in rows if r.check == "DKIM records")
    assert row.severity == Severity.OK
    assert "dkim.amazonses.com" not in row.problem + row.fix


def test_preflight_asks_for_the_public_key_of_an_identity_with_its_own_dkim_key() -> None:
    # GIVEN an adopted identity with Bring Your Own DKIM, pending, and no TXT at its selector
    facts = in_zones({Zone("ZDEV", DEV): {}})
    facts.identity = {"DkimAttributes": {**BYODKIM, "Status": "PENDING"}}

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN the error asks for the public key's TXT record at the selector, not for CNAMEs to amazonses.com
    row = next(r for r in rows if r.check == "DKIM records")
    assert row.severity == Severity.ERROR
    assert f"team2026._domainkey.{DEV}  TXT" in row.fix
    assert "dkim.amazonses.com" not in row.fix


@pytest.mark.parametrize(
    "mx",
    [
        ["1 aspmx.l.google.com.", "10 inbound-smtp.us-east-1.amazonaws.com"],  # SES added as a backup
        ["10 aspmx.l.google.com.", "10 inbound-smtp.us-east-1.amazonaws.com"],  # SES sharing the top preference
    ],
)
def test_preflight_warns_of_an_adopted_mx_that_prefers_another_host(mx: list[str]) -> None:
    # GIVEN an adopted MX that lists SES's endpoint beside a mail provider's host, which senders prefer (or pick
    # half of the time)
    facts = in_zones({Zone("ZDEV", DEV): {(DEV, "MX"): mx}})

    # WHEN preflight judges MxRecordMode=existing
    rows = evaluate(settings(HostedZoneId="ZDEV", MxRecordMode="existing"), facts)

    # THEN it is not "exists and points at" SES: a warning names the preferred host, with the careful fix
    row = next(r for r in rows if r.check == "MX record")
    assert row.severity == Severity.WARNING
    assert "aspmx.l.google.com" in row.problem
    assert row.fix.startswith("careful: aspmx.l.google.com")


def test_preflight_warns_when_the_adopted_identity_does_not_sign_with_dkim() -> None:
    # GIVEN an adopted identity, verified, its DKIM CNAMEs published, but DKIM signing turned off by hand
    cnames = {(f"t{i}._domainkey.{DEV}", "CNAME"): [f"t{i}.dkim.amazonses.com"] for i in (1, 2, 3)}
    facts = in_zones({Zone("ZDEV", DEV): cnames})
    facts.identity = {
        "VerifiedForSendingStatus": True,
        "DkimAttributes": {"SigningEnabled": False, "Status": "SUCCESS", "Tokens": ["t1", "t2", "t3"]},
        "MailFromAttributes": {"MailFromDomain": f"bounces.{DEV}"},
    }

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN a warning says forwards go out unsigned, with the command that turns signing on
    row = next(r for r in rows if r.check == "DKIM signing")
    assert row.severity == Severity.WARNING
    assert f"put-email-identity-dkim-attributes --region us-east-1 --email-identity {DEV} --signing-enabled" in row.fix


def undelegated_twin() -> Facts:
    """A zone of dev made and never delegated, while the apex zone holds dev's records (the live ones)."""
    return in_zones(
        {
            Zone("ZAPEX", APEX): {
                (APEX, "NS"): ["ns-apex.awsdns-00.com."],
                (DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"],
                (f"t1._domainkey.{DEV}", "CNAME"): ["t1.dkim.amazonses.com"],
            },
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-dev.awsdns-01.org."]},
        }
    )


def test_adopt_takes_the_parent_zone_that_holds_the_records_over_an_undelegated_zone_of_the_domain() -> None:
    # GIVEN dev's records in the apex zone, which has no NS record for dev, and a zone of dev nobody delegates to
    facts = undelegated_twin()

    # WHEN adopt plans the zone
    changes = plan_overrides(settings(), facts)

    # THEN it writes the records where the internet looks for them: the apex zone, beside the hand-made ones
    assert changes["HostedZoneId"] == "ZAPEX"
    assert changes["MxRecordMode"] == "existing"


def test_preflight_refuses_an_undelegated_zone_of_the_domain_while_the_parent_holds_its_records() -> None:
    # GIVEN the same account, with HostedZoneId naming the undelegated zone of dev
    facts = undelegated_twin()

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV"), facts)

    # THEN it is an error pointing at the apex zone, not the NS record that would hide dev's live records there
    row = next(r for r in rows if r.check == "NS delegation")
    assert row.severity == Severity.ERROR
    assert row.fix.startswith("HostedZoneId=ZAPEX")
    assert "change-resource-record-sets" not in row.fix


def test_preflight_names_the_holding_parent_zone_when_an_undelegated_zone_of_the_domain_exists() -> None:
    # GIVEN the same account, with HostedZoneId empty
    facts = undelegated_twin()

    # WHEN preflight judges it
    rows = evaluate(settings(), facts)

    # THEN the zone finding's fix is the apex zone that holds dev's live records
    row = next(r for r in rows if r.check == "hosted zone" and r.severity == Severity.ERROR)
    assert row.fix.startswith("HostedZoneId=ZAPEX ")


@pytest.mark.parametrize(
    ("organisation", "strictest"),
    [
        ('"v=DMARC1; p=none; sp=reject; rua=mailto:d@aws-educate.tw"', "reject"),
        ('"v=DMARC1; p=quarantine"', "quarantine"),
    ],
)
@pytest.mark.parametrize("apex", [APEX, "aws-educate.com.tw"])  # under a one-label and a two-label public suffix
def test_preflight_warns_when_the_subdomains_dmarc_record_would_loosen_the_organisations_policy(
    organisation: str, strictest: str, apex: str
) -> None:
    # GIVEN the apex's DMARC record, whose policy for subdomains (sp=, else p=) is stricter than none, and dev's own
    # zone, delegated, without a DMARC record: receivers apply the apex's policy to dev today
    dev = f"dev.{apex}"
    facts = in_zones(
        {
            Zone("ZAPEX", apex): {(f"_dmarc.{apex}", "TXT"): [organisation], (dev, "NS"): ["ns-dev.awsdns-01.org."]},
            Zone("ZDEV", dev): {(dev, "NS"): ["ns-dev.awsdns-01.org."]},
        }
    )

    # WHEN preflight judges the stack's DMARC record with the template's default policy (none)
    rows = evaluate(settings(HostedZoneId="ZDEV", DomainName=dev), facts)

    # THEN a warning says _dmarc.dev would replace the stricter policy, with the parameter that keeps it
    row = next(r for r in rows if r.check == "DMARC record")
    assert row.severity == Severity.WARNING
    assert f"{apex}'s p={strictest}" in row.problem or f"{apex}'s sp={strictest}" in row.problem
    assert row.fix.startswith(f"DmarcPolicy={strictest}")
    # and a policy as strict as the organisation's is fine
    same = evaluate(settings(HostedZoneId="ZDEV", DomainName=dev, DmarcPolicy=strictest), facts)
    assert next(r for r in same if r.check == "DMARC record").severity == Severity.OK


def test_preflight_takes_the_organisations_dmarc_policy_for_a_subdomain_left_without_its_own() -> None:
    # GIVEN DmarcRecordMode=existing for dev, which has no DMARC record, under an apex whose policy covers subdomains
    facts = in_zones(
        {Zone("ZAPEX", APEX): {(f"_dmarc.{APEX}", "TXT"): ['"v=DMARC1; p=reject"']}, Zone("ZDEV", DEV): {}}
    )

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", DmarcRecordMode="existing"), facts)

    # THEN it is not "receivers apply no policy": the apex's p=reject applies
    row = next(r for r in rows if r.check == "DMARC record")
    assert row.severity == Severity.OK
    assert f"{APEX}'s p=reject" in row.problem


@pytest.mark.usefixtures("account")
def test_preflight_names_a_leftover_configuration_set(cli: Cli) -> None:
    # GIVEN the team's account and an SES configuration set named like dev's stack, left by a failed first deploy
    import boto3

    boto3.client("sesv2", region_name="us-east-1").create_configuration_set(ConfigurationSetName=STACK)
    (Path.cwd() / "samconfig.toml").write_text(PLAIN_SAMCONFIG)

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN it is an error with the delete command, named by the set
    row = next(f for f in json.loads(result.out)["findings"] if f["check"] == "configuration set")
    assert result.code == 1
    assert row["resource"] == STACK
    assert f"delete-configuration-set --configuration-set-name {STACK} --region us-east-1" in row["fix"]


@pytest.mark.parametrize("status", ["PENDING", "FAILED"])
def test_preflight_does_not_pass_an_adopted_identity_that_is_not_verified(status: str) -> None:
    # GIVEN an adopted identity whose DKIM CNAMEs are in the zone, but which SES has not verified (yet, or gave up)
    cnames = {(f"t{i}._domainkey.{DEV}", "CNAME"): [f"t{i}.dkim.amazonses.com"] for i in (1, 2, 3)}
    facts = in_zones({Zone("ZDEV", DEV): cnames})
    facts.identity = {
        "VerifiedForSendingStatus": False,
        "DkimAttributes": {"SigningEnabled": True, "Status": status, "Tokens": ["t1", "t2", "t3"]},
        "MailFromAttributes": {"MailFromDomain": f"bounces.{DEV}"},
    }

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN the DKIM row is not OK: nothing is forwarded until SES verifies the identity
    row = next(r for r in rows if r.check == "DKIM records")
    assert row.severity == Severity.WARNING
    assert f"DKIM {status}" in row.problem


@pytest.mark.usefixtures("account")
def test_preflight_stops_a_deploy_into_a_rule_set_that_holds_as_many_rules_as_ses_allows(cli: Cli) -> None:
    # GIVEN the team's active set in us-east-1 filled up to SES's 200 rules per set (one per customer domain, a few
    # of them disabled), and dev joining it as adopt writes
    import boto3

    ses = boto3.client("ses", region_name="us-east-1")
    for number in range(199):  # forward-dev is the 200th
        rule = {"Name": f"customer-{number}", "Enabled": number % 50 != 0, "Recipients": [f"c{number}.example.org"]}
        ses.create_receipt_rule(RuleSetName=TEAM_RULE_SET, Rule=rule)
    prod, dev = PLAIN_SAMCONFIG.split("# --- dev")
    dev = dev.replace("=email-forwarder", f"={TEAM_RULE_SET}").replace("=create-and-activate", "=join-existing")
    (Path.cwd() / "samconfig.toml").write_text(f"{prod}# --- dev{dev}")

    # WHEN preflight checks dev
    result = cli("preflight", "--config-env", "dev", "--json")

    # THEN it stops the deploy: SES refuses the stack's rule (LimitExceeded) ten minutes in, and the deploy rolls
    # back; the fix names the disabled rules, which can go first
    row = next(f for f in json.loads(result.out)["findings"] if f["check"] == "receipt rule")
    assert result.code == 1
    assert row["severity"] == "error"
    assert row["resource"] == f"{STACK} in {TEAM_RULE_SET}"
    assert "200 rules" in row["problem"]
    assert all(f"customer-{n}" in row["fix"] for n in (0, 50, 100, 150))
    assert "customer-1," not in row["fix"]


def test_preflight_takes_a_rule_set_with_room_for_the_stacks_rule() -> None:
    # GIVEN the active set one rule short of SES's limit, or full with the stack's own rule already in it
    rules = [{"Name": f"customer-{n}", "Enabled": True, "Recipients": [f"c{n}.example.org"]} for n in range(199)]
    room = Facts(account="1", active_rule_set="team-rules", rule_sets={"team-rules": rules})
    ours = {"Name": STACK, "Enabled": True, "Recipients": [DEV]}
    full = Facts(
        account="1",
        active_rule_set="team-rules",
        rule_sets={"team-rules": [*rules, ours]},
        owned={"AWS::SES::ReceiptRule": {STACK}},
    )

    # WHEN preflight judges dev joining it
    joined = settings(ReceiptRuleSetMode="join-existing", ReceiptRuleSetName="team-rules")

    # THEN no receipt rule finding: the rule fits, or is there already
    assert [r for r in evaluate(joined, room) if r.check == "receipt rule"] == []
    assert [r for r in evaluate(joined, full) if r.check == "receipt rule"] == []


def renamed_stack_facts(*others: str, held: str = "email-forwarder") -> Facts:
    """A deployed dev stack whose custom resource created and activated `email-forwarder`, which holds its rule
    (and the `others`); `held` is the custom resource's physical id."""
    rules = [{"Name": name, "Enabled": True, "Recipients": [f"{name}.example.org"]} for name in (STACK, *others)]
    return Facts(
        account="1",
        stack_status="UPDATE_COMPLETE",
        stack_parameters={"ReceiptRuleSetName": "email-forwarder", "ReceiptRuleSetMode": "create-and-activate"},
        owned={"Custom::SharedReceiptRuleSet": {held}, "AWS::SES::ReceiptRule": {STACK}},
        logical={"SharedReceiptRuleSet", "ReceiptRule"},
        physical={"SharedReceiptRuleSet": held, "ReceiptRule": STACK},
        active_rule_set="email-forwarder",
        rule_sets={"email-forwarder": rules, "forwarder-v2": None},
    )


def test_preflight_lets_a_stack_rename_the_rule_set_it_activated_and_holds_alone() -> None:
    # GIVEN the deployed stack's own active set, holding only its rule, and ReceiptRuleSetName renamed
    renamed = settings(ReceiptRuleSetName="forwarder-v2")

    # WHEN preflight judges it, and adopt plans the parameters
    rows = evaluate(renamed, renamed_stack_facts())
    changes = plan_overrides(renamed, renamed_stack_facts())

    # THEN the rename is no error: the custom resource creates the new set and moves the activation to it (its
    # previous set holds no other rule), as the template's custom resource does; adopt keeps the new name
    row = next(r for r in rows if r.check == "rule set")
    assert row.severity == Severity.OK
    assert "email-forwarder" in row.problem
    assert "ReceiptRuleSetName" not in changes
    assert "ReceiptRuleSetMode" not in changes


@pytest.mark.parametrize("held", ["email-forwarder:kept", "email-forwarder:activated:e3b0c44298fc1c14"])
def test_preflight_reads_the_set_name_from_a_physical_id_that_records_what_the_create_found(held: str) -> None:
    # GIVEN the deployed stack's own active set, holding only its rule, which the custom resource found (active
    # already, or inactive and activated by it): its physical id is the set's name and what it found
    renamed = settings(ReceiptRuleSetName="forwarder-v2")

    # WHEN preflight judges a rename THEN it is the stack's own set, as with a bare name: the activation moves
    row = next(r for r in evaluate(renamed, renamed_stack_facts(held=held)) if r.check == "rule set")
    assert row.severity == Severity.OK


def test_preflight_refuses_a_rename_that_would_switch_off_other_rules() -> None:
    # GIVEN the deployed stack's own active set, which another environment's rule has joined since
    renamed = settings(ReceiptRuleSetName="forwarder-v2")

    # WHEN preflight judges the rename
    rows = evaluate(renamed, renamed_stack_facts("email-forwarder-preview"))

    # THEN it is still the error the custom resource would answer: moving the activation stops the other rule
    row = next(r for r in rows if r.check == "rule set")
    assert row.severity == Severity.ERROR


@pytest.mark.usefixtures("account")
def test_adopt_and_preflight_see_an_alias_record_where_the_stack_would_create_one(cli: Cli) -> None:
    # GIVEN dev's DMARC policy kept in one TXT record and published at _dmarc through a Route 53 alias record (an
    # alias has no values of its own, only its target)
    import boto3

    route53 = boto3.client("route53", region_name="us-east-1")
    zone = route53.list_hosted_zones_by_name(DNSName=DEV)["HostedZones"][0]["Id"].rsplit("/", 1)[-1]
    reject = [{"Value": '"v=DMARC1; p=reject"'}]
    policy = {"Name": f"policy.{DEV}", "Type": "TXT", "TTL": 300, "ResourceRecords": reject}
    alias = {
        "Name": f"_dmarc.{DEV}",
        "Type": "TXT",
        "AliasTarget": {"HostedZoneId": zone, "DNSName": f"policy.{DEV}", "EvaluateTargetHealth": False},
    }
    old = route53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=f"_dmarc.{DEV}", StartRecordType="TXT")
    changes = [
        {"Action": "DELETE", "ResourceRecordSet": old["ResourceRecordSets"][0]},
        {"Action": "CREATE", "ResourceRecordSet": policy},
        {"Action": "CREATE", "ResourceRecordSet": alias},
    ]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    path = Path.cwd() / "samconfig.toml"
    path.write_text(PLAIN_SAMCONFIG)

    # WHEN adopt writes dev's parameters, and preflight judges the create mode
    preflight = cli("preflight", "--config-env", "dev", "--json")
    cli("adopt", "--config-env", "dev", "--yes")

    # THEN the alias is a record that exists: with DmarcRecordMode=create, CloudFormation's TXT at _dmarc fails with
    # 'already exists'; adopt leaves it to what exists
    row = next(f for f in json.loads(preflight.out)["findings"] if f["check"] == "DMARC record")
    assert row["severity"] == "error"
    assert "v=DMARC1; p=reject" in row["problem"]
    assert '"DmarcRecordMode=existing"' in path.read_text()


def test_preflight_adds_amazonses_to_a_long_spf_record_in_a_string_of_its_own() -> None:
    # GIVEN an adopted MAIL FROM domain whose SPF record is long, split by the team into two strings of the TXT value
    # (DNS allows 255 characters per string), the first of them 250 characters long
    first = "v=spf1 " + " ".join(f"ip4:192.0.2.{n}" for n in range(1, 18))
    first += " " * (250 - len(first))
    spf = f'"{first}" "include:_spf.google.com ~all"'
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (f"bounces.{DEV}", "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): [spf],
            }
        },
    )

    # WHEN preflight judges MailFromRecordsMode=existing
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)

    # THEN the fix adds the include without making any string longer than 255 characters (Route 53 refuses such a
    # value, so the printed command would fail), and the record reads the same once DNS joins the strings
    row = next(r for r in rows if r.check == "MAIL FROM records" and "TXT" in r.resource)
    change = json.loads(row.fix.split("--change-batch ", 1)[1].strip("'"))
    [value] = [v["Value"] for v in change["Changes"][0]["ResourceRecordSet"]["ResourceRecords"]]
    strings = value.split('"')[1::2]
    assert max(len(s) for s in strings) <= 255
    assert "".join(strings) == f"v=spf1 include:amazonses.com{first[len('v=spf1') :]}include:_spf.google.com ~all"


@pytest.mark.parametrize("status", ["FAILED", "PENDING", "TEMPORARY_FAILURE"])
def test_preflight_stops_on_an_adopted_identity_that_refuses_to_send_while_its_mail_from_fails(status: str) -> None:
    # GIVEN an adopted, verified identity whose custom MAIL FROM domain SES has not verified (its MX points at
    # another region), set by hand to reject a send then (BehaviorOnMxFailure=REJECT_MESSAGE)
    cnames = {(f"t{i}._domainkey.{DEV}", "CNAME"): [f"t{i}.dkim.amazonses.com"] for i in (1, 2, 3)}
    facts = in_zones({Zone("ZDEV", DEV): cnames})
    facts.identity = {
        "VerifiedForSendingStatus": True,
        "DkimAttributes": {"SigningEnabled": True, "Status": "SUCCESS", "Tokens": ["t1", "t2", "t3"]},
        "MailFromAttributes": {
            "MailFromDomain": f"bounces.{DEV}",
            "MailFromDomainStatus": status,
            "BehaviorOnMxFailure": "REJECT_MESSAGE",
        },
    }

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN an error: SES refuses every send (MailFromDomainNotVerified), so no forward goes out; the fix lets SES send
    # with its own MAIL FROM meanwhile, as the identity the stack creates does
    row = next(r for r in rows if r.check == "MAIL FROM" and r.severity != Severity.OK)
    assert row.severity == Severity.ERROR
    assert status in row.problem
    assert "MailFromDomainNotVerified" in row.problem
    assert "--behavior-on-mx-failure USE_DEFAULT_VALUE" in row.fix


def test_preflight_passes_an_adopted_identity_whose_failing_mail_from_falls_back_to_amazonses() -> None:
    # GIVEN the same identity with SES's fallback (USE_DEFAULT_VALUE), or with a verified MAIL FROM and REJECT_MESSAGE
    facts = in_zones({Zone("ZDEV", DEV): {}})
    rows = []
    for status, behaviour in (("FAILED", "USE_DEFAULT_VALUE"), ("SUCCESS", "REJECT_MESSAGE")):
        mail_from = {"MailFromDomain": f"bounces.{DEV}", "MailFromDomainStatus": status}
        facts.identity = {"MailFromAttributes": {**mail_from, "BehaviorOnMxFailure": behaviour}}

        # WHEN preflight judges it
        rows += evaluate(settings(HostedZoneId="ZDEV", EmailIdentityMode="existing"), facts)

    # THEN sending is not refused: no MAIL FROM row says so
    assert not [r for r in rows if r.check == "MAIL FROM" and "MailFromDomainNotVerified" in r.problem]


def earlier_rule(recipients: list[str]) -> str:
    """The fix of the earlier-rule warning for the team's forwarder rule with these recipients."""
    rule = {"Name": "old-forwarder", "Enabled": True, "Recipients": recipients, "Actions": [{"LambdaAction": {}}]}
    facts = Facts(account="1", active_rule_set="team-rules", rule_sets={"team-rules": [rule]})
    rows = evaluate(settings(ReceiptRuleSetMode="join-existing", ReceiptRuleSetName="team-rules"), facts)
    return next(r for r in rows if r.check == "earlier rule").fix


def test_preflight_takes_the_domain_out_of_an_earlier_rule_that_serves_other_domains_too() -> None:
    # GIVEN the team's earlier forwarder rule for dev and for another domain of the team
    fix = earlier_rule([DEV, "other.example.org"])

    # WHEN preflight gives the command for after the new stack works
    command = fix.splitlines()[-1]
    rule = json.loads(shlex.split(command)[shlex.split(command).index("--rule") + 1])

    # THEN it takes dev out of the recipients and keeps the rule enabled: disabling it would stop the other
    # domain's mail
    assert rule["Enabled"] is True
    assert rule["Recipients"] == ["other.example.org"]


@pytest.mark.parametrize("recipients", [[], [".aws-educate.tw"]])
def test_preflight_never_advises_disabling_an_earlier_rule_that_takes_every_domains_mail(recipients: list[str]) -> None:
    # GIVEN the team's earlier catch-all forwarder rule (no recipients: every domain of the region), or one for every
    # subdomain of the apex
    fix = earlier_rule(recipients)

    # WHEN preflight says what to do with it
    # THEN no command disables it (that would stop the mail of every other domain it takes); the fix says why
    assert '"Enabled": false' not in fix
    assert "would stop" in fix


def earlier_rules(*rules: dict[str, object], owned: bool = False) -> list[Finding]:
    """The earlier-rule rows for the active set holding these rules (the stack's own among them when `owned`)."""
    facts = Facts(
        account="1",
        active_rule_set="team-rules",
        rule_sets={"team-rules": list(rules)},
        owned={"AWS::SES::ReceiptRule": {STACK}} if owned else {},
    )
    rows = evaluate(settings(ReceiptRuleSetMode="join-existing", ReceiptRuleSetName="team-rules"), facts)
    return [r for r in rows if r.check == "earlier rule"]


def test_preflight_says_what_each_earlier_rule_does_to_the_mail_the_stack_receives_first() -> None:
    # GIVEN the team's rules for dev in the active set: one that tags a header, one that bounces, one that only stops
    # the chain; the stack's rule goes in front of them (CloudFormation adds it without After)
    stop = {"Name": "stop-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"StopAction": {"Scope": "RuleSet"}}]}
    tag = {"Name": "tag-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"AddHeaderAction": {}}]}
    bounce = {"Name": "bounce-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"BounceAction": {}}]}

    # WHEN preflight judges dev joining the set
    rows = earlier_rules(tag, bounce, stop)

    # THEN the rules that change nothing of the mail the stack already took are not findings, and the bounce is
    # named for what it does: the sender gets a bounce for each mail the stack forwards (not "each mail twice")
    assert [r.resource for r in rows] == ["bounce-dev in team-rules"]
    assert "bounces it to its sender" in rows[0].problem


def test_preflight_names_a_rule_that_stops_the_chain_before_the_stacks_rule() -> None:
    # GIVEN a deployed stack whose rule someone moved behind a rule for dev that stops the chain
    stop = {"Name": "stop-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"StopAction": {"Scope": "RuleSet"}}]}
    ours = {"Name": STACK, "Enabled": True, "Recipients": [DEV], "Actions": [{"LambdaAction": {}}]}

    # WHEN preflight judges it
    [row] = earlier_rules(stop, ours, owned=True)

    # THEN it says the stack's rule receives none of dev's mail, and the command that puts it first
    assert "before the stack's rule" in row.problem
    assert f"set-receipt-rule-position --region us-east-1 --rule-set-name team-rules --rule-name {STACK}" in row.fix


def test_preflight_warns_before_moving_a_live_delegation_to_the_adopted_zone() -> None:
    # GIVEN an adopted zone of dev in this account, while the apex delegates dev to another DNS provider, which
    # serves dev's records today (a web site, a mail provider)
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org.", "ns-2.awsdns-02.com."]},
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns1.old-provider.example.", "ns2.old-provider.example."]},
        }
    )

    # WHEN preflight gives the NS UPSERT that delegates dev to the adopted zone
    row = next(r for r in evaluate(settings(HostedZoneId="ZDEV"), facts) if r.check == "NS delegation")

    # THEN before the command it says that the records the other provider serves stop resolving unless they are in
    # the adopted zone first (the UPSERT replaces the live delegation)
    caution, command = row.fix.rsplit("\n", 1)
    assert "ns1.old-provider.example" in caution
    assert "stops resolving" in caution
    assert command.startswith("aws route53 change-resource-record-sets --hosted-zone-id ZAPEX")


def zone_stack_facts() -> Facts:
    """A deployed dev stack that created the zone of dev (ZOWN) and its NS delegation in the apex zone."""
    return in_zones(
        {
            Zone("ZOWN", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org."], (DEV, "MX"): ["10 inbound-smtp.x"]},
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
        },
        stack_status="UPDATE_COMPLETE",
        owned={"AWS::Route53::HostedZone": {"ZOWN"}, "AWS::Route53::RecordSet": {DEV}},
        logical={"HostedZone", "ParentDelegation", "InboundMxRecord"},
        physical={"HostedZone": "ZOWN", "ParentDelegation": DEV, "InboundMxRecord": DEV},
    )


@pytest.mark.parametrize(
    "parameters",
    [
        {"HostedZoneId": "ZOWN"},  # its own zone's id, from the stack's outputs
        {"HostedZoneId": "ZAPEX"},
        {"ParentHostedZoneId": ""},  # the delegation alone
    ],
)
def test_preflight_stops_a_zone_switch_that_would_delete_the_stacks_zone_or_its_delegation(
    parameters: dict[str, str],
) -> None:
    # GIVEN a deployed stack that created dev's zone and delegated it from the apex zone (ParentHostedZoneId=ZAPEX)
    # WHEN the environment now names a zone in HostedZoneId, or leaves ParentHostedZoneId empty
    rows = evaluate(settings(**{"ParentHostedZoneId": "ZAPEX", **parameters}), zone_stack_facts())

    # THEN it is an error: the zone (and its delegation) leave the template's conditions, and CloudFormation deletes
    # them during the update (the template does not retain them): dev is no longer delegated, mail and DKIM stop
    row = next(r for r in rows if r.check == "mode switch")
    assert row.severity == Severity.ERROR
    assert "ZOWN" in row.problem or "delegation" in row.problem


def test_preflight_lets_a_stack_keep_its_zone_and_delegation() -> None:
    # GIVEN the same stack, deployed again with the parameters it was made with
    rows = evaluate(settings(ParentHostedZoneId="ZAPEX"), zone_stack_facts())

    # THEN no mode switch
    assert [r for r in rows if r.check == "mode switch"] == []


def test_preflight_refuses_a_stack_name_longer_than_ses_names_allow() -> None:
    # GIVEN an environment whose stack name is 65 characters long (CloudFormation takes up to 128)
    long_name = "email-forwarder-" + "x" * 49
    long = Settings.of({"EnvironmentName": "dev", "DomainName": DEV}, long_name, "us-east-1", "dev")

    # WHEN preflight judges it, and the same environment under a name of 64
    rows = evaluate(long, Facts(account="1"))
    fits = evaluate(
        Settings.of({"EnvironmentName": "dev", "DomainName": DEV}, long_name[:64], "us-east-1", "dev"),
        Facts(account="1"),
    )

    # THEN the long one is an error: the SES configuration set and the receipt rule are named after the stack, and
    # SES refuses names over 64 characters ten minutes into the deploy
    row = next(r for r in rows if r.check == "stack name")
    assert row.severity == Severity.ERROR
    assert "64" in row.problem
    assert [r for r in fits if r.check == "stack name"] == []


def test_preflight_refuses_a_delegation_from_a_zone_that_delegates_the_level_between() -> None:
    # GIVEN mail.dev.aws-educate.tw with no zone yet, dev's zone delegated from the apex zone, and the apex zone's id
    # (copied from prod) as ParentHostedZoneId
    domain = f"mail.{DEV}"
    facts = in_zones(
        {
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
        }
    )
    deep = Settings.of(
        {"EnvironmentName": "dev", "DomainName": domain, "ParentHostedZoneId": "ZAPEX"}, STACK, "us-east-1", "dev"
    )

    # WHEN preflight judges it
    rows = evaluate(deep, facts)

    # THEN it is an error: resolvers ask dev's zone for mail.dev, so an NS record in the apex zone is seen by nobody;
    # the fix is dev's zone, as adopt writes
    row = next(r for r in rows if r.check == "NS delegation")
    assert row.severity == Severity.ERROR
    assert "ParentHostedZoneId=ZDEV" in row.fix
    assert plan_overrides(deep, facts)["ParentHostedZoneId"] == "ZDEV"


def test_preflight_refuses_a_grandparent_zone_that_delegates_the_level_between_as_hosted_zone() -> None:
    # GIVEN the same account, and the apex zone's id as HostedZoneId of mail.dev (no zone of its own)
    facts = in_zones(
        {
            Zone("ZAPEX", APEX): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
            Zone("ZDEV", DEV): {(DEV, "NS"): ["ns-1.awsdns-01.org."]},
        }
    )
    deep = Settings.of(
        {"EnvironmentName": "dev", "DomainName": f"mail.{DEV}", "HostedZoneId": "ZAPEX"}, STACK, "us-east-1", "dev"
    )

    # WHEN preflight judges it
    rows = evaluate(deep, facts)

    # THEN it is an error, not "the zone of aws-educate.tw, which holds the records": records of mail.dev written in
    # the apex zone sit below dev's delegation, where nobody looks
    row = next(r for r in rows if r.check == "hosted zone")
    assert row.severity == Severity.ERROR
    assert "ParentHostedZoneId=ZDEV" in row.fix


def test_preflight_names_no_rule_behind_one_that_stops_the_domains_mail() -> None:
    # GIVEN the team's rule that stops the chain for all of dev's mail, ahead of its old forwarder rule and a
    # catch-all bounce (the stack's rule goes in front of all three)
    stop = {"Name": "stop-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"StopAction": {"Scope": "RuleSet"}}]}
    old = {"Name": "forward-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"LambdaAction": {}}]}
    bounce = {"Name": "bounce-all", "Enabled": True, "Recipients": [], "Actions": [{"BounceAction": {}}]}

    # WHEN preflight judges dev joining the set
    rows = earlier_rules(stop, old, bounce)

    # THEN none of them is a finding: SES never applies the rules behind the stop to dev's mail
    assert rows == []


def test_preflight_names_the_rules_behind_a_stop_for_one_address_only() -> None:
    # GIVEN a rule that stops the chain for one address of dev, ahead of the old forwarder rule for all of dev
    stop = {"Name": "stop-one", "Enabled": True, "Recipients": [f"noreply@{DEV}"], "Actions": [{"StopAction": {}}]}
    old = {"Name": "forward-dev", "Enabled": True, "Recipients": [DEV], "Actions": [{"LambdaAction": {}}]}

    # WHEN preflight judges dev joining the set
    rows = earlier_rules(stop, old)

    # THEN the old forwarder rule still takes the rest of dev's mail: it is named
    assert [r.resource for r in rows] == ["forward-dev in team-rules"]


def test_preflight_takes_an_organisations_dmarc_policy_published_through_a_dmarc_service() -> None:
    # GIVEN DmarcRecordMode=existing for dev, which has no DMARC record, under an apex whose DMARC policy is a CNAME
    # to a DMARC service (its tags are not readable here)
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {},
            Zone("ZAPEX", APEX): {(f"_dmarc.{APEX}", "CNAME"): [f"{APEX}._dmarc.dmarc-service.example"]},
        }
    )

    # WHEN preflight judges it
    rows = evaluate(settings(HostedZoneId="ZDEV", DmarcRecordMode="existing"), facts)

    # THEN it does not say "receivers apply no policy" with the fix to publish one (the stack's p=none would replace
    # the organisation's policy, possibly a stricter one): the apex's policy applies, through the service
    row = next(r for r in rows if r.check == "DMARC record")
    assert row.severity == Severity.OK
    assert "dmarc-service.example" in row.problem


def test_preflight_reads_an_spf_include_split_across_the_strings_of_a_txt_value() -> None:
    # GIVEN an adopted MAIL FROM domain whose SPF record, split in two strings, has the include across the split
    spf = '"v=spf1 ip4:192.0.2.1 include:amazon" "ses.com ~all"'
    facts = in_zones(
        {
            Zone("ZDEV", DEV): {
                (f"bounces.{DEV}", "MX"): ["10 feedback-smtp.us-east-1.amazonses.com"],
                (f"bounces.{DEV}", "TXT"): [spf],
            }
        },
    )

    # WHEN preflight judges MailFromRecordsMode=existing
    rows = evaluate(settings(HostedZoneId="ZDEV", MailFromRecordsMode="existing"), facts)

    # THEN the records pass (DNS joins the strings: the include is there), no fix adds it a second time
    row = next(r for r in rows if r.check == "MAIL FROM records")
    assert row.severity == Severity.OK


def test_preflight_names_a_record_in_the_zone_the_stacks_records_move_to() -> None:
    # GIVEN a deployed stack that wrote dev's MX into the apex zone (HostedZoneId=ZAPEX, dev had no zone), and since
    # then a zone of dev made by hand with its own MX, which the environment now names
    facts = in_zones(
        {
            Zone("ZAPEX", APEX): {(DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"]},
            Zone("ZDEV", DEV): {(DEV, "MX"): ["10 mx.other-provider.example"]},
        },
        stack_status="UPDATE_COMPLETE",
        stack_parameters={"HostedZoneId": "ZAPEX"},
        owned={"AWS::Route53::RecordSet": {DEV}},
        logical={"InboundMxRecord"},
    )

    # WHEN preflight judges HostedZoneId=ZDEV
    rows = evaluate(settings(HostedZoneId="ZDEV"), facts)

    # THEN the MX there is a collision: CloudFormation replaces the stack's MX by one in ZDEV, which exists (the
    # deploy fails); the fix says so instead of passing the record as the stack's own
    row = next(r for r in rows if r.check == "MX record")
    assert row.severity == Severity.ERROR
    assert "mx.other-provider.example" in row.problem
    assert "ZAPEX" in row.fix


def test_preflight_passes_the_stacks_own_records_in_the_zone_it_deployed_them_to() -> None:
    # GIVEN the same stack deployed again into the apex zone
    facts = in_zones(
        {Zone("ZAPEX", APEX): {(DEV, "MX"): ["10 inbound-smtp.us-east-1.amazonaws.com"]}},
        stack_status="UPDATE_COMPLETE",
        stack_parameters={"HostedZoneId": "ZAPEX"},
        owned={"AWS::Route53::RecordSet": {DEV}},
        logical={"InboundMxRecord"},
    )

    # WHEN preflight judges HostedZoneId=ZAPEX
    rows = evaluate(settings(HostedZoneId="ZAPEX"), facts)

    # THEN the MX is the stack's own
    assert next(r for r in rows if r.check == "MX record").severity == Severity.OK
