"""Replies as the team when SES refuses some of the conversation's outside people: the answer still reaches the
outside sender and every other address SES takes; the refused ones are left out, counted, traced and shown to
the members (issue: one bad Cc kept the whole answer from the outside sender)."""

from __future__ import annotations

from email.message import EmailMessage

import boto3
import pytest

from forwarder.mail.message import split_message
from forwarder_ops.local import TRACE_TABLE, EmbeddedAws, SesRefusal, embedded_aws
from tests.conftest import DOMAIN
from tests.integration.test_replies import (
    ALICE,
    AUTHENTIC,
    BOB,
    DAVE,
    OUTSIDE,
    TEAM,
    member_reply,
    reply_address_of,
    team_aws,  # noqa: F401  (the fixture)
)

FRANK, GINA = "frank.ho@customer.example", "gina.su@partner.example"


def forward_conversation(aws: EmbeddedAws, cc: tuple[str, ...] = (FRANK, GINA)) -> str:
    """Carol's mail to team@ with `cc` in Cc, forwarded; the reply address of its copies."""
    message = EmailMessage()
    message["From"] = f"Carol Wu <{OUTSIDE}>"
    message["To"] = f"team@{DOMAIN}"
    message["Cc"] = ", ".join(cc)
    message["Subject"] = "Booth for the summit?"
    message.set_content("Frank, Gina and I would like a booth.\n")
    _, [forward] = aws.deliver(bytes(message), [f"team@{DOMAIN}"], **AUTHENTIC)
    return reply_address_of(forward)


@pytest.mark.parametrize(
    "refusal",
    [
        SesRefusal("MessageRejected", "Illegal address"),
        SesRefusal("BadRequestException", "Missing final '@domain'"),
        SesRefusal("MessageRejected", "Email address is not verified. The following identities failed the check"),
    ],
)
def test_reply_one_cc_ses_refuses_still_reaches_the_sender_and_the_other_ccs(
    team_aws: EmbeddedAws,  # noqa: F811
    refusal: SesRefusal,
) -> None:
    # GIVEN a conversation of Carol with Frank and Gina in Cc, and SES refusing any send that names Frank
    address = forward_conversation(team_aws)
    team_aws.ses.refuse[FRANK] = refusal

    # WHEN Bob answers the reply address
    result, sent = team_aws.deliver(member_reply(address), [address], source=BOB, **AUTHENTIC)

    # THEN Carol and Gina get the answer from team@, Frank is left out, and the outcome names him as failed
    outcome = result["outcomes"][0]
    assert outcome["reply"] == "relayed" and outcome["forwarded"] is True
    assert outcome["failed"] == [FRANK]
    outside = sorted(m for mail in sent for m in mail.recipients if m in {OUTSIDE, FRANK, GINA})
    assert outside == sorted([OUTSIDE, GINA])
    assert all(mail.from_address == f"team@{DOMAIN}" for mail in sent)
    # AND the team's copy reaches the other members and Bob too (he would otherwise believe Frank got it), names
    # Frank as not reached, and still names nobody outside but through the reply address
    copies = [mail for mail in sent if not set(mail.recipients) & {OUTSIDE, FRANK, GINA}]
    assert sorted(m for c in copies for m in c.recipients) == sorted(TEAM)
    cc = split_message(copies[0].raw).first("cc")
    assert cc is not None
    assert "frank.ho at customer.example" in cc.value and "not reached" in cc.value
    assert "gina.su at partner.example" in cc.value
    assert FRANK.encode() not in copies[0].raw and GINA.encode() not in copies[0].raw
    assert outcome["recipients"] == 2 + len(TEAM)


def test_reply_the_outside_sender_ses_refuses_still_reaches_the_team_marked(
    team_aws: EmbeddedAws,  # noqa: F811
) -> None:
    # GIVEN a conversation with Frank and Gina in Cc, and SES refusing Carol herself
    address = forward_conversation(team_aws)
    team_aws.ses.refuse[OUTSIDE] = SesRefusal("MessageRejected", "Illegal address")
    # WHEN Bob answers
    result, sent = team_aws.deliver(member_reply(address), [address], source=BOB, **AUTHENTIC)
    # THEN as before: nobody outside gets it (the answer was to Carol), the members get it tagged `[not relayed]`
    assert result["outcomes"][0]["reply"] == "reply-refused"
    assert sorted(m for mail in sent for m in mail.recipients) == sorted(TEAM)


def test_reply_the_message_ses_refuses_costs_one_more_send_only(team_aws: EmbeddedAws) -> None:  # noqa: F811
    # GIVEN SES refusing the answer itself (its content: every send of it)
    address = forward_conversation(team_aws)
    calls = team_aws.ses.calls
    team_aws.ses.refuse_calls[calls + 1] = SesRefusal("MessageRejected", "Illegal filename 'quote.exe'.")
    team_aws.ses.refuse_calls[calls + 2] = SesRefusal("MessageRejected", "Illegal filename 'quote.exe'.")
    # WHEN Bob answers
    result, _ = team_aws.deliver(member_reply(address), [address], source=BOB, **AUTHENTIC)
    # THEN the batch and Carol alone were tried (not Frank and Gina one by one), and the team gets it tagged
    assert result["outcomes"][0]["reply"] == "reply-refused"
    assert team_aws.ses.calls == calls + 3  # the two refused sends, then the members' tagged forward


def test_retried_partially_refused_reply_sends_nothing_twice(team_aws: EmbeddedAws) -> None:  # noqa: F811
    # GIVEN an answer relayed to Carol and Gina, Frank refused
    address = forward_conversation(team_aws)
    team_aws.ses.refuse[FRANK] = SesRefusal("MessageRejected", "Illegal address")
    raw = member_reply(address)
    first, _ = team_aws.deliver(raw, [address], source=BOB, message_id="partly", **AUTHENTIC)
    # WHEN Lambda retries the same event
    again, sent = team_aws.deliver(raw, [address], source=BOB, message_id="partly", **AUTHENTIC)
    # THEN nothing is sent again, and the outcome says the same
    assert sent == []
    assert again["outcomes"][0]["failed"] == first["outcomes"][0]["failed"] == [FRANK]


def test_partially_refused_reply_is_in_the_delivery_trace_with_who_failed() -> None:
    from forwarder_ops.trace import TraceTable

    with embedded_aws(DOMAIN, {"team": TEAM}, reply_mode="team", trace=True) as aws:
        # GIVEN Bob's answer to a conversation whose Frank SES refuses
        address = forward_conversation(aws)
        aws.ses.refuse[FRANK] = SesRefusal("MessageRejected", "Illegal address")
        aws.deliver(member_reply(address), [address], source=BOB, message_id="partly", **AUTHENTIC)
        # WHEN the operator traces it THEN the record names Frank as failed, everyone else as sent
        trace = TraceTable(boto3.client("dynamodb"), TRACE_TABLE).mail("partly")
        assert trace.mail is not None and trace.mail["reply"] == "relayed"
        rows = {(row.member, row.state) for row in trace.members}
        assert rows == {
            (OUTSIDE, "sent"),
            (FRANK, "failed"),
            (GINA, "sent"),
            (ALICE, "sent"),
            (DAVE, "sent"),
            (BOB, "sent"),
        }


def test_reply_with_bcc_resent_fields_and_the_reply_address_twice_goes_out_once_without_them(
    team_aws: EmbeddedAws,  # noqa: F811
) -> None:
    # GIVEN Bob's answer with a Bcc, Resent-* fields (his mail program re-sent it), a new outside person in Cc, and
    # the reply address twice in the envelope, once in upper case
    address = forward_conversation(team_aws, cc=(FRANK,))
    raw = member_reply(
        address,
        Bcc="hidden@elsewhere.example",
        Resent_From=BOB,
        Resent_To="hidden@elsewhere.example",
        Resent_Message_ID="<resent-1@example.net>",
    )
    # WHEN it arrives
    result, sent = team_aws.deliver(raw, [address, address.upper()], source=BOB, **AUTHENTIC)
    # THEN one send goes out, to Carol and Frank only, naming none of the member's extra people or fields
    assert result["outcomes"][0]["reply"] == "relayed"
    [out] = [mail for mail in sent if OUTSIDE in mail.recipients]
    assert out.recipients == (OUTSIDE, FRANK)
    head = bytes(out.raw[: split_message(out.raw).body_start]).lower()
    for revealing in (b"bcc", b"resent-", b"hidden@", b"someone.else@"):
        assert revealing not in head, revealing
    # AND each other member gets one copy
    assert sorted(m for mail in sent if mail is not out for m in mail.recipients) == sorted([ALICE, DAVE])
