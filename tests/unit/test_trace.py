"""The delivery trace's pure parts: reading SES event records, merging them in event order, alarming once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from forwarder.delivery import record_events
from forwarder.feedback import FeedbackError, parse_record
from forwarder.trace import TraceEntry, decision_text, latest, merge_entry, normalise_time, path
from tests import sesevents as ses

TAGS = {"inbound": "inbound-1", "alias": "team"}
SENT_AT = "2026-11-30T09:14:31.100Z"


def mail(*members: str) -> dict[str, Any]:
    return ses.mail_object("ses-1", members or ("bob@gmail.com",), TAGS, SENT_AT)


@dataclass
class MemoryTrace:
    """The delivery function's table, in memory: histories by (inbound, member), alarm claims."""

    histories: dict[tuple[str, str], list[TraceEntry]] = field(default_factory=dict)
    claims: set[tuple[str, str, str]] = field(default_factory=set)
    aliases: dict[tuple[str, str], str] = field(default_factory=dict)

    def add_event(self, inbound: str, alias: str, member: str, entry: TraceEntry) -> bool:
        merged, added = merge_entry(self.histories.get((inbound, member), []), entry)
        self.histories[(inbound, member)] = merged
        return added

    def member_alias(self, inbound: str, member: str) -> str | None:
        return self.aliases.get((inbound, member))

    def claim_alarm(self, alias: str, member: str, kind: str) -> bool:
        if (alias, member, kind) in self.claims:
            return False
        self.claims.add((alias, member, kind))
        return True

    def release_alarm(self, alias: str, member: str, kind: str) -> None:
        self.claims.discard((alias, member, kind))

    def state(self, member: str) -> str:
        now = latest(self.histories[("inbound-1", member)])
        assert now is not None
        return now.state


@dataclass
class Alarms:
    sent: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    def notify(self, subject: str, message: str) -> None:
        if self.fail:
            raise RuntimeError("SNS is down")
        self.sent.append((subject, message))


def test_feedback_reads_each_documented_event_type() -> None:
    # GIVEN one record of each type the configuration set publishes, in the documented format
    m = mail("bob@gmail.com")
    records = {
        "sent": ses.send(m),
        "delivered": ses.delivery(m, "bob@gmail.com", "2026-11-30T09:14:33.000Z"),
        "bounced": ses.bounce(m, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550 5.1.1 no"),
        "suppressed": ses.bounce(m, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "OnAccountSuppressionList"),
        "complained": ses.complaint(m, "bob@gmail.com", "2026-11-30T10:00:00.000Z"),
        "delayed": ses.delay(m, "bob@gmail.com", "2026-11-30T09:30:00.000Z"),
        "rejected": ses.record("Reject", m, reason="Bad content"),
        "failed": ses.record("Rendering Failure", m, errorMessage="Attribute 'x' is not present", templateName="t"),
    }
    for state, item in records.items():
        # WHEN it is parsed
        (step,) = parse_record(json.dumps(item))
        # THEN it names the member of the tagged inbound mail and alias, in the expected state
        assert (step.inbound, step.alias, step.member, step.entry.state) == (
            "inbound-1",
            "team",
            "bob@gmail.com",
            state,
        )
    bounced = parse_record(json.dumps(records["bounced"]))[0].entry
    assert bounced.detail == "Permanent/General: smtp; 550 5.1.1 no"
    assert bounced.at == "2026-11-30T09:14:34.000Z"
    assert "452 4.2.2 Mailbox full" in parse_record(json.dumps(records["delayed"]))[0].entry.detail


def test_feedback_complaint_naming_several_recipients_says_it_may_be_any_of_them() -> None:
    # GIVEN a complaint from a provider that stripped the complainant: SES names every recipient it may be
    m = mail("bob@outlook.com", "carol@outlook.com", "dave@gmail.com")
    item = ses.complaint(m, "bob@outlook.com", "2026-11-30T10:00:00Z")
    item["complaint"]["complainedRecipients"].append({"emailAddress": "carol@outlook.com"})
    alone = ses.complaint(m, "dave@gmail.com", "2026-11-30T10:00:00Z")
    # WHEN they are parsed
    steps = parse_record(json.dumps(item))
    (single,) = parse_record(json.dumps(alone))
    # THEN both are complained, each detail saying it may have been the other; a complaint naming one says so plainly
    assert [(s.member, s.entry.state) for s in steps] == [
        ("bob@outlook.com", "complained"),
        ("carol@outlook.com", "complained"),
    ]
    assert {s.entry.detail for s in steps} == {"abuse (one of 2 recipients SES names: the provider did not say which)"}
    assert single.entry.detail == "abuse"
    # AND `forwarder trace` asks rather than tells the operator to remove a member who may not have complained
    from forwarder_ops.trace import compose, render

    items = [{"sk": f"member#{s.member}", "alias": "team", "history": [s.entry.as_item()]} for s in [*steps, single]]
    fixes = [line for line in render(compose("inbound-1", items)) if line.startswith("  fix:")]
    assert fixes == [
        "  fix: bob@outlook.com or another member at the same provider marked the mail as spam: ask them",
        "  fix: carol@outlook.com or another member at the same provider marked the mail as spam: ask them",
        "  fix: dave@gmail.com marked the mail as spam: ask them, or remove them from team",
    ]


def test_feedback_ignores_unread_fields_untagged_sends_and_other_types() -> None:
    # GIVEN a record with fields SES may add, one without our tags, and an Open event
    extra = {**ses.send(mail()), "somethingNew": {"x": 1}}
    untagged = ses.send(ses.mail_object("ses-2", ["bob@gmail.com"], {}, SENT_AT))
    opened = {"eventType": "Open", "mail": mail(), "open": {"timestamp": SENT_AT}}
    # THEN the first is read, the others give nothing, and only non-JSON is an error
    assert len(parse_record(json.dumps(extra))) == 1
    assert parse_record(json.dumps(untagged)) == []
    assert parse_record(json.dumps(opened)) == []
    with pytest.raises(FeedbackError):
        parse_record("not json")


@pytest.mark.parametrize("recipients", [None, [], [None, ""]])
def test_feedback_delivery_naming_no_recipient_delivers_nobody(recipients: Any) -> None:
    # GIVEN a Delivery of a send to bob and carol that names no recipient it was delivered to
    item = ses.delivery(mail("bob@gmail.com", "carol@gmail.com"), "bob@gmail.com", "2026-11-30T09:14:33.000Z")
    item["delivery"]["recipients"] = recipients
    # WHEN it is parsed THEN no member is taken for delivered (SES may report each member in a Delivery of its own)
    assert parse_record(json.dumps(item)) == []


def test_trace_latest_state_follows_event_time_not_arrival() -> None:
    # GIVEN a member's Delivery arriving before its Send, and a delay stamped before the delivery arriving last
    m = mail()
    arrivals = [
        ses.delivery(m, "bob@gmail.com", "2026-11-30T09:20:00.000Z"),
        ses.send(m),
        ses.delay(m, "bob@gmail.com", "2026-11-30T09:15:00.000Z"),
    ]
    history: list[TraceEntry] = []
    for item in arrivals:
        history, added = merge_entry(history, parse_record(json.dumps(item))[0].entry)
        assert added
    # THEN the member is delivered, and the path is in event order
    assert latest(history).state == "delivered"  # type: ignore[union-attr]
    assert path(history) == ["sent", "delayed", "delivered"]


def test_trace_same_instant_later_stage_wins() -> None:
    first = TraceEntry("2026-11-30T09:14:31.100Z", "delivered", "Delivery", "d")
    second = TraceEntry("2026-11-30T09:14:31.100Z", "sent", "Send", "s")
    history, _ = merge_entry([first], second)
    assert latest(history) == first


@pytest.mark.parametrize("bounce_first", [False, True])
def test_trace_bounce_stamped_before_the_delivery_it_follows_still_wins(bounce_first: bool) -> None:
    # GIVEN bob's server accepted the copy (SES's Delivery at .400), then bounced it within the second: the
    # Bounce carries the DSN's time, to the second, which reads earlier than the Delivery
    from forwarder_ops.trace import compose

    m = mail()
    events = [
        ses.send(m),
        ses.delivery(m, "bob@gmail.com", "2026-11-30T09:14:33.400Z"),
        ses.bounce(m, "bob@gmail.com", "2026-11-30T09:14:33Z", "Permanent", "General", "smtp; 550 5.7.1 rejected"),
    ]
    trace = MemoryTrace()
    # WHEN the events are recorded, in either order of arrival
    record_events(ses.sns_event(*(reversed(events) if bounce_first else events)), trace, None)
    # THEN bob's copy is bounced, not delivered, in the function's state and in `forwarder trace`
    history = trace.histories[("inbound-1", "bob@gmail.com")]
    assert trace.state("bob@gmail.com") == "bounced"
    assert path(history) == ["sent", "delivered", "bounced"]
    member_item = {"sk": "member#bob@gmail.com", "alias": "team", "history": [e.as_item() for e in history]}
    (row,) = compose("inbound-1", [member_item]).members
    assert (row.state, row.problem) == ("bounced", True)


def test_delivery_redelivered_notification_adds_no_history() -> None:
    # GIVEN a Send and a Delivery notification, the Delivery delivered twice by SNS
    trace = MemoryTrace()
    m = mail()
    done = ses.delivery(m, "bob@gmail.com", "2026-11-30T09:14:33.000Z")
    first = record_events(ses.sns_event(ses.send(m), done), trace, None)
    # WHEN the duplicate arrives
    again = record_events(ses.sns_event(done), trace, None)
    # THEN it is recognised, and the history holds each event once
    assert first["added"] == 2
    assert again == {"added": 0, "duplicates": 1, "skipped": 0, "alarms": 0}
    assert [e.state for e in trace.histories[("inbound-1", "bob@gmail.com")]] == ["sent", "delivered"]


def test_delivery_permanent_bounce_and_complaint_alarm_once_naming_alias_and_member() -> None:
    # GIVEN the forwarder sent bob the mail under `team.lead` (the tag holds the sanitised `team_lead`)
    trace = MemoryTrace(
        aliases={("inbound-1", "bob@gmail.com"): "team.lead", ("inbound-2", "bob@gmail.com"): "team.lead"}
    )
    alarms = Alarms()
    m = mail("bob@gmail.com", "carol@gmail.com")
    events = [
        ses.bounce(m, "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550 5.1.1 unknown"),
        ses.bounce(m, "carol@gmail.com", "2026-11-30T09:14:34Z", "Transient", "MailboxFull", "smtp; 452 full"),
        ses.complaint(m, "carol@gmail.com", "2026-11-30T10:00:00Z"),
    ]
    # WHEN the events arrive, and a second mail bounces for bob again
    record_events(ses.sns_event(*events), trace, alarms)
    later = ses.mail_object("ses-9", ["bob@gmail.com"], {"inbound": "inbound-2", "alias": "team_lead"}, SENT_AT)
    bounced_again = ses.bounce(later, "bob@gmail.com", "2026-11-30T11:00:00Z", "Permanent", "General")
    assert record_events(ses.sns_event(bounced_again), trace, alarms)["added"] == 1
    # THEN one alarm for bob's bounce (not two), one for carol's complaint, none for the transient bounce
    subjects = sorted(subject for subject, _ in alarms.sent)
    assert subjects == [
        "Forwarder: bob@gmail.com of alias team.lead: bounce",
        "Forwarder: carol@gmail.com of alias team: complaint",
    ]
    assert "inbound-1" in alarms.sent[0][1]
    assert trace.state("carol@gmail.com") == "complained"


def test_delivery_alarm_not_published_is_claimed_again_on_retry() -> None:
    # GIVEN the alarm topic fails WHEN a permanent bounce arrives THEN the invocation fails and the claim is released
    trace, alarms = MemoryTrace(), Alarms(fail=True)
    event = ses.sns_event(ses.bounce(mail(), "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General"))
    with pytest.raises(RuntimeError):
        record_events(event, trace, alarms)
    assert trace.claims == set()


def test_delivery_alarm_not_published_is_sent_when_lambda_retries_the_event() -> None:
    # GIVEN a permanent bounce whose alarm the topic refused: the step is recorded, the invocation failed
    trace, alarms = MemoryTrace(), Alarms(fail=True)
    event = ses.sns_event(ses.bounce(mail(), "bob@gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General"))
    with pytest.raises(RuntimeError):
        record_events(event, trace, alarms)
    # WHEN Lambda retries the same event and the topic works again, and SNS later delivers it once more
    alarms.fail = False
    retried = record_events(event, trace, alarms)
    again = record_events(event, trace, alarms)
    # THEN the retry sends the alarm (the step itself is a duplicate), and the redelivery sends no second one
    assert retried == {"added": 0, "duplicates": 1, "skipped": 0, "alarms": 1}
    assert again["alarms"] == 0
    assert [subject for subject, _ in alarms.sent] == ["Forwarder: bob@gmail.com of alias team: bounce"]


def test_delivery_unreadable_records_are_skipped_not_retried() -> None:
    event = ses.sns_event(ses.send(mail()))
    event["Records"][0]["Sns"]["Message"] = "{broken"
    assert record_events(event, MemoryTrace(), None)["skipped"] == 1
    assert record_events({"not": "sns"}, MemoryTrace(), None)["skipped"] == 1


@pytest.mark.parametrize("stamp", ["", "yesterday", "99999-01-01T00:00:00Z"])
def test_delivery_redelivered_event_with_an_unreadable_time_is_recorded_once(stamp: str) -> None:
    # GIVEN a Delivery whose own timestamp cannot be read (missing, not a time, beyond the calendar)
    m = mail()
    event = ses.sns_event(ses.delivery(m, "bob@gmail.com", stamp))
    trace = MemoryTrace()
    first = record_events(event, trace, None)
    # WHEN SNS delivers it again, later
    again = record_events(event, trace, None)
    # THEN the second is recognised as the same event: one history entry, stamped with the send's time
    assert (first["added"], again["duplicates"]) == (1, 1)
    [entry] = trace.histories[("inbound-1", "bob@gmail.com")]
    assert entry.at == normalise_time(m["timestamp"])


def test_delivery_a_record_without_a_message_skips_only_itself() -> None:
    # GIVEN an SNS event whose first record lost its Message, beside a good Send and Delivery
    m = mail()
    event = ses.sns_event(ses.send(m), ses.send(m), ses.delivery(m, "bob@gmail.com", "2026-11-30T09:14:33.000Z"))
    del event["Records"][0]["Sns"]["Message"]
    trace = MemoryTrace()
    # WHEN the delivery function records it
    result = record_events(event, trace, None)
    # THEN the bad record is skipped and the good ones are recorded
    assert result == {"added": 2, "duplicates": 0, "skipped": 1, "alarms": 0}
    assert trace.state("bob@gmail.com") == "delivered"


def test_trace_compose_ses_events_win_over_the_forwarders_late_record() -> None:
    # GIVEN the forwarder wrote its record after SES had already delivered to the first member
    from forwarder_ops.trace import compose

    mail_item = {
        "pk": "mail#m1",
        "sk": "mail",
        "received": "2026-11-30T09:00:00.000Z",
        "recorded": "2026-11-30T09:00:09.000Z",
        "members": [{"alias": "team", "member": "bob@gmail.com", "status": "sent", "detail": ""}],
    }
    delivered = TraceEntry("2026-11-30T09:00:05.000Z", "delivered", "Delivery", "k")
    member_item = {"pk": "mail#m1", "sk": "member#bob@gmail.com", "history": [delivered.as_item()]}

    # WHEN the trace is composed THEN bob is delivered, after the forwarder's send
    (row,) = compose("m1", [member_item, mail_item]).members
    assert (row.state, row.path) == ("delivered", ("sent", "delivered"))


def test_delivery_counts_member_states_as_metrics() -> None:
    from forwarder.observability import metrics

    m = mail()
    record_events(
        ses.sns_event(ses.send(m), ses.complaint(m, "bob@gmail.com", "2026-11-30T10:00:00Z")), MemoryTrace(), None
    )
    counted = metrics.metric_set
    assert counted["MemberEvents"]["Value"] == [1.0, 1.0]
    assert "MemberComplained" in counted and "MemberBounced" not in counted


OUTSIDER = "carol@customer.example"


def outside_reply() -> dict[str, Any]:
    """The mail object of a relayed reply's send to the outside sender (the relay tags it `outside`)."""
    return ses.mail_object("ses-2", [OUTSIDER], {**TAGS, "outside": "true"}, SENT_AT)


def test_delivery_outside_sender_bouncing_a_relayed_reply_gets_its_own_alarm_without_the_member_fix() -> None:
    from forwarder.observability import metrics

    # GIVEN a member's reply relayed as team to the outside sender, whose server refuses it for good
    trace, alarms = MemoryTrace(aliases={("inbound-1", OUTSIDER): "team"}), Alarms()
    bounced = ses.bounce(outside_reply(), OUTSIDER, "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550 5.1.1")
    # WHEN the delivery function records the bounce
    result = record_events(ses.sns_event(bounced), trace, alarms)
    # THEN the operators hear of it once, as the outside address of a reply: nothing in the aliases is wrong, and
    # the advice is not the member alarm's "forwarder aliases remove" (before: "of alias team: bounce", remove it)
    assert result["alarms"] == 1
    [(subject, message)] = alarms.sent
    assert subject == f"Forwarder: reply of alias team to {OUTSIDER}: bounce"
    assert f"{OUTSIDER} is not a member of team: nothing to change in the aliases" in message
    assert "aliases remove" not in message
    # AND it counts as the outside sender's problem, not a member's
    assert "OutsideBounced" in metrics.metric_set and "MemberBounced" not in metrics.metric_set
    # AND `forwarder trace` says the same of that row, not "correct or remove it (forwarder aliases remove ...)"
    from forwarder_ops.trace import compose, render

    [entry] = trace.histories[("inbound-1", OUTSIDER)]
    items = [{"sk": f"member#{OUTSIDER}", "alias": "team", "history": [entry.as_item()]}]
    fixes = [line for line in render(compose("inbound-1", items)) if line.startswith("  fix:")]
    assert fixes == [
        f"  fix: {OUTSIDER} (an outside address the reply went to, not a member of team: nothing to change) "
        "does not accept mail: tell the member who wrote the reply that it did not arrive"
    ]


def test_delivery_alarm_of_someone_in_cc_of_a_relayed_reply_does_not_call_them_the_sender() -> None:
    # GIVEN a reply relayed to the outside sender and, in Cc, Dan, whose server refuses it for good
    dan = "dan@partner.example"
    alarms = Alarms()
    mail = ses.mail_object("ses-2", [OUTSIDER, dan], {**TAGS, "outside": "true"}, SENT_AT)
    bounced = ses.bounce(mail, dan, "2026-11-30T09:14:34Z", "Permanent", "General", "smtp; 550 5.1.1")
    # WHEN the delivery function records the bounce
    record_events(ses.sns_event(bounced), MemoryTrace(), alarms)
    # THEN the alarm names Dan as an outside address of the reply, not as "the outside sender it answered"
    [(subject, message)] = alarms.sent
    assert subject == f"Forwarder: reply of alias team to {dan}: bounce"
    assert "the outside sender it answered" not in message and f"reach {dan} another way" in message


def test_delivery_outside_sender_complaining_of_a_relayed_reply_is_not_told_to_leave_the_alias() -> None:
    # GIVEN the outside sender marks the team's reply as spam
    alarms = Alarms()
    complained = ses.complaint(outside_reply(), OUTSIDER, "2026-11-30T10:00:00Z")
    # WHEN it is recorded THEN the alarm names the reply, and no alias change
    record_events(ses.sns_event(complained), MemoryTrace(), alarms)
    [(subject, message)] = alarms.sent
    assert subject == f"Forwarder: reply of alias team to {OUTSIDER}: complaint"
    assert f"{OUTSIDER} marked a reply sent as alias team as spam" in message
    assert "aliases remove" not in message


def test_trace_entry_of_a_member_is_stored_as_before_and_the_outside_mark_survives_a_round_trip() -> None:
    member = TraceEntry("2026-11-30T09:00:05.000Z", "delivered", "Delivery", "k")
    outside = TraceEntry("2026-11-30T09:00:05.000Z", "bounced", "Bounce", "k", "Permanent", outside=True)
    assert "outside" not in member.as_item()
    assert TraceEntry.from_item(outside.as_item()) == outside
    assert TraceEntry.from_item(member.as_item()) == member


@pytest.mark.parametrize("reply", ["reply-not-member", "reply-spam", "reply-unsendable", "reply-expired"])
def test_decision_text_names_a_reply_forwarded_instead_of_relayed(reply: str) -> None:
    # GIVEN mail to a reply address that was forwarded to the members instead of relayed, for each reason
    # WHEN the trace words the decision THEN it says the reply was not relayed, and why
    assert (
        decision_text(True, None, False, reply)
        == f"reply not relayed ({reply}): forwarded to the members, subject tagged"
    )
    assert decision_text(True, None, False, "relayed").startswith("reply relayed to the outside sender")


CLAIM = "0123456789abcdef0123456789abcdef"


def claimed_mail(ses_id: str) -> dict[str, Any]:
    """The mail object of a send that carried a claim tag (the forwarder's send-event mode)."""
    return ses.mail_object(ses_id, ("bob@gmail.com",), {**TAGS, "claim": CLAIM}, SENT_AT)


@dataclass
class Completions:
    """The claim completer the delivery function is given, recording what it was asked to complete."""

    claims: list[tuple[str, str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def __call__(self, claim: str, ses_id: str, notice: bool) -> bool:
        self.claims.append((claim, ses_id))
        if notice:
            self.notices.append(ses_id)
        return True


def test_delivery_completes_the_claim_of_a_tagged_send_only() -> None:
    # GIVEN a send that carried a claim tag (send-event mode), its Send and Delivery events, and an untagged send
    claimed = claimed_mail("ses-7")
    plain = ses.mail_object("ses-8", ("bob@gmail.com",), TAGS, SENT_AT)
    completed = Completions()

    # WHEN the delivery function records them
    done = ses.delivery(claimed, "bob@gmail.com", "2026-11-30T09:14:33.000Z")
    record_events(ses.sns_event(ses.send(claimed), done, ses.send(plain)), MemoryTrace(), None, completed)
    # THEN each event of the claimed send asks to complete its claim, with SES's message id as the result (the
    # completion is conditional on the claim being in progress: the Delivery's finds it completed); the untagged
    # send's event asks nothing
    assert completed.claims == [(CLAIM, "ses-7"), (CLAIM, "ses-7")]
    assert completed.notices == []


AT = "2026-11-30T09:14:33.000Z"
# An event of each type that follows a send SES took, as SES publishes it.
LATER_EVENTS = {
    "Delivery": lambda mail: ses.delivery(mail, "bob@gmail.com", AT),
    "Bounce": lambda mail: ses.bounce(mail, "bob@gmail.com", AT, "Permanent", "General"),
    "Complaint": lambda mail: ses.complaint(mail, "bob@gmail.com", AT),
    "DeliveryDelay": lambda mail: ses.delay(mail, "bob@gmail.com", AT),
    "Reject": lambda mail: ses.record("Reject", mail, reason="Bad content"),
}


@pytest.mark.parametrize("kind", sorted(LATER_EVENTS))
def test_delivery_completes_the_claim_from_any_event_of_the_send_when_the_send_event_is_lost(kind: str) -> None:
    # GIVEN a claimed send whose Send event was lost (or comes later), and one later event of it
    completed = Completions()
    # WHEN the delivery function records that event
    record_events(ses.sns_event(LATER_EVENTS[kind](claimed_mail("ses-7"))), MemoryTrace(), None, completed)
    # THEN it completes the send's claim, as the Send event would: SES took the mail
    assert completed.claims == [(CLAIM, "ses-7")]


def test_delivery_a_later_event_of_a_notice_completes_its_claim_saying_it_was_a_notice() -> None:
    # GIVEN a notice sent in place of a refused mail (tagged notice=true), of which only the Delivery event came
    notice = ses.mail_object("ses-9", ("bob@gmail.com",), {**TAGS, "claim": CLAIM, "notice": "true"}, SENT_AT)
    completed = Completions()
    # WHEN the delivery function records it THEN the claim's completion says it was a notice
    record_events(ses.sns_event(ses.delivery(notice, "bob@gmail.com", AT)), MemoryTrace(), None, completed)
    assert completed.claims == [(CLAIM, "ses-9")] and completed.notices == ["ses-9"]


def test_delivery_a_rendering_failure_does_not_complete_the_claim() -> None:
    # GIVEN a claimed send that SES failed to render: it sent nothing, the retry must send
    completed = Completions()
    failed = ses.record("Rendering Failure", claimed_mail("ses-7"), errorMessage="Attribute 'name' is not present")
    # WHEN the delivery function records it THEN the claim is left in progress
    result = record_events(ses.sns_event(failed), MemoryTrace(), None, completed)
    assert result["added"] == 1
    assert completed.claims == []


def test_delivery_completes_a_notices_claim_saying_it_was_a_notice() -> None:
    # GIVEN the Send event of a notice the forwarder sent in place of a mail SES refused (tagged notice=true)
    notice = ses.mail_object("ses-9", ("bob@gmail.com",), {**TAGS, "claim": CLAIM, "notice": "true"}, SENT_AT)
    completed = Completions()
    # WHEN the delivery function records it THEN the claim's completion says it was a notice
    record_events(ses.sns_event(ses.send(notice)), MemoryTrace(), None, completed)
    assert completed.claims == [(CLAIM, "ses-9")] and completed.notices == ["ses-9"]


def test_delivery_claim_completion_failure_raises_for_sns_to_retry() -> None:
    claimed = claimed_mail("ses-7")

    def complete(claim: str, ses_id: str, notice: bool) -> bool:
        raise ConnectionError("DynamoDB is unreachable")

    with pytest.raises(ConnectionError):
        record_events(ses.sns_event(ses.send(claimed)), MemoryTrace(), None, complete)


def test_delivery_completes_the_claim_even_when_the_trace_write_fails() -> None:
    # GIVEN the Send event of a claimed send (send-event mode), and a trace table that refuses the member's step
    claimed = claimed_mail("ses-7")
    completed = Completions()

    class Unwritable(MemoryTrace):
        def add_event(self, inbound: str, alias: str, member: str, entry: TraceEntry) -> bool:
            raise ConnectionError("the trace table is unreachable")

    # WHEN the delivery function records it
    with pytest.raises(ConnectionError):
        record_events(ses.sns_event(ses.send(claimed)), Unwritable(), None, completed)
    # THEN the event is retried for the trace, but the claim is completed already: the forwarder's idempotency
    # does not wait for the trace (after Lambda's two retries the event is dropped, and a claim never completed
    # is taken over by a later duplicate or redrive: the members would get the mail twice)
    assert completed.claims == [(CLAIM, "ses-7")]


def test_delivery_completes_the_claim_of_a_send_that_ses_rejected_for_a_virus() -> None:
    # GIVEN a claimed send that SES accepted and then rejected (a virus): sending it again would be rejected too
    claimed = claimed_mail("ses-9")
    completed = Completions()

    # WHEN only its Reject event arrives
    rejected = ses.record("Reject", claimed, reason="Bad content")
    record_events(ses.sns_event(rejected), MemoryTrace(), None, completed)
    # THEN the claim is completed: a retried event does not send it again
    assert completed.claims == [(CLAIM, "ses-9")]


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_delivery_a_time_beyond_the_calendar_in_utc_is_read_as_unknown(stamp: str) -> None:
    # GIVEN the Send event of a claimed send whose mail timestamp falls outside the calendar once in UTC
    item = ses.send(claimed_mail("ses-7"))
    item["mail"]["timestamp"] = stamp
    completed = Completions()
    # WHEN the delivery function records it
    result = record_events(ses.sns_event(item), MemoryTrace(), None, completed)
    # THEN it neither raises (Lambda would retry it in vain) nor loses the step or the claim's completion
    assert result["added"] == 1
    assert completed.claims == [(CLAIM, "ses-7")]


def test_decision_text_of_an_interrupted_forward_names_the_error_and_the_retry() -> None:
    text = decision_text(False, "interrupted: TooManyRequestsException", False)
    assert text.startswith("interrupted by TooManyRequestsException: Lambda retries the event")


def test_delivery_not_spam_feedback_is_no_complaint_and_alarms_nobody() -> None:
    # GIVEN bob's provider reports the forward with Feedback-Type not-spam (RFC 5965: the reporter does not consider
    # it spam, e.g. bob moved it out of his spam folder), which SES publishes as a Complaint event
    trace, alarms = MemoryTrace(), Alarms()
    m = mail("bob@gmail.com")
    not_spam = ses.complaint(m, "bob@gmail.com", "2026-11-30T10:00:00.000Z")
    not_spam["complaint"]["complaintFeedbackType"] = "not-spam"
    # WHEN the delivery function records it after the Send
    result = record_events(ses.sns_event(ses.send(m), not_spam), trace, alarms)
    # THEN bob is not taken for a complainant: no alarm, and his copy reads as arrived, saying why
    assert result["alarms"] == 0 and alarms.sent == []
    assert trace.state("bob@gmail.com") == "delivered"
    assert "not spam" in trace.histories[("inbound-1", "bob@gmail.com")][-1].detail


def test_delivery_bounce_naming_the_final_recipient_of_a_members_forwarding_is_the_members() -> None:
    # GIVEN the forwarder sent bob@school.edu his copy alone, and his school forwards it to bob@mailbox.example, which
    # bounces: SES's bouncedRecipients names the DSN's Final-Recipient, the address that refused, not bob's
    trace, alarms = MemoryTrace(aliases={("inbound-1", "bob@school.edu"): "team"}), Alarms()
    m = mail("bob@school.edu")
    diagnostic = "smtp; 550 5.1.1 " + "x" * 5000  # longer than a step's detail keeps
    bounced = ses.bounce(m, "Bob@Mailbox.example", "2026-11-30T09:14:34Z", "Permanent", "General", diagnostic)
    # WHEN the delivery function records the Send and the Bounce
    record_events(ses.sns_event(ses.send(m), bounced), trace, alarms)
    # THEN the bounce is bob's (no row for an address that is no member), saying which address refused it
    assert list(trace.histories) == [("inbound-1", "bob@school.edu")]
    assert trace.state("bob@school.edu") == "bounced"
    assert "bob@mailbox.example" in trace.histories[("inbound-1", "bob@school.edu")][-1].detail.lower()
    # AND the alarm names the member to fix
    assert [subject for subject, _ in alarms.sent] == ["Forwarder: bob@school.edu of alias team: bounce"]


def test_delivery_bounce_of_an_unknown_address_in_a_send_to_several_is_not_attributed_to_one_of_them() -> None:
    # GIVEN a send to bob and carol whose bounce names an address neither of them is, and one naming carol in capitals
    m = mail("bob@school.edu", "carol@gmail.com")
    unknown = ses.bounce(m, "someone@mailbox.example", "2026-11-30T09:14:34Z", "Permanent", "General")
    carol = ses.bounce(m, "Carol@Gmail.com", "2026-11-30T09:14:34Z", "Permanent", "General")
    # WHEN they are parsed THEN the unknown one is recorded as SES names it (which member forwards there, nobody can
    # tell), and carol's is carol's
    assert [s.member for s in parse_record(json.dumps(unknown))] == ["someone@mailbox.example"]
    assert [(s.member, s.entry.detail) for s in parse_record(json.dumps(carol))] == [
        ("carol@gmail.com", "Permanent/General: 5.1.1")
    ]


def test_delivery_complaint_naming_several_members_alarms_once_and_keeps_their_own_alarms() -> None:
    # GIVEN a complaint from a provider that stripped the complainant: SES names bob, carol and dave, any of whom
    trace, alarms = MemoryTrace(), Alarms()
    m = mail("bob@outlook.com", "carol@outlook.com", "dave@outlook.com")
    unsure = ses.complaint(m, "bob@outlook.com", "2026-11-30T10:00:00Z")
    unsure["complaint"]["complainedRecipients"] += [
        {"emailAddress": "carol@outlook.com"},
        {"emailAddress": "dave@outlook.com"},
    ]
    # WHEN it is recorded (twice: SNS redelivers), and later carol alone complains about another mail
    record_events(ses.sns_event(unsure), trace, alarms)
    record_events(ses.sns_event(unsure), trace, alarms)
    later = ses.mail_object("ses-9", ["carol@outlook.com"], {"inbound": "inbound-2", "alias": "team"}, SENT_AT)
    record_events(ses.sns_event(ses.complaint(later, "carol@outlook.com", "2026-11-30T11:00:00Z")), trace, alarms)
    # THEN one alarm for the one complaint, saying it may be any of them, and carol's own complaint still alarms
    assert len(alarms.sent) == 2
    subject, message = alarms.sent[0]
    assert subject == "Forwarder: alias team: complaint by one of 3 members"
    assert "bob@outlook.com" in message and "carol@outlook.com" in message and "dave@outlook.com" in message
    assert "did not say which" in message
    assert alarms.sent[1][0] == "Forwarder: carol@outlook.com of alias team: complaint"
    # AND each member's trace still shows the complaint
    assert {trace.state(m) for m in ("bob@outlook.com", "carol@outlook.com", "dave@outlook.com")} == {"complained"}


def test_delivery_bounce_of_an_address_the_send_did_not_go_to_is_not_called_a_member_to_remove() -> None:
    # GIVEN a send to bob and carol of alias team; one of them forwards to someone@mailbox.example, which bounces
    trace, alarms = MemoryTrace(), Alarms()
    m = mail("bob@school.edu", "carol@gmail.com")
    diagnostic = "smtp; 550 " + "x" * 5000  # longer than a step's detail keeps
    unknown = ses.bounce(m, "someone@mailbox.example", "2026-11-30T09:14:34Z", "Permanent", "General", diagnostic)
    # WHEN the delivery function records it
    record_events(ses.sns_event(unknown), trace, alarms)
    # THEN neither the alarm nor `forwarder trace` tells the operator to remove that address from the alias (it is on
    # no alias): they say that a member's mailbox forwards there
    from forwarder_ops.trace import compose, render

    [(subject, message)] = alarms.sent
    assert subject == "Forwarder: someone@mailbox.example of alias team: bounce"
    assert "aliases remove" not in message and "forwards" in message
    [entry] = trace.histories[("inbound-1", "someone@mailbox.example")]
    mail_item = {
        "sk": "mail",
        "received": SENT_AT,
        "members": [
            {"alias": "team", "member": "bob@school.edu", "status": "sent"},
            {"alias": "team", "member": "carol@gmail.com", "status": "sent"},
        ],
    }
    items = [mail_item, {"sk": "member#someone@mailbox.example", "alias": "team", "history": [entry.as_item()]}]
    fixes = [line for line in render(compose("inbound-1", items)) if line.startswith("  fix:")]
    assert len(fixes) == 1 and "aliases remove" not in fixes[0] and "forwards" in fixes[0]


@pytest.mark.parametrize(
    "member", ["bob.the.long.named.member.of.the.team@department.example-university.edu", "bob\u2028\u202e@gmail.com"]
)
def test_delivery_alarm_subject_is_one_that_sns_accepts(member: str) -> None:
    # GIVEN a permanent bounce of a long address (the subject, cut at 100 characters, was as long as SNS refuses: it
    # takes "less than 100"), or of one holding a line separator and a bidirectional override (a DSN's Final-Recipient)
    trace, alarms = MemoryTrace(), Alarms()
    m = ses.mail_object("ses-1", [member], {"inbound": "inbound-1", "alias": "workshop-organisers"}, SENT_AT)
    # WHEN the delivery function alarms
    record_events(ses.sns_event(ses.bounce(m, member, "2026-11-30T09:14:34Z", "Permanent", "General")), trace, alarms)
    # THEN the subject is what SNS takes: under 100 characters, no line break, control or format character
    [(subject, _)] = alarms.sent
    assert len(subject) < 100
    assert subject.isprintable()
    assert subject.startswith("Forwarder: bob")


def test_trace_timestamp_of_a_year_before_1000_still_sorts_in_time_order() -> None:
    # GIVEN a Delivery stamped by a clock that is centuries off (a DSN's time is the receiving side's), and a real one
    wrong, right = normalise_time("0999-01-01T00:00:00Z"), normalise_time("2026-11-30T09:14:33Z")
    # THEN the stamp keeps its four-digit year, so that the strings (which the trace compares) sort as the times do
    assert wrong == "0999-01-01T00:00:00.000Z"
    assert sorted([right, wrong]) == [wrong, right]


@pytest.mark.parametrize("since", ["0500-01-01", "1990-01-01T00:00"])
def test_trace_since_a_date_older_than_the_longest_span_is_refused_not_queried_day_by_day(since: str) -> None:
    # GIVEN `forwarder trace --since` a date long before any retention (each day is one query of the by-day index)
    from datetime import UTC, datetime

    from forwarder_ops.errors import CommandError
    from forwarder_ops.trace import parse_since

    # WHEN it is read THEN it is refused in one line, as the same span given as a duration is
    with pytest.raises(CommandError, match="at most 3650 days"):
        parse_since(since, now=datetime(2026, 11, 30, tzinfo=UTC))
    with pytest.raises(CommandError, match="at most 3650 days"):
        parse_since("20000d", now=datetime(2026, 11, 30, tzinfo=UTC))
    assert parse_since("2026-11-28", now=datetime(2026, 11, 30, tzinfo=UTC)) == "2026-11-28T00:00:00.000Z"
