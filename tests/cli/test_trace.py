"""`forwarder trace`, `forwarder suppression` and the delivery function end to end, against moto: the real
forwarder handler sends (captured below moto, with their EmailTags), SES's event notifications in the
documented format go through `forwarder.delivery.lambda_handler`, and the CLI reads the trace table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from forwarder.delivery import lambda_handler as delivery_handler
from forwarder_ops.local import TRACE_TABLE, EmbeddedAws, LocalContext, SentMail, embedded_aws
from tests import sesevents as ses
from tests.cli.conftest import DOMAIN, REGION, Cli, Deployment, FakeResolver, FakeSesV2, deploy
from tests.conftest import EVENTS

MEMBERS = {
    "alice": "alice@gmail.com",  # delivered (her Delivery arrives before her Send)
    "bob": "bob@gmail.com",  # permanent bounce: user unknown
    "carol": "carol@yahoo.com",  # transient bounce after SES gave up
    "dave": "dave@example.org",  # delivered, then complained
    "erin": "erin@example.net",  # delayed: mailbox full
    "frank": "frank@example.com",  # on the account's suppression list
}
TEAM = [*MEMBERS.values(), f"ops@{DOMAIN}"]  # the last one is skipped: a loop
SENDER = "yating.chen@example.com"


def at(minutes: float) -> str:
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedAws]:
    """moto with the trace table, the configuration set named, the alarm topic feeding a queue we can read."""
    with embedded_aws(
        DOMAIN, {"team": TEAM}, trace=True, settings={"FORWARDER_CONFIGURATION_SET": "email-forwarder-dev"}
    ) as aws:
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="alarms")["TopicArn"]
        queue = sqs.create_queue(QueueName="alarm-mail")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        monkeypatch.setenv("FORWARDER_ALARM_TOPIC_ARN", topic)
        monkeypatch.setenv("ALARM_QUEUE", queue)
        yield aws


def alarms() -> list[str]:
    import os

    sqs = boto3.client("sqs", region_name=REGION)
    found = sqs.receive_message(QueueUrl=os.environ["ALARM_QUEUE"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"])["Subject"] for m in found]


def forward(env: EmbeddedAws) -> tuple[str, SentMail]:
    raw = (EVENTS / "mail" / "workshop.eml").read_bytes()
    result, sent = env.deliver(raw, [f"team@{DOMAIN}"], source=SENDER)
    (outcome,) = result["outcomes"]
    assert outcome["forwarded"], outcome
    (mail,) = sent
    return outcome["message_id"], mail


def deliver_events(*records: dict[str, Any]) -> dict[str, int]:
    result: dict[str, int] = delivery_handler(ses.sns_event(*records), LocalContext())
    return result


def feed_the_story(mail: SentMail) -> None:
    """What SES reports for each member of `mail` (one send to all six), in an order SES may well use."""
    m = ses.mail_object(mail.message_id, mail.recipients, mail.tags, at(0))
    deliver_events(ses.delivery(m, MEMBERS["alice"], at(0.05)))  # before the Send event
    deliver_events(ses.send(m))
    deliver_events(
        ses.bounce(m, MEMBERS["bob"], at(0.1), "Permanent", "General", "smtp; 550 5.1.1 <bob@gmail.com>: user unknown"),
        ses.delay(m, MEMBERS["erin"], at(1)),
        ses.bounce(m, MEMBERS["frank"], at(0.02), "Permanent", "OnAccountSuppressionList"),
        ses.delivery(m, MEMBERS["dave"], at(0.05)),
    )
    deliver_events(ses.bounce(m, MEMBERS["carol"], at(30), "Transient", "MailboxFull", "smtp; 452 4.2.2 full"))
    complaint = ses.complaint(m, MEMBERS["dave"], at(60))
    deliver_events(complaint)
    # SNS delivers at least once: the same complaint again changes nothing and alarms nobody twice
    assert deliver_events(complaint) == {"added": 0, "duplicates": 1, "skipped": 0, "alarms": 0}


def rows(output: str) -> dict[str, str]:
    return {line.split()[1]: line for line in output.splitlines() if line.startswith("  team ")}


def test_trace_forwarded_sends_carry_both_tags_and_the_configuration_set(env: EmbeddedAws) -> None:
    # GIVEN an alias WHEN a mail is forwarded THEN the send names the inbound message and the alias
    message_id, mail = forward(env)
    assert mail.tags == {"inbound": message_id, "alias": "team"}
    assert mail.configuration_set == "email-forwarder-dev"
    assert sorted(mail.recipients) == sorted(MEMBERS.values())


def test_trace_oversize_notices_carry_both_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a size limit below the mail's size WHEN it is forwarded THEN the notice replacing it is tagged too
    limit = {"FORWARDER_MAX_MESSAGE_BYTES": "1000"}
    with embedded_aws(DOMAIN, {"team.lead": ["alice@gmail.com"]}, trace=True, settings=limit) as aws:
        raw = (EVENTS / "mail" / "workshop.eml").read_bytes()
        result, (notice,) = aws.deliver(raw, [f"team.lead@{DOMAIN}"], source=SENDER)
    assert result["outcomes"][0]["oversize"] is True
    assert notice.tags == {"inbound": result["outcomes"][0]["message_id"], "alias": "team_lead"}  # SES tag charset
    assert b"download" in notice.raw.lower()


def test_trace_shows_each_members_state(cli: Cli, env: EmbeddedAws) -> None:
    # GIVEN a forwarded mail and SES's events for its six members (out of order, one twice)
    message_id, mail = forward(env)
    feed_the_story(mail)

    # WHEN the operator traces it
    result = cli("trace", message_id, "--config-env", "dev", "--table", TRACE_TABLE)

    # THEN the forwarder's side and one row per member show, and exit code 1 says someone did not get it
    assert result.code == 1, result.err
    assert f"mail {message_id}" in result.out
    assert f"from      {SENDER}" in result.out
    assert "verdicts  spam PASS, virus PASS, dmarc PASS" in result.out
    assert "decision  forwarded" in result.out
    table = rows(result.out)
    assert "delivered" in table["alice@gmail.com"] and "sent > delivered" in table["alice@gmail.com"]
    assert "bounced" in table["bob@gmail.com"]
    assert "Permanent/General: smtp; 550 5.1.1 <bob@gmail.com>: user unknown" in table["bob@gmail.com"]
    assert "bounced" in table["carol@yahoo.com"] and "Transient/MailboxFull" in table["carol@yahoo.com"]
    assert "complained" in table["dave@example.org"] and "delivered > complained" in table["dave@example.org"]
    assert "delayed" in table["erin@example.net"] and "Mailbox full" in table["erin@example.net"]
    assert "suppressed" in table["frank@example.com"]
    assert "skipped" in table[f"ops@{DOMAIN}"]
    # dave got it and marked it as spam: delivered, and named apart from those who did not get it
    assert "2 of 6 member(s) delivered, 3 did not get it, 1 marked it as spam, 1 still on the way" in result.out
    assert "forwarder suppression remove frank@example.com --config-env dev" in result.out
    # AND the alarm topic heard once each of bob's bounce, frank's suppression and dave's complaint
    assert sorted(alarms()) == [
        "Forwarder: bob@gmail.com of alias team: bounce",
        "Forwarder: dave@example.org of alias team: complaint",
        "Forwarder: frank@example.com of alias team: bounce",
    ]


def test_trace_json_has_each_members_state(cli: Cli, env: EmbeddedAws) -> None:
    message_id, mail = forward(env)
    feed_the_story(mail)

    result = cli("trace", message_id, "--config-env", "dev", "--table", TRACE_TABLE, "--json")

    assert result.code == 1
    trace = json.loads(result.out)
    states = {m["member"]: m["state"] for m in trace["members"]}
    assert states == {
        "alice@gmail.com": "delivered",
        "bob@gmail.com": "bounced",
        "carol@yahoo.com": "bounced",
        "dave@example.org": "complained",
        "erin@example.net": "delayed",
        "frank@example.com": "suppressed",
        f"ops@{DOMAIN}": "skipped",
    }
    assert sorted(trace["problems"]) == ["bob@gmail.com", "carol@yahoo.com", "dave@example.org", "frank@example.com"]
    assert trace["mail"]["sender"] == SENDER
    assert trace["mail"]["aliases"] == ["team"]
    assert "subject" not in trace["mail"]  # TraceSubjects is off
    bob = next(m for m in trace["members"] if m["member"] == "bob@gmail.com")
    assert [e["state"] for e in bob["history"]] == ["sent", "sent", "bounced"]  # the forwarder's, SES's Send, Bounce


def test_trace_all_delivered_exits_zero(cli: Cli, env: EmbeddedAws) -> None:
    message_id, mail = forward(env)
    m = ses.mail_object(mail.message_id, mail.recipients, mail.tags, at(0))
    deliver_events(*(ses.delivery(m, member, at(0.1)) for member in MEMBERS.values()))
    result = cli("trace", message_id, "--config-env", "dev", "--table", TRACE_TABLE)
    assert result.code == 0, result.out
    assert "6 of 6 member(s) delivered" in result.out


def test_trace_finds_mails_by_sender_alias_and_time(cli: Cli, env: EmbeddedAws) -> None:
    # GIVEN two forwarded mails from the same sender
    first, _ = forward(env)
    raw = (EVENTS / "mail" / "booth.eml").read_bytes()
    result, _ = env.deliver(raw, [f"team@{DOMAIN}"], source="someone@else.example")
    second = result["outcomes"][0]["message_id"]

    # WHEN the operator looks them up without the id
    by_sender = cli("trace", "--from", SENDER.upper(), "--config-env", "dev", "--table", TRACE_TABLE, "--json")
    by_alias = cli("trace", "--alias", "team", "--since", "1h", "--config-env", "dev", "--table", TRACE_TABLE)
    by_time = cli("trace", "--since", "2d", "--config-env", "dev", "--table", TRACE_TABLE, "--json")
    nothing = cli("trace", "--alias", "tech", "--config-env", "dev", "--table", TRACE_TABLE)

    # THEN each finds what it should, through the indexes
    assert [m["message_id"] for m in json.loads(by_sender.out)["mails"]] == [first]
    assert by_alias.code == 0 and first in by_alias.out and second in by_alias.out
    assert {m["message_id"] for m in json.loads(by_time.out)["mails"]} == {first, second}
    assert nothing.code == 1 and "no mail matches" in nothing.out


def test_trace_records_dropped_mail_with_its_reason(cli: Cli, env: EmbeddedAws) -> None:
    raw = (EVENTS / "mail" / "prize.eml").read_bytes()
    result, sent = env.deliver(raw, [f"team@{DOMAIN}"], virus="FAIL")
    assert sent == []
    trace = cli("trace", result["outcomes"][0]["message_id"], "--config-env", "dev", "--table", TRACE_TABLE)
    assert "decision  not forwarded: virus" in trace.out
    assert "verdicts  spam PASS, virus FAIL, dmarc PASS" in trace.out


def test_trace_bad_input_is_one_line(cli: Cli, env: EmbeddedAws) -> None:
    unknown = cli("trace", "no-such-mail", "--config-env", "dev", "--table", TRACE_TABLE)
    assert unknown.code == 1 and "no trace of no-such-mail" in unknown.out
    nothing = cli("trace", "--config-env", "dev", "--table", TRACE_TABLE)
    assert nothing.code == 2 and "give a MESSAGE_ID" in nothing.err
    bad = cli("trace", "--since", "yesterday", "--config-env", "dev", "--table", TRACE_TABLE)
    assert bad.code == 2 and "--since" in bad.err and "Traceback" not in bad.err
    no_table = cli("trace", "m1", "--config-env", "dev", "--table", "no-such-table")
    assert no_table.code == 2 and "no trace table no-such-table in us-east-1" in no_table.err


def test_trace_write_failure_never_stops_the_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the trace table does not exist (a wrong name, or no permission) WHEN a mail arrives THEN it is
    # forwarded anyway, once
    with embedded_aws(DOMAIN, {"team": ["alice@gmail.com"]}, settings={"FORWARDER_TRACE_TABLE": "missing"}) as aws:
        raw = (EVENTS / "mail" / "workshop.eml").read_bytes()
        result, sent = aws.deliver(raw, [f"team@{DOMAIN}"])
    assert result["outcomes"][0]["forwarded"] is True
    assert len(sent) == 1


# suppression ------------------------------------------------------------------------------------


@pytest.fixture
def suppressing(client_overrides: dict[str, Any], aws: None) -> FakeSesV2:
    fake = FakeSesV2()
    client_overrides["sesv2"] = fake
    return fake


def test_doctor_lists_suppressed_members_with_reason_date_and_fix(
    cli: Cli, deployed: Deployment, suppressing: FakeSesV2, resolver: FakeResolver
) -> None:
    # GIVEN bob of alias team is on the account's suppression list since a hard bounce
    suppressing.suppressed.add("bob@gmail.com", "BOUNCE", datetime(2026, 11, 28, tzinfo=UTC))

    # WHEN the doctor checks the environment
    result = cli("doctor", "--config-env", "dev")

    # THEN the row names him, the alias, the reason and date, and the command that fixes it
    line = next(line for line in result.out.splitlines() if "suppressed members" in line)
    assert line.lstrip().startswith("✗")
    assert "bob@gmail.com (hard bounce since 2026-11-28) in team" in line
    assert "forwarder suppression remove bob@gmail.com --config-env dev" in result.out
    assert result.code == 1


def test_doctor_matches_many_members_against_the_listed_suppression_list(
    cli: Cli, aws: None, client_overrides: dict[str, Any], resolver: FakeResolver
) -> None:
    # GIVEN an alias of 30 members, two of them suppressed WHEN the doctor checks THEN it finds both
    members = [f"member{i:02d}@example.org" for i in range(30)]
    deploy({"big": ", ".join(members)})
    fake = FakeSesV2()
    client_overrides["sesv2"] = fake
    fake.suppressed.add("member07@example.org", "COMPLAINT")
    fake.suppressed.add("member21@example.org")
    fake.suppressed.add("stranger@example.com")
    result = cli("doctor", "--config-env", "dev", "--json")
    check = next(c for c in json.loads(result.out)["checks"] if c["name"] == "suppressed members")
    assert check["status"] == "fail"
    assert check["detail"].startswith("2 member(s) receive nothing")
    assert "member07@example.org (complaint since" in check["detail"] and "stranger" not in check["detail"]


def test_suppression_remove_asks_then_removes(cli: Cli, deployed: Deployment, suppressing: FakeSesV2) -> None:
    suppressing.suppressed.add("bob@gmail.com", "COMPLAINT")
    declined = cli("suppression", "remove", "bob@gmail.com", "--config-env", "dev", stdin="n\n", tty=True)
    assert "bob@gmail.com" in suppressing.suppressed.entries
    assert declined.code == 1 and "nothing changed" in declined.out
    listed = cli("suppression", "list", "--config-env", "dev", "--json")
    (entry,) = json.loads(listed.out)["suppressed"].items()
    assert entry[0] == "bob@gmail.com" and entry[1]["reason"] == "COMPLAINT" and entry[1]["aliases"] == ["team"]

    removed = cli("suppression", "remove", "Bob@Gmail.com", "--config-env", "dev", "--yes")

    assert removed.code == 0 and "removed bob@gmail.com" in removed.out
    assert suppressing.suppressed.entries == {}
    again = cli("suppression", "remove", "bob@gmail.com", "--config-env", "dev", "--yes")
    assert again.code == 0 and "not on the suppression list" in again.out
    assert cli("suppression", "remove", "not-an-address", "--config-env", "dev").code == 2
