"""Replies as the team, end to end through `forwarder.app.lambda_handler` against moto (issue 10's Done-when).

An outside sender writes to team@; each member's copy has Reply-To = a reply address; a member's answer to it
goes to the outside sender from team@, copies to the other members; every refusal sends nothing outside.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import boto3
import pytest

from forwarder.mail.message import split_message
from forwarder_ops.local import REPLY_TABLE, TRACE_TABLE, EmbeddedAws, SentMail, SesRefusal, embedded_aws
from tests.conftest import DOMAIN

OUTSIDE = "carol.wu@customer.example"
ALICE, BOB, DAVE = "alice.chen@example.com", "bob.lin@example.net", "dave@example.org"
TEAM = [ALICE, BOB, DAVE]
AUTHENTIC = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}


@pytest.fixture
def team_aws() -> Iterator[EmbeddedAws]:
    with embedded_aws(DOMAIN, {"team": TEAM, "tech": [BOB, "erin@example.com"]}, reply_mode="team") as env:
        yield env


def outside_mail(to: str = f"team@{DOMAIN}", subject: str = "Booth for the summit?") -> bytes:
    message = EmailMessage()
    message["From"] = f"Carol Wu <{OUTSIDE}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = "<q-1@mail.customer.example>"
    message.set_content("Do you still have a booth for us?\n")
    return bytes(message)


def member_reply(reply_address: str, author: str = BOB, name: str = "Bob Lin", **extra: str) -> bytes:
    """A reply as a provider delivers it: the member's own Message-ID, Received, DKIM, X- fields, a quote."""
    message = EmailMessage()
    message["Received"] = "from mail-ej1.provider.example (mail-ej1.provider.example [192.0.2.7])"
    message["DKIM-Signature"] = f"v=1; a=rsa-sha256; d={author.partition('@')[2]}; s=s1; b=abc"
    message["Return-Path"] = f"<{author}>"
    message["From"] = f"{name} <{author}>"
    message["Sender"] = author
    message["To"] = reply_address
    message["Cc"] = f"someone.else@{author.partition('@')[2]}"
    message["Subject"] = "Re: Booth for the summit?"
    message["Message-ID"] = f"<r-1@mail.{author.partition('@')[2]}>"
    message["In-Reply-To"] = "<fwd-1@email.amazonses.com>"
    message["References"] = "<q-1@mail.customer.example> <fwd-1@email.amazonses.com>"
    message["X-Mailer"] = "ProviderMail 7"
    message["User-Agent"] = "ProviderMail 7"
    for name_, value in extra.items():
        message[name_.replace("_", "-")] = value
    message.set_content(
        f"Yes, booth 12 is yours.\n\nOn Mon, Carol Wu <{OUTSIDE}> wrote:\n> Do you still have a booth?\n"
    )
    return bytes(message)


def reply_address_of(sent: SentMail) -> str:
    field = split_message(sent.raw).first("reply-to")
    assert field is not None
    return field.value.rpartition("<")[2].rstrip(">")


def forward_outside_mail(aws: EmbeddedAws) -> str:
    """The outside mail forwarded to team; returns the reply address its copies carry."""
    _, sent = aws.deliver(outside_mail(), [f"team@{DOMAIN}"], **AUTHENTIC)
    [forward] = sent
    return reply_address_of(forward)


def reply(
    aws: EmbeddedAws, raw: bytes, to: str, source: str = BOB, **verdicts: str
) -> tuple[dict[str, Any], list[SentMail]]:
    result, sent = aws.deliver(raw, [to], source=source, **{**AUTHENTIC, **verdicts})
    return result["outcomes"][0], sent


def sent_outside(sent: list[SentMail]) -> list[SentMail]:
    return [mail for mail in sent if OUTSIDE in mail.recipients]


def test_outside_mail_reaches_members_with_a_reply_address(team_aws: EmbeddedAws) -> None:
    # WHEN an outside sender writes to team@
    _, sent = team_aws.deliver(outside_mail(), [f"team@{DOMAIN}"], **AUTHENTIC)

    # THEN every member gets it with Reply-To = one reply address on our domain that routes to team
    [forward] = sent
    assert set(forward.recipients) == set(TEAM)
    address = reply_address_of(forward)
    local, _, domain = address.partition("@")
    assert domain == DOMAIN
    assert local.startswith("team+r-") and len(local) <= 64
    assert OUTSIDE not in address
    # AND the original Message-ID is in References, so a member's reply still names it
    references = split_message(forward.raw).first("references")
    assert references is not None and "<q-1@mail.customer.example>" in references.value
    # AND the reply table holds whom the address stands for, with an expiry the TTL can act on
    [item] = boto3.client("dynamodb").scan(TableName=REPLY_TABLE)["Items"]
    assert (item["alias"]["S"], item["address"]["S"]) == ("team", OUTSIDE)
    assert int(item["expires"]["N"]) > int(item["created"]["N"])
    # AND the same sender's next mail carries the same reply address (one per thread)
    _, again = team_aws.deliver(outside_mail(subject="Second question"), [f"team@{DOMAIN}"], **AUTHENTIC)
    assert reply_address_of(again[0]) == address


def test_forward_keeps_no_field_that_answers_the_outside_sender_around_the_reply_address(
    team_aws: EmbeddedAws,
) -> None:
    # GIVEN an outside mail asking for read receipts and naming where group replies should go
    raw = outside_mail().replace(
        b"Subject:",
        f"Disposition-Notification-To: {OUTSIDE}\nReturn-Receipt-To: {OUTSIDE}\nMail-Followup-To: {OUTSIDE}\n"
        f"Mail-Reply-To: {OUTSIDE}\nErrors-To: {OUTSIDE}\nSubject:".encode(),
    )

    # WHEN it is forwarded to the team
    _, sent = team_aws.deliver(raw, [f"team@{DOMAIN}"], **AUTHENTIC)

    # THEN no field sends a member's receipt or group reply straight from their mailbox to the outside sender
    # (mutt and Gnus answer Mail-Followup-To/Mail-Reply-To before Reply-To): only Reply-To names an address
    [forward] = sent
    head = split_message(forward.raw)
    names = {field.key for field in head.fields}
    for field in ("disposition-notification-to", "return-receipt-to", "mail-followup-to", "mail-reply-to"):
        assert field not in names, field
    assert "errors-to" not in names
    assert OUTSIDE not in reply_address_of(forward)


def test_member_reply_goes_to_the_outside_sender_as_the_team(team_aws: EmbeddedAws) -> None:
    # GIVEN the reply address of a forwarded mail
    address = forward_outside_mail(team_aws)

    # WHEN Bob answers it from his own mailbox, authentically
    outcome, sent = reply(team_aws, member_reply(address), address)

    # THEN one send goes to the outside sender only, from team@, threaded, with Bob's name but no address of his
    assert outcome["reply"] == "relayed" and outcome["forwarded"] is True
    [out] = sent_outside(sent)
    assert out.recipients == (OUTSIDE,)
    assert out.from_address == f"team@{DOMAIN}"
    head = split_message(out.raw)
    values = {f.key: f.value for f in head.fields}
    assert values["from"] == f"Bob Lin via team <team@{DOMAIN}>"
    assert values["to"] == OUTSIDE
    assert values["subject"] == "Re: Booth for the summit?"
    assert values["in-reply-to"] == "<fwd-1@email.amazonses.com>"
    assert "<q-1@mail.customer.example>" in values["references"]
    header_block = bytes(out.raw[: head.body_start]).lower()
    for revealing in (b"bob.lin", b"example.net", b"provider", b"received", b"dkim", b"x-mailer", b"sender", b"cc:"):
        assert revealing not in header_block, revealing
    assert "reply-to" not in values  # the outside sender answers team@ (From)
    # AND the body is Bob's bytes unchanged (his mail program's quote line included)
    assert out.raw[head.body_start :] == split_message(member_reply(address)).body.tobytes()
    # AND every other member gets a copy with the same reply address, Bob none
    copies = [mail for mail in sent if mail is not out]
    assert sorted(m for c in copies for m in c.recipients) == sorted([ALICE, DAVE])
    copy_values = {f.key: f.value for f in split_message(copies[0].raw).fields}
    assert copy_values["reply-to"] == f'"carol.wu at customer.example via team" <{address}>'
    assert address in copy_values["to"]
    assert all(b"bob.lin@" not in bytes(c.raw[: split_message(c.raw).body_start]) for c in copies)


def test_member_answering_their_own_reply_again_does_not_name_their_provider(team_aws: EmbeddedAws) -> None:
    # GIVEN Bob's first answer relayed, and Bob adding to it by answering his own sent mail: his mail program
    # names that mail's Message-ID, made by his provider, in In-Reply-To and References
    address = forward_outside_mail(team_aws)
    reply(team_aws, member_reply(address), address)
    own = "<r-1@mail.example.net>"
    again = member_reply(address).replace(b"<fwd-1@email.amazonses.com>\n", f"{own}\n".encode(), 1)
    again = again.replace(b"<fwd-1@email.amazonses.com>\n", f"<fwd-1@email.amazonses.com> {own}\n".encode(), 1)
    assert f"In-Reply-To: {own}".encode() in again

    # WHEN it is relayed
    outcome, sent = reply(team_aws, again, address)

    # THEN the outside sender's copy names no id of Bob's provider (his domain), the thread's other ids kept
    assert outcome["reply"] == "relayed"
    [out] = sent_outside(sent)
    head = split_message(out.raw)
    assert b"example.net" not in bytes(out.raw[: head.body_start]).lower()
    assert head.first("in-reply-to") is None
    references = head.first("references")
    assert references is not None
    assert references.value.split() == ["<q-1@mail.customer.example>", "<fwd-1@email.amazonses.com>"]


def test_reply_to_an_outside_sender_who_joined_the_team_since_reaches_them_once(team_aws: EmbeddedAws) -> None:
    # GIVEN Carol's reply address, and Carol added to team afterwards (a new colleague who wrote before)
    address = forward_outside_mail(team_aws)
    team_aws.set_aliases({"team": [*TEAM, OUTSIDE]})

    # WHEN Bob answers her old thread
    outcome, sent = reply(team_aws, member_reply(address), address)

    # THEN Carol gets the answer once (as its addressee), not a team copy of it besides; the others their copy
    assert outcome["reply"] == "relayed"
    recipients = [m for mail in sent for m in mail.recipients]
    assert sorted(recipients) == sorted([OUTSIDE, ALICE, DAVE])


def test_reply_from_one_member_vouched_only_for_anothers_envelope_goes_out_as_that_member(
    team_aws: EmbeddedAws,
) -> None:
    # GIVEN a reply whose From is Alice but whose verdicts vouch only for Bob, its envelope sender (SPF PASS for
    # Bob's domain, no DMARC PASS for Alice's): Bob's server, writing in Alice's name
    address = forward_outside_mail(team_aws)
    raw = member_reply(address, author=ALICE, name="Alice Chen")

    # WHEN it arrives
    outcome, sent = reply(team_aws, raw, address, source=BOB, spf="PASS", dkim="FAIL", dmarc="GRAY")

    # THEN it goes out as the member the verdicts vouch for (Bob, unnamed: he did not write that From), not as
    # Alice; and Alice, who did not write it, gets the team's copy, Bob none
    assert outcome["reply"] == "relayed"
    [out] = sent_outside(sent)
    out_from = split_message(out.raw).first("from")
    assert out_from is not None and "Alice" not in out_from.value
    copies = sorted(m for mail in sent if mail is not out for m in mail.recipients)
    assert copies == sorted([ALICE, DAVE])


def test_reply_over_the_message_size_limit_is_not_sent_out_and_reaches_the_team_as_a_notice() -> None:
    # GIVEN a forwarder whose sends are limited to 20 kB (FORWARDER_MAX_MESSAGE_BYTES, e.g. 25 MB for Gmail)
    with embedded_aws(
        DOMAIN, {"team": TEAM}, reply_mode="team", settings={"FORWARDER_MAX_MESSAGE_BYTES": "20000"}
    ) as aws:
        address = forward_outside_mail(aws)
        raw = member_reply(address).replace(b"Yes, booth 12 is yours.", b"Yes, booth 12 is yours." + b" x" * 15_000)

        # WHEN Bob answers with a reply larger than that
        outcome, sent = reply(aws, raw, address)

    # THEN nothing over the limit goes out: not the reply to the outside sender, not the copies; the members,
    # Bob among them, get the notice with the download link, so Bob sees it was not relayed
    assert sent_outside(sent) == []
    assert outcome["reply"] == "reply-unsendable"
    assert all(len(mail.raw) <= 20_000 for mail in sent)
    assert sorted(m for mail in sent for m in mail.recipients) == sorted(TEAM)


def test_reply_ses_refuses_to_send_out_reaches_its_author_and_the_team_marked(team_aws: EmbeddedAws) -> None:
    # GIVEN SES refusing the reply to the outside address (e.g. an attachment type it does not send)
    address = forward_outside_mail(team_aws)
    team_aws.ses.refuse[OUTSIDE] = SesRefusal("MessageRejected", "Illegal filename 'quote.exe'.")
    # WHEN Bob replies
    outcome, sent = reply(team_aws, member_reply(address), address)
    # THEN nothing reaches the outside sender, and every member, Bob too, gets the reply tagged as not relayed,
    # so that Bob knows it did not go out
    assert outcome["reply"] == "reply-refused" and outcome["forwarded"]
    assert sent_outside(sent) == []
    assert sorted(m for mail in sent for m in mail.recipients) == sorted(TEAM)
    subject = split_message(sent[0].raw).first("subject")
    assert subject is not None and subject.value.startswith("[not relayed] ")


def test_reply_sends_carry_the_email_tags(team_aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a capture of the SES requests
    address = forward_outside_mail(team_aws)
    requests: list[dict[str, Any]] = []
    original = team_aws.ses.accept
    monkeypatch.setattr(team_aws.ses, "accept", lambda params: (requests.append(dict(params)), original(params))[1])

    # WHEN Bob's reply is relayed
    result, _ = team_aws.deliver(member_reply(address), [address], source=BOB, message_id="reply-tags", **AUTHENTIC)

    # THEN the reply and its copy are tagged with the inbound message id and the alias, like forwards; the reply
    # to the outside sender also with `outside` (this assertion was the same two tags on both requests)
    assert result["outcomes"][0]["reply"] == "relayed"
    assert len(requests) == 2
    tags = [{"Name": "inbound", "Value": "reply-tags"}, {"Name": "alias", "Value": "team"}]
    assert [request["EmailTags"] for request in requests] == [[*tags, {"Name": "outside", "Value": "true"}], tags]


def test_retried_reply_sends_nothing_twice(team_aws: EmbeddedAws) -> None:
    # GIVEN a relayed reply
    address = forward_outside_mail(team_aws)
    raw = member_reply(address)
    _, first = reply(team_aws, raw, address)
    assert len(sent_outside(first)) == 1

    # WHEN Lambda retries the same event (same message id)
    outcome, again = reply(team_aws, raw, address)

    # THEN nothing is sent again, and the outcome is the same
    assert again == []
    assert outcome["reply"] == "relayed"


@pytest.mark.parametrize(
    ("verdicts", "why"),
    [
        ({"spf": "FAIL", "dkim": "FAIL", "dmarc": "FAIL"}, "everything failed"),
        ({"spf": "PASS", "dkim": "PASS", "dmarc": "FAIL"}, "DMARC failed"),
        ({"spf": "GRAY", "dkim": "GRAY", "dmarc": "GRAY"}, "nothing passed"),
    ],
)
def test_forged_member_reply_is_dropped(team_aws: EmbeddedAws, verdicts: dict[str, str], why: str) -> None:
    # GIVEN mail claiming to be Bob's whose SES verdicts do not vouch for it
    address = forward_outside_mail(team_aws)
    outcome, sent = reply(team_aws, member_reply(address), address, **verdicts)
    # THEN nothing is sent at all, and the reason is logged and returned
    assert sent == [], why
    assert (outcome["forwarded"], outcome["reason"], outcome["reply"]) == (False, "reply-forged", "reply-forged")


def test_member_from_with_a_foreign_signature_and_no_dmarc_is_forged(team_aws: EmbeddedAws) -> None:
    # GIVEN From: Bob but sent through someone else's server: SPF passes for the stranger's envelope domain,
    # DKIM passes with the stranger's key, Bob's domain publishes no DMARC (GRAY)
    address = forward_outside_mail(team_aws)
    outcome, sent = reply(
        team_aws, member_reply(address), address, source="mallory@evil.example", spf="PASS", dkim="PASS", dmarc="GRAY"
    )
    # THEN it is not relayed: neither the From nor the envelope sender is vouched for as a member
    assert sent_outside(sent) == []
    assert outcome["reason"] == "reply-forged"


def test_non_member_mail_to_a_reply_address_goes_to_the_members_marked(team_aws: EmbeddedAws) -> None:
    # GIVEN someone who is not a member of team writes to the reply address (e.g. a member's other mailbox)
    address = forward_outside_mail(team_aws)
    raw = member_reply(address, author="bob.private@mail.example", name="Bob")
    outcome, sent = reply(team_aws, raw, address, source="bob.private@mail.example")

    # THEN nothing goes outside; the members get it as ordinary inbound mail tagged [not relayed]
    assert sent_outside(sent) == []
    [forward] = sent
    assert set(forward.recipients) == set(TEAM)
    subject = split_message(forward.raw).first("subject")
    assert subject is not None and subject.value.startswith("[not relayed] Re: Booth")
    assert outcome["reply"] == "reply-not-member"
    assert outcome["forwarded"] is True


def test_tampered_token_is_dropped(team_aws: EmbeddedAws) -> None:
    address = forward_outside_mail(team_aws)
    local, _, domain = address.partition("@")
    tampered = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    outcome, sent = reply(team_aws, member_reply(tampered), tampered)
    assert sent == []
    assert outcome["reason"] == "reply-bad-token"


def test_unknown_token_is_dropped(team_aws: EmbeddedAws) -> None:
    # GIVEN a well-formed reply address that this forwarder never issued
    made_up = f"team+r-{'a' * 12}-{'b' * 16}@{DOMAIN}"
    forward_outside_mail(team_aws)
    outcome, sent = reply(team_aws, member_reply(made_up), made_up)
    assert sent == []
    assert outcome["reason"] == "reply-bad-token"


def test_answer_to_an_expired_reply_address_reaches_the_team_tagged_even_before_the_ttl_deletes_it(
    team_aws: EmbeddedAws,
) -> None:
    # GIVEN the record's expiry has passed (DynamoDB's TTL deletes lazily, the item is still there)
    address = forward_outside_mail(team_aws)
    dynamodb = boto3.client("dynamodb")
    [item] = dynamodb.scan(TableName=REPLY_TABLE)["Items"]
    dynamodb.update_item(
        TableName=REPLY_TABLE,
        Key={"id": item["id"]},
        UpdateExpression="SET expires = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    outcome, sent = reply(team_aws, member_reply(address), address)
    assert_expired_answer_reaches_the_team(outcome, sent)


def assert_expired_answer_reaches_the_team(outcome: dict[str, Any], sent: list[SentMail]) -> None:
    """Bob's answer to an expired reply address: not dropped (it was, and he believed it sent), but forwarded
    to the members, Bob among them, tagged as expired; never to the outside sender."""
    assert sent_outside(sent) == []
    [forward] = sent
    assert set(forward.recipients) == set(TEAM)
    subject = split_message(forward.raw).first("subject")
    assert subject is not None and subject.value.startswith("[not relayed: reply address expired] Re: Booth")
    assert (outcome["reply"], outcome["forwarded"]) == ("reply-expired", True)


def test_answer_to_a_reply_address_whose_record_is_gone_reaches_the_team_tagged(team_aws: EmbeddedAws) -> None:
    # GIVEN the TTL deleted the record of a reply address we signed
    address = forward_outside_mail(team_aws)
    dynamodb = boto3.client("dynamodb")
    [item] = dynamodb.scan(TableName=REPLY_TABLE)["Items"]
    dynamodb.delete_item(TableName=REPLY_TABLE, Key={"id": item["id"]})
    outcome, sent = reply(team_aws, member_reply(address), address)
    assert_expired_answer_reaches_the_team(outcome, sent)


def test_token_of_another_alias_is_dropped(team_aws: EmbeddedAws) -> None:
    # GIVEN Bob (a member of both team and tech) moves team's token onto tech
    address = forward_outside_mail(team_aws)
    moved = address.replace("team+", "tech+", 1)
    outcome, sent = reply(team_aws, member_reply(moved), moved)
    assert sent_outside(sent) == []
    assert sent == []
    assert outcome["reason"] == "reply-bad-token"


def test_automatic_reply_is_not_relayed(team_aws: EmbeddedAws) -> None:
    # GIVEN Bob's vacation responder answers a team copy
    address = forward_outside_mail(team_aws)
    outcome, sent = reply(team_aws, member_reply(address, Auto_Submitted="auto-replied"), address)
    assert sent == []
    assert outcome["reason"] == "reply-automatic"


def test_read_receipt_of_a_member_to_a_reply_address_is_not_relayed(team_aws: EmbeddedAws) -> None:
    # GIVEN Bob's mail program sends a read receipt (RFC 8098, no Auto-Submitted) to a reply address, naming him
    address = forward_outside_mail(team_aws)
    receipt = (
        f"From: Bob Lin <{BOB}>\r\nTo: {address}\r\nSubject: Read: Booth for the summit?\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="rcpt"\r\n\r\n'
        "--rcpt\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        "--rcpt\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822; {BOB}\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"
        "--rcpt--\r\n"
    ).encode()

    # WHEN it arrives, authentic
    outcome, sent = reply(team_aws, receipt, address)

    # THEN it is a mail program's report, not Bob's answer: nothing goes out (his address is in its body)
    assert sent == []
    assert outcome["reason"] == "reply-automatic"


def test_relayed_reply_to_the_outside_sender_is_tagged_outside_for_the_delivery_function(
    team_aws: EmbeddedAws,
) -> None:
    # GIVEN Bob's authentic answer WHEN it is relayed through SES
    address = forward_outside_mail(team_aws)
    _, sent = reply(team_aws, member_reply(address), address)
    # THEN the send to the outside sender carries the `outside` tag (its bounce is no member's), the copies do not
    [out] = sent_outside(sent)
    assert out.tags.get("outside") == "true"
    assert all("outside" not in mail.tags for mail in sent if mail is not out)


def test_reply_counts_replied_and_refusals_by_reason(team_aws: EmbeddedAws, capsys: pytest.CaptureFixture[str]) -> None:
    address = forward_outside_mail(team_aws)
    reply(team_aws, member_reply(address), address)
    forged = {"spf": "FAIL", "dkim": "FAIL", "dmarc": "FAIL", "message_id": "forged-1"}
    reply(team_aws, member_reply(address), address, **forged)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(r.get("Replied") == [1.0] for r in metrics)
    assert any(r.get("reason") == "reply-forged" and r.get("Dropped") == [1.0] for r in metrics)
    assert any(r.get("reason") == "reply-forged" and r.get("ReplyRefused") == [1.0] for r in metrics)


def test_team_mode_without_the_reply_table_falls_back_to_direct(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN FORWARDER_REPLY_MODE=team but no FORWARDER_REPLY_TABLE
    settings = {"FORWARDER_REPLY_MODE": "team"}
    with embedded_aws(DOMAIN, {"team": TEAM}, settings=settings) as aws:
        _, sent = aws.deliver(outside_mail(), [f"team@{DOMAIN}"], **AUTHENTIC)
    # THEN Reply-To names the sender, as in direct mode, and the function said why once
    assert reply_address_of(sent[0]) == OUTSIDE
    warnings = [r for r in caplog.records if "FORWARDER_REPLY_TABLE is not set" in r.getMessage()]
    assert len(warnings) == 1


def test_reply_address_signed_before_a_key_rotation_still_works(team_aws: EmbeddedAws) -> None:
    # GIVEN a reply address signed with the key that a rotation has since made AWSPREVIOUS
    from forwarder import wiring
    from forwarder_ops.local import LINK_SECRET

    address = forward_outside_mail(team_aws)
    boto3.client("secretsmanager").put_secret_value(SecretId=LINK_SECRET, SecretString="n" * 64)
    wiring.reset()  # a new container reads the rotated secret

    # WHEN Bob answers on the old address
    outcome, sent = reply(team_aws, member_reply(address), address)

    # THEN it is relayed, and the team's copies carry the address signed with the new key (same record)
    assert outcome["reply"] == "relayed"
    copy = next(mail for mail in sent if OUTSIDE not in mail.recipients)
    renewed = reply_address_of(copy)
    assert renewed != address
    assert renewed.split("-")[1] == address.split("-")[1]  # the record id is kept


def test_reply_address_signed_before_a_key_rotation_works_as_long_as_its_record(
    team_aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a reply address signed with the key that a rotation has since made AWSPREVIOUS, its record (90 days)
    # still alive, and the rotation 60 days old: past the download links' 30-day grace
    import time
    from types import SimpleNamespace

    from forwarder import keyring, wiring
    from forwarder_ops.local import LINK_SECRET

    address = forward_outside_mail(team_aws)
    boto3.client("secretsmanager").put_secret_value(SecretId=LINK_SECRET, SecretString="n" * 64)
    later = time.time() + 60 * 86_400
    monkeypatch.setattr(keyring, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic))
    wiring.reset()  # a new container reads the rotated secret, 60 days on

    # WHEN Bob answers on the old address
    outcome, sent = reply(team_aws, member_reply(address), address)

    # THEN it is relayed to the outside sender (before: dropped as reply-bad-token once the 30 days were over)
    assert outcome["reply"] == "relayed"
    assert [mail.recipients for mail in sent_outside(sent)] == [(OUTSIDE,)]
    # AND the download function no longer accepts the old key by then: links keep their 30 days
    from forwarder.download import _runtime

    monkeypatch.setenv("FORWARDER_LINK_SECRET", LINK_SECRET)
    _runtime.cache_clear()
    try:
        _, ring = _runtime()
        assert ring.get().accepted == (b"n" * 64,)
    finally:
        _runtime.cache_clear()


def test_reply_address_signed_with_a_key_rotated_since_the_cached_read_is_relayed(team_aws: EmbeddedAws) -> None:
    # GIVEN a warm function whose key ring was read before a rotation (two minutes ago, within its five-minute
    # refresh), and a reply address a new container signed with the rotated key, its record saved
    import time

    from forwarder import wiring
    from forwarder.aws.replies import DynamoDBReplies
    from forwarder.mail.replyaddr import format_reply_address, reply_id
    from forwarder.ports import ReplyRecord
    from forwarder_ops.local import LINK_SECRET

    forward_outside_mail(team_aws)
    rotated = b"n" * 64
    boto3.client("secretsmanager").put_secret_value(SecretId=LINK_SECRET, SecretString=rotated.decode())
    wiring.forwarder_keys(wiring.get_settings())()._read_at -= 120  # the cached read is two minutes old
    rid, now = reply_id(rotated, "team", OUTSIDE), int(time.time())
    DynamoDBReplies(boto3.client("dynamodb"), REPLY_TABLE).save(ReplyRecord(rid, "team", OUTSIDE, now, now + 86_400))
    address = format_reply_address(rotated, "team", rid, DOMAIN)

    # WHEN Bob's answer to it reaches the warm function
    outcome, sent = reply(team_aws, member_reply(address), address)

    # THEN the ring is read again and the reply relayed, not dropped as a bad token
    assert outcome["reply"] == "relayed"
    assert [mail.recipients for mail in sent_outside(sent)] == [(OUTSIDE,)]


def test_reply_all_to_the_reply_address_and_team_reaches_each_member_once(team_aws: EmbeddedAws) -> None:
    # GIVEN Bob's Reply all on a forward: to the reply address and to team@ (the forward's To)
    address = forward_outside_mail(team_aws)
    result, sent = team_aws.deliver(member_reply(address), [address, f"team@{DOMAIN}"], source=BOB, **AUTHENTIC)

    # THEN it is relayed once, and the team sees it once (the copies), not a second time through team@
    assert result["outcomes"][0]["reply"] == "relayed"
    assert len(sent_outside(sent)) == 1
    members = [m for mail in sent if OUTSIDE not in mail.recipients for m in mail.recipients]
    assert sorted(members) == sorted([ALICE, DAVE])


def test_one_answer_to_two_reply_addresses_reaches_each_member_once(team_aws: EmbeddedAws) -> None:
    # GIVEN two outside senders' mails to team@, and so two reply addresses of team
    first = forward_outside_mail(team_aws)
    other = outside_mail().replace(f"Carol Wu <{OUTSIDE}>".encode(), b"Dan Ho <dan.ho@partner.example>")
    _, sent = team_aws.deliver(other, [f"team@{DOMAIN}"], source="dan.ho@partner.example", **AUTHENTIC)
    second = reply_address_of(sent[0])
    assert second != first

    # WHEN Bob answers both in one mail (To: both reply addresses)
    raw = member_reply(first).replace(f"To: {first}".encode(), f"To: {first}, {second}".encode())
    result, sent = team_aws.deliver(raw, [first, second], source=BOB, message_id="to-both", **AUTHENTIC)

    # THEN each outside sender gets the answer as the team, and every other member sees it once, not once per thread
    assert result["outcomes"][0]["reply"] == "relayed"
    outside = sorted(m for mail in sent for m in mail.recipients if m in {OUTSIDE, "dan.ho@partner.example"})
    assert outside == ["carol.wu@customer.example", "dan.ho@partner.example"]
    members = [m for mail in sent for m in mail.recipients if m not in outside]
    assert sorted(members) == sorted([ALICE, DAVE])


def test_relayed_reply_is_in_the_delivery_trace_with_everyone_it_went_to() -> None:
    from forwarder_ops.trace import TraceTable, render

    with embedded_aws(DOMAIN, {"team": TEAM, "tech": [BOB, "erin@example.com"]}, reply_mode="team", trace=True) as aws:
        # GIVEN Bob's answer to a reply address, also addressed to another alias (tech)
        address = forward_outside_mail(aws)
        outcome, _ = reply(aws, member_reply(address), address)
        result, sent = aws.deliver(
            member_reply(address), [address, f"tech@{DOMAIN}"], source=BOB, message_id="reply-and-tech", **AUTHENTIC
        )
        assert outcome["reply"] == result["outcomes"][0]["reply"] == "relayed"

        # WHEN the operator traces it
        trace = TraceTable(boto3.client("dynamodb"), TRACE_TABLE).mail("reply-and-tech")

        # THEN one record names the relay and every send: the outside sender, the copies, tech's members
        assert trace.mail is not None and trace.mail["reply"] == "relayed"
        assert trace.mail["decision"].startswith("reply relayed to the outside sender")
        rows = {(row.alias, row.member, row.state) for row in trace.members}
        assert rows == {
            ("team", OUTSIDE, "sent"),
            ("team", ALICE, "sent"),
            ("team", DAVE, "sent"),
            ("tech", BOB, "sent"),
            ("tech", "erin@example.com", "sent"),
        }
        assert len(sent) == 3
        assert any(OUTSIDE in line for line in render(trace))


def test_dropped_reply_is_in_the_delivery_trace_with_its_reason() -> None:
    from forwarder_ops.trace import TraceTable

    with embedded_aws(DOMAIN, {"team": TEAM}, reply_mode="team", trace=True) as aws:
        # GIVEN a reply whose SES verdicts do not vouch for the member
        address = forward_outside_mail(aws)
        aws.deliver(member_reply(address), [address], source=BOB, message_id="forged", spf="FAIL", dkim="FAIL")

        # WHEN traced THEN the record says why nothing was sent, and names no one
        trace = TraceTable(boto3.client("dynamodb"), TRACE_TABLE).mail("forged")
        assert trace.mail is not None
        assert (trace.mail["reason"], trace.mail["reply"]) == ("reply-forged", "reply-forged")
        assert trace.mail["decision"] == "not forwarded: reply-forged"
        assert trace.members == ()


@pytest.mark.parametrize("author", [BOB, "bob.private@mail.example"])
def test_reply_and_another_alias_reach_a_member_of_both_once(team_aws: EmbeddedAws, author: str) -> None:
    # GIVEN Alice in both team and tech, and a mail to a reply address of team and to tech@: Bob's answer (relayed,
    # Alice gets the team's copy) or a stranger's (not relayed: team's members get it marked)
    team_aws.set_aliases({"tech": [ALICE, "erin@example.com"]})
    address = forward_outside_mail(team_aws)
    raw = member_reply(address, author=author)
    # WHEN it is handled
    result, sent = team_aws.deliver(raw, [address, f"tech@{DOMAIN}"], source=author, message_id="both", **AUTHENTIC)
    # THEN each member gets it once, as the contract says of a member of several addressed aliases
    members = [m for mail in sent if OUTSIDE not in mail.recipients for m in mail.recipients]
    assert sorted(members) == sorted(set(members))
    assert ALICE in members and "erin@example.com" in members
    assert result["outcomes"][0]["forwarded"] is True


def test_reply_all_reaches_the_people_in_cc_through_the_relay(team_aws: EmbeddedAws) -> None:
    # GIVEN Carol writes to team@ with her colleague Frank in Cc
    frank = "frank.ho@customer.example"
    message = EmailMessage()
    message["From"] = f"Carol Wu <{OUTSIDE}>"
    message["To"] = f"team@{DOMAIN}"
    message["Cc"] = f"Frank Ho <{frank}>"
    message["Subject"] = "Booth for the summit?"
    message.set_content("Frank and I would like a booth.\n")
    _, [forward] = team_aws.deliver(bytes(message), [f"team@{DOMAIN}"], **AUTHENTIC)
    # THEN the members see Frank in Cc, as the reply address: a Reply all never writes to him from a member's mailbox
    address = reply_address_of(forward)
    cc = split_message(forward.raw).first("cc")
    assert cc is not None and cc.value == f'"Frank Ho (frank.ho at customer.example) via team" <{address}>'
    assert frank.encode() not in forward.raw
    # AND the reply table knows whom the address stands for
    [item] = boto3.client("dynamodb").scan(TableName=REPLY_TABLE)["Items"]
    assert (item["address"]["S"], item["others"]["L"]) == (OUTSIDE, [{"S": frank}])
    # WHEN Bob answers with Reply all: the reply address, and the alias
    result, sent = team_aws.deliver(member_reply(address), [address, f"team@{DOMAIN}"], source=BOB, **AUTHENTIC)
    # THEN Carol gets it with Frank in Cc, from team@; each other member gets one copy
    [out] = sent_outside(sent)
    assert out.recipients == (OUTSIDE, frank)
    values = {f.key: f.value for f in split_message(out.raw).fields}
    assert (values["to"], values["cc"]) == (OUTSIDE, frank)
    copies = [mail for mail in sent if mail is not out]
    assert sorted(m for c in copies for m in c.recipients) == sorted([ALICE, DAVE])
    assert result["outcomes"][0]["recipients"] == 4
