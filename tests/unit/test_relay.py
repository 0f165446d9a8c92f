"""The reply relay with in-memory adapters: reply addresses on forwards, relay, refusals, SES errors."""

from __future__ import annotations

import email

import pytest

from forwarder.config import Settings
from forwarder.keyring import KeyRing
from forwarder.mail.message import has_long_line, split_message
from forwarder.mail.notice import build_notice
from forwarder.mail.policy import Verdicts
from forwarder.ports import Inbound, MessageRejectedError, Outcome, SenderNotReadyError
from forwarder.relay import ReplyRelay
from forwarder.service import ForwardingService
from tests.fakes import FakeDirectory, FakeSender, FakeStore, MemoryOnce, MemoryReplies, Sent

DOMAIN = "dev.aws-educate.tw"
OUTSIDE = "carol@customer.example"
ALIASES = {"team": "alice@example.com, bob@example.net, dave@example.org"}
PASSING = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS")
NOW = 1_800_000_000.0


class World:
    """A service in team mode over fakes, with a clock."""

    def __init__(self, **settings: object) -> None:
        self.now = NOW
        self.store = FakeStore({"q1": b"From: Carol <carol@customer.example>\r\nSubject: Booth?\r\n\r\nHi\r\n"})
        self.sender = FakeSender()
        self.replies = MemoryReplies()
        self.once = MemoryOnce()
        config = Settings(domain=DOMAIN, bucket="bucket", alias_path="/a/b", reply_mode="team", **settings)  # type: ignore[arg-type]
        directory = self.directory = FakeDirectory(dict(ALIASES))
        self.relay = ReplyRelay(
            config, lambda: KeyRing(b"k" * 64), self.replies, directory, self.store, self.sender, self.once, self.clock
        )
        self.service = ForwardingService(config, self.store, directory, self.sender, self.once, relay=self.relay)

    def clock(self) -> float:
        return self.now

    def forward_outside_mail(self) -> str:
        self.service.forward(Inbound("q1", (f"team@{DOMAIN}",), OUTSIDE, PASSING))
        field = split_message(self.sender.sent[-1].raw).first("reply-to")
        assert field is not None
        return field.value.rpartition("<")[2].rstrip(">")

    def forward_from_outside(self, fields: bytes) -> tuple[str, bytes]:
        """Carol's mail with header `fields` after From (each ending CRLF), forwarded: the reply address, the copy."""
        self.store.mails["q1"] = b"From: Carol <carol@customer.example>\r\n" + fields + b"Subject: Booth?\r\n\r\nHi\r\n"
        address = self.forward_outside_mail()
        return address, self.sender.sent[-1].raw

    def reply(
        self, to: str, author: str = "bob@example.net", verdicts: Verdicts = PASSING, message_id: str = "r1"
    ) -> tuple[Outcome, list[Sent]]:
        raw = f"From: Bob <{author}>\r\nTo: {to}\r\nSubject: Re: Booth?\r\n\r\nYes\r\n".encode()
        return self.deliver(message_id, raw, to, author, verdicts)

    def deliver(
        self, message_id: str, raw: bytes, to: str, author: str = "bob@example.net", verdicts: Verdicts = PASSING
    ) -> tuple[Outcome, list[Sent]]:
        """`raw` received for `to` from `author`: the outcome, and what was sent."""
        self.store.mails[message_id] = raw
        before = len(self.sender.sent)
        outcome = self.service.forward(Inbound(message_id, (to,), author, verdicts))
        return outcome, self.sender.sent[before:]


def test_relay_sends_to_the_outside_sender_and_copies_the_others() -> None:
    world = World()
    address = world.forward_outside_mail()
    outcome, sent = world.reply(address)
    assert outcome.reply == "relayed" and outcome.recipients == 3
    assert [s.recipients for s in sent] == [(OUTSIDE,), ("alice@example.com", "dave@example.org")]
    assert all(s.from_address == f"team@{DOMAIN}" for s in sent)
    # The send to the outside sender also carries the `outside` tag (its bounce is no member's); the copies keep
    # exactly the tags they had (this assertion was `all(s.tags == {"inbound": "r1", "alias": "team"})`).
    assert [s.tags for s in sent] == [
        {"inbound": "r1", "alias": "team", "outside": "true"},
        {"inbound": "r1", "alias": "team"},
    ]


def test_relay_record_expires_with_the_clock() -> None:
    world = World(reply_expiry_days=1)
    address = world.forward_outside_mail()
    world.now += 86_400 + 1
    outcome, sent = world.reply(address)
    # Not dropped any more (it was `sent == []`): the answer goes to the members, Bob who wrote it among them,
    # tagged as not relayed because the address expired, and never to the outside sender.
    assert outcome.reply == "reply-expired" and outcome.forwarded
    [forward] = sent
    assert sorted(forward.recipients) == ["alice@example.com", "bob@example.net", "dave@example.org"]
    assert b"Subject: [not relayed: reply address expired] Re: Booth?" in forward.raw


def test_relay_answer_to_a_reply_address_whose_record_is_gone_goes_to_the_members_tagged() -> None:
    # GIVEN a reply address we signed whose record the TTL has deleted
    world = World()
    address = world.forward_outside_mail()
    world.replies.records.clear()
    # WHEN Bob answers on it
    outcome, sent = world.reply(address)
    # THEN the team gets his answer tagged as expired, so Bob sees it did not go out; nothing goes outside
    assert outcome.reply == "reply-expired" and outcome.forwarded and outcome.reason is None
    [forward] = sent
    assert OUTSIDE not in forward.recipients and "bob@example.net" in forward.recipients
    assert b"Subject: [not relayed: reply address expired] Re: Booth?" in forward.raw


def test_relay_automatic_answer_to_an_expired_reply_address_is_dropped() -> None:
    # GIVEN Bob's vacation notice answering a team copy whose reply address has expired
    world = World(reply_expiry_days=1)
    address = world.forward_outside_mail()
    world.now += 86_400 + 1
    notice = (
        f"From: Bob <bob@example.net>\r\nTo: {address}\r\nAuto-Submitted: auto-replied\r\n"
        "Subject: Out of office\r\n\r\nAway\r\n"
    ).encode()
    # WHEN it arrives
    outcome, sent = world.deliver("auto", notice, address)
    # THEN nobody gets it: a mail program's notice is no answer the team must see
    assert sent == []
    assert not outcome.forwarded and outcome.reason == "reply-expired"


def test_relay_forged_token_is_still_dropped() -> None:
    # GIVEN a member's answer to a reply address whose signature is not ours (one character of the mac changed)
    world = World()
    address = world.forward_outside_mail()
    local, _, domain = address.partition("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    outcome, sent = world.reply(forged)
    # THEN it is dropped, not forwarded marked as expired (this forwarder never issued that address)
    assert sent == [] and outcome.reason == "reply-bad-token"


def test_relay_renews_the_record_with_each_forward() -> None:
    world = World(reply_expiry_days=1)
    world.forward_outside_mail()
    world.now += 3_600
    address = world.forward_outside_mail()
    [record] = world.replies.records.values()
    assert (record.created, record.expires) == (int(NOW + 3_600), int(NOW + 3_600 + 86_400))
    world.now += 86_400
    outcome, _ = world.reply(address)
    assert outcome.reply == "relayed"


def test_relay_outside_refusal_goes_to_the_members_and_its_author_tagged() -> None:
    # GIVEN SES refuses the reply to the outside address (a lasting refusal of this message)
    world = World()
    address = world.forward_outside_mail()
    world.sender.fail_recipients[OUTSIDE] = MessageRejectedError("rejected", code="MessageRejected")
    outcome, sent = world.reply(address)
    # THEN nothing is raised; the members, Bob who wrote it among them, get it tagged as not relayed, so that
    # Bob sees it did not go out (before, only the others got their copy, and Bob believed it sent)
    assert outcome.reply == "reply-refused" and outcome.forwarded
    [forward] = sent
    assert sorted(forward.recipients) == ["alice@example.com", "bob@example.net", "dave@example.org"]
    assert OUTSIDE not in forward.recipients
    assert b"Subject: [not relayed] Re: Booth?" in forward.raw


def test_relay_sender_not_ready_propagates_for_parking() -> None:
    world = World()
    address = world.forward_outside_mail()
    world.sender.fail_calls[world.sender.calls + 1] = SenderNotReadyError("paused", code="SendingPausedException")
    with pytest.raises(SenderNotReadyError):
        world.reply(address)


def test_relay_spam_verdict_goes_to_the_members_tagged() -> None:
    world = World()
    address = world.forward_outside_mail()
    outcome, sent = world.reply(address, verdicts=Verdicts(spam="FAIL", spf="PASS", dkim="PASS", dmarc="PASS"))
    assert outcome.reply == "reply-spam"
    [forward] = sent
    assert OUTSIDE not in forward.recipients
    assert b"Subject: [not relayed] [SPAM] Re: Booth?" in forward.raw


def test_reply_address_not_saved_falls_back_to_the_sender() -> None:
    # GIVEN the reply table refuses the write
    world = World()
    world.replies.fail_saves = True
    # THEN the mail is still forwarded, with Reply-To naming the sender
    assert world.forward_outside_mail() == OUTSIDE


def test_member_writing_to_the_alias_gets_a_direct_reply_to() -> None:
    # GIVEN a member writes to their own alias: answering them as the team would make no sense
    world = World()
    world.store.mails["q1"] = b"From: Bob <bob@example.net>\r\nSubject: lunch\r\n\r\nHi\r\n"
    assert world.forward_outside_mail() == "bob@example.net"
    assert world.replies.records == {}


def test_sender_on_our_domain_gets_no_reply_address() -> None:
    world = World()
    world.store.mails["q1"] = f"From: Other <other@{DOMAIN}>\r\nSubject: x\r\n\r\nHi\r\n".encode()
    assert world.forward_outside_mail() == f"other@{DOMAIN}"


def test_relay_reply_ses_would_refuse_goes_to_the_members_as_the_notice() -> None:
    # GIVEN a member's reply with a line over 998 octets that no re-encoding can shorten (a multipart whose
    # boundary never appears), and a service that sends the notice with a download link for such mail
    world = World()
    world.service = ForwardingService(
        world.service.settings,
        world.store,
        FakeDirectory(dict(ALIASES)),
        world.sender,
        world.once,
        notice=build_notice,
        links=lambda message_id: f"https://download.example/{message_id}",
        relay=world.relay,
    )
    address = world.forward_outside_mail()
    world.store.mails["r2"] = (
        f"From: Bob <bob@example.net>\r\nTo: {address}\r\nSubject: Re: Booth?\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=NONE\r\n\r\n" + "x" * 2000 + "\r\n"
    ).encode()
    before = len(world.sender.sent)
    # WHEN the reply arrives
    outcome = world.service.forward(Inbound("r2", (address,), "bob@example.net", PASSING))
    # THEN nothing SES would refuse is sent and nothing goes to the outside sender: the members get the notice
    # with the download link of the stored reply, and the outcome says why it was not relayed
    sent = world.sender.sent[before:]
    assert outcome.reply == "reply-unsendable"
    assert sent and all(OUTSIDE not in s.recipients for s in sent)
    assert all(b"https://download.example/r2" in s.raw and not has_long_line(s.raw) for s in sent)


def test_relay_reply_whose_boundary_is_too_long_for_its_content_type_line_gets_a_new_one() -> None:
    # GIVEN a member's reply whose 990-character boundary fits its delimiter lines but not its Content-Type line
    world = World()
    address = world.forward_outside_mail()
    boundary = "c" * 990
    world.store.mails["r3"] = (
        f"From: Bob <bob@example.net>\r\nTo: {address}\r\nSubject: Re: Booth?\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
        f"Content-Type: text/plain\r\n\r\nYes\r\n--{boundary}--\r\n"
    ).encode()
    before = len(world.sender.sent)
    # WHEN it is relayed
    outcome = world.service.forward(Inbound("r3", (address,), "bob@example.net", PASSING))
    # THEN it goes out, as the forward path would send it: a new boundary, no line SES would refuse, and the
    # parts still read as parts (an RFC 2047-encoded Content-Type would leave no boundary to find them by)
    sent = world.sender.sent[before:]
    assert outcome.reply == "relayed"
    assert sent and all(not has_long_line(s.raw) for s in sent)
    for each in sent:
        [part] = [p for p in email.message_from_bytes(each.raw).walk() if not p.is_multipart()]
        assert part.get_payload().strip() == "Yes"


def test_relay_from_with_a_member_beside_another_address_is_not_relayed() -> None:
    # GIVEN a stranger's mail to a reply address whose From names a member beside the stranger's own address,
    # authenticated (SPF, DKIM, DMARC PASS) for the stranger's domain
    world = World()
    address = world.forward_outside_mail()
    world.store.mails["r3"] = (
        f"From: bob@example.net (Bob) <m@evil.example>\r\nTo: {address}\r\nSubject: Re: Booth?\r\n\r\nPay here\r\n"
    ).encode()
    before = len(world.sender.sent)
    # WHEN it arrives
    outcome = world.service.forward(Inbound("r3", (address,), "m@evil.example", PASSING))
    # THEN nothing is sent as the team to the outside sender: the members get it marked as not relayed
    sent = world.sender.sent[before:]
    assert all(OUTSIDE not in s.recipients for s in sent)
    assert outcome.reply == "reply-not-member"


def signed_reply(world: World, to: str, content_type: str, body: str) -> tuple[Outcome, list[Sent]]:
    raw = (
        f"From: Bob <bob@example.net>\r\nTo: {to}\r\nSubject: Re: Booth?\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n\r\n{body}"
    ).encode()
    return world.deliver("r1", raw, to)


def test_relay_takes_the_signature_off_a_signed_reply() -> None:
    # GIVEN Bob answers with S/MIME signing on: his certificate (base64 in the second part) names his address
    world = World()
    address = world.forward_outside_mail()
    certificate = "MIIGYmJvYkBleGFtcGxlLm5ldA0123456789"
    body = (
        "--s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYes, Thursday.\r\n"
        f"--s\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n\r\n{certificate}\r\n--s--\r\n"
    )
    outcome, sent = signed_reply(
        world, address, 'multipart/signed; protocol="application/pkcs7-signature"; boundary="s"', body
    )
    # THEN the outside sender and the other members get the text alone, as a plain text message
    assert outcome.reply == "relayed"
    assert [s.recipients for s in sent] == [(OUTSIDE,), ("alice@example.com", "dave@example.org")]
    for each in sent:
        assert certificate.encode() not in each.raw and b"pkcs7" not in each.raw
        message = email.message_from_bytes(each.raw)
        assert message.get_content_type() == "text/plain"
        assert message.get_payload(decode=True) == b"Yes, Thursday."  # the line break before a delimiter is its own
    assert outcome.recipients == 3


def test_relay_forwards_an_opaque_signed_reply_to_the_members_marked() -> None:
    # GIVEN Bob's answer is opaque S/MIME: the text is inside the blob that carries his certificate
    world = World()
    address = world.forward_outside_mail()
    outcome, sent = signed_reply(
        world, address, "application/pkcs7-mime; smime-type=signed-data; name=smime.p7m", "MIAGCSqGSIb3DQEHAqCA\r\n"
    )
    # THEN it never goes to the outside sender; the members, Bob among them, get it tagged as not relayed
    assert outcome.reply == "reply-signed" and outcome.forwarded
    [forward] = sent
    assert OUTSIDE not in forward.recipients and "bob@example.net" in forward.recipients
    assert b"Subject: [not relayed] Re: Booth?" in forward.raw


def test_relay_takes_the_expired_tag_out_of_the_subject() -> None:
    # GIVEN a member answering, on a live reply address, a subject that carries our expired tag (the outside
    # sender never saw it)
    world = World()
    address = world.forward_outside_mail()
    answer = (
        f"From: Bob <bob@example.net>\r\nTo: {address}\r\n"
        "Subject: Re: [not relayed: reply address expired] Re: Booth?\r\n\r\nYes\r\n"
    ).encode()
    # WHEN it is relayed
    outcome, sent = world.deliver("r9", answer, address)
    # THEN the outside sender's copy has the subject without our tag, and with one `Re:` (this assertion was
    # `Subject: Re: Re: Booth?`: the prefix our tag stood between stayed, one more with each round of the thread)
    assert outcome.reply == "relayed"
    outside = sent[0]
    assert outside.recipients == (OUTSIDE,)
    assert b"Subject: Re: Booth?\r\n" in outside.raw


def test_relay_answers_everyone_outside_the_sender_wrote_to() -> None:
    # GIVEN Carol writes to the alias with Dan in To and Erin in Cc (and the alias's member Alice)
    world = World()
    world.store.mails["q1"] = (
        b"From: Carol <carol@customer.example>\r\nTo: team@dev.aws-educate.tw, Dan <dan@customer.example>\r\n"
        b"Cc: erin@partner.example, alice@example.com\r\nSubject: Booth?\r\n\r\nHi\r\n"
    )
    address = world.forward_outside_mail()
    # THEN the members' copy names Dan and Erin by the reply address, so that Reply all goes through the relay
    forward = world.sender.sent[-1].raw
    assert b"dan@customer.example" not in forward and b"erin@partner.example" not in forward
    assert b"Dan (dan at customer.example) via team" in forward and b"alice@example.com" in forward
    # WHEN Bob answers the reply address
    answer = f"From: Bob <bob@example.net>\r\nTo: {address}\r\n\r\nYes\r\n".encode()
    outcome, sent = world.deliver("r1", answer, address)
    # THEN the answer goes to Carol, and in Cc to Dan and Erin, from the alias; the copies go to the other members
    assert outcome.reply == "relayed" and outcome.recipients == 5
    outside, copy = sent
    assert outside.recipients == (OUTSIDE, "dan@customer.example", "erin@partner.example")
    assert b"\r\nTo: carol@customer.example\r\nCc: dan@customer.example,\r\n erin@partner.example\r\n" in outside.raw
    assert copy.recipients == ("alice@example.com", "dave@example.org")


def test_reply_address_of_the_sender_alone_is_the_one_it_always_was() -> None:
    # GIVEN the same sender, once alone and once with someone else in Cc
    world = World()
    alone = world.forward_outside_mail()
    world.store.mails["q2"] = b"From: Carol <carol@customer.example>\r\nCc: dan@customer.example\r\n\r\nHi\r\n"
    world.service.forward(Inbound("q2", (f"team@{DOMAIN}",), OUTSIDE, PASSING))
    field = split_message(world.sender.sent[-1].raw).first("reply-to")
    assert field is not None
    with_dan = field.value.rpartition("<")[2].rstrip(">")
    # THEN two conversations, two addresses, and the first keeps the id of (alias, sender) as before
    from forwarder.mail.replyaddr import reply_id

    assert alone != with_dan
    assert f"team+r-{reply_id(b'k' * 64, 'team', OUTSIDE)}-" in alone
    assert {record.others for record in world.replies.records.values()} == {(), ("dan@customer.example",)}


def test_reply_address_masks_every_outside_person_even_those_not_relayed_to() -> None:
    # GIVEN Carol writes to the alias with 60 people in Cc, and one address SES cannot send to
    world = World()
    cc = ", ".join(f"p{n}@partner.example" for n in range(60))
    address, forward = world.forward_from_outside(
        f'To: team@{DOMAIN}, "pat smith"@partner.example\r\nCc: {cc}\r\n'.encode()
    )
    # THEN the members' copy names none of them as written: a Reply all reaches nobody outside from a member's mailbox
    assert b"@partner.example" not in forward
    assert b'"pat smith" at partner.example' not in forward and b"p59 at partner.example" in forward
    # AND a relayed reply goes to the sender and the first 49 others SES can send to (one send's 50 recipients)
    outcome, sent = world.deliver(
        "r1", f"From: Bob <bob@example.net>\r\nTo: {address}\r\n\r\nYes\r\n".encode(), address
    )
    assert outcome.reply == "relayed"
    assert sent[0].recipients == (OUTSIDE, *(f"p{n}@partner.example" for n in range(49)))


def test_team_copy_names_the_others_the_reply_went_to() -> None:
    # GIVEN Carol wrote to the alias with Dan in Cc
    world = World()
    address, _ = world.forward_from_outside(b"To: team@dev.aws-educate.tw\r\nCc: Dan <dan@customer.example>\r\n")
    # WHEN Bob answers the reply address
    outcome, [_, copy] = world.reply(address)
    # THEN the other members' copy says Dan got it too, as the reply address: no Reply all on it writes to Dan
    assert outcome.reply == "relayed"
    parsed = email.message_from_bytes(copy.raw, policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["Cc"].addresses] == [
        ("dan at customer.example via team", address)
    ]
    assert b"dan@customer.example" not in copy.raw


def test_relay_does_not_copy_the_author_who_joined_the_alias_since_as_one_of_the_others() -> None:
    # GIVEN Carol wrote with Bob's address in Cc, before Bob joined the alias
    world = World()
    world.directory.values["team"] = "alice@example.com, dave@example.org"
    address, _ = world.forward_from_outside(
        b"To: team@dev.aws-educate.tw\r\nCc: bob@example.net, dan@customer.example\r\n"
    )
    world.directory.values.update(ALIASES)
    # WHEN Bob, a member now, answers the reply address
    outcome, [outside, *_] = world.reply(address)
    # THEN the answer goes to Carol and Dan, not back to Bob
    assert outcome.reply == "relayed"
    assert outside.recipients == (OUTSIDE, "dan@customer.example")
    assert b"bob@example.net" not in outside.raw.partition(b"\r\n\r\n")[0]


def test_reply_to_of_the_alias_and_an_outside_address_gets_a_reply_address_for_the_outside_one() -> None:
    # GIVEN Carol asks for replies to the alias and to her colleague Eve, with Dan in Cc
    world = World()
    address, forward = world.forward_from_outside(
        b"Reply-To: team@dev.aws-educate.tw, Eve <eve@customer.example>\r\n"
        b"To: team@dev.aws-educate.tw\r\nCc: dan@customer.example\r\n"
    )
    # THEN the members' copy has a reply address, named after Eve, and neither Eve nor Dan as written: no answer
    # or Reply all reaches them from a member's own mailbox
    assert address.startswith("team+r-")
    assert b'Reply-To: "Eve (eve at customer.example) via team" <team+r-' in forward
    assert b"eve@customer.example" not in forward and b"dan@customer.example" not in forward
    # AND an answer goes to Eve, with Dan in Cc
    outcome, [outside, *_] = world.reply(address)
    assert outcome.reply == "relayed" and outside.recipients == ("eve@customer.example", "dan@customer.example")


def test_member_writing_to_the_alias_with_outside_people_keeps_a_direct_reply_to_and_masks_them() -> None:
    # GIVEN Bob, a member, writes to the alias with Carol in Cc and Dan in To
    world = World()
    world.store.mails["q1"] = (
        b"From: Bob <bob@example.net>\r\nTo: team@dev.aws-educate.tw, dan@customer.example\r\n"
        b"Cc: Carol <carol@customer.example>\r\nSubject: Booth\r\n\r\nHi\r\n"
    )
    # THEN a Reply to his mail still goes to Bob himself
    assert world.forward_outside_mail() == "bob@example.net"
    # AND the members' copy names Dan and Carol by a reply address: another member's Reply all reaches them through
    # the relay, not from that member's own mailbox
    forward = world.sender.sent[-1].raw
    assert b"dan@customer.example" not in forward and b"carol@customer.example" not in forward
    cc = split_message(forward).first("cc")
    assert cc is not None and cc.value.startswith('"Carol (carol at customer.example) via team" <team+r-')
    address = cc.value.rpartition("<")[2].rstrip(">")
    # WHEN Alice answers with Reply all
    outcome, [outside, *_] = world.reply(address, author="alice@example.com")
    # THEN Dan and Carol get it from the alias
    assert outcome.reply == "relayed" and outside.recipients == ("dan@customer.example", OUTSIDE)


def test_reply_to_of_the_alias_alone_stays_and_the_outside_people_are_masked() -> None:
    # GIVEN Carol asks for replies to the alias, with Dan in Cc
    world = World()
    address, forward = world.forward_from_outside(
        b"Reply-To: team@dev.aws-educate.tw\r\nTo: team@dev.aws-educate.tw\r\nCc: dan@customer.example\r\n"
    )
    # THEN a Reply goes to the alias, and a Reply all reaches Dan only through a reply address
    assert address == f"team@{DOMAIN}"
    assert b"dan@customer.example" not in forward and b'Cc: "dan at customer.example via team" <team+r-' in forward


@pytest.mark.parametrize("envelope_sender", ["", "<>"])
def test_relay_answer_with_the_null_envelope_sender_is_not_relayed(envelope_sender: str) -> None:
    # GIVEN a notice from Bob's server written as plain text, no Auto-Submitted, but with the null envelope sender of
    # notifications (a bounce or a server's out-of-office), Bob's From and a DKIM signature of his domain
    world = World()
    address = world.forward_outside_mail()
    notice = f"From: Bob <bob@example.net>\r\nTo: {address}\r\nSubject: Away\r\n\r\nI am away until May\r\n".encode()
    # WHEN it arrives at the reply address
    outcome, sent = world.deliver("notice", notice, address, author=envelope_sender)
    # THEN it is dropped as automatic: never sent to the outside sender as the team's answer
    assert sent == []
    assert not outcome.forwarded and outcome.reason == "reply-automatic"
    # AND to an expired reply address it is dropped too, not forwarded to the team as an answer that did not go out
    world.replies.records.clear()
    outcome, sent = world.deliver("notice-2", notice, address, author=envelope_sender)
    assert sent == [] and outcome.reason == "reply-expired" and not outcome.forwarded


def test_relay_leaves_out_the_message_ids_of_another_members_provider() -> None:
    # GIVEN Alice adding to her own relayed answer (her mail program names her earlier mail's id, made at her domain),
    # and the team's copy of it, which keeps that id for the members' threads
    world = World()
    address = world.forward_outside_mail()
    alice = (
        f"From: Alice <alice@example.com>\r\nTo: {address}\r\nIn-Reply-To: <a-1@example.com>\r\n"
        "References: <c-1@customer.example> <a-1@example.com>\r\nSubject: Re: Booth?\r\n\r\nAlso\r\n"
    ).encode()
    _, sent = world.deliver("a2", alice, address, author="alice@example.com")
    copy = split_message(next(s.raw for s in sent if "bob@example.net" in s.recipients)).first("references")
    assert copy is not None and "<a-1@example.com>" in copy.value
    # WHEN Bob answers that copy: his References name Alice's id too
    bob = (
        f"From: Bob <bob@example.net>\r\nTo: {address}\r\nIn-Reply-To: <copy-1@email.amazonses.com>\r\n"
        "References: <c-1@customer.example> <a-1@example.com> <copy-1@email.amazonses.com>\r\n"
        "Subject: Re: Booth?\r\n\r\nYes\r\n"
    ).encode()
    outcome, sent = world.deliver("b1", bob, address)
    # THEN the outside sender's copy names no id of Alice's provider, the thread's other ids kept
    assert outcome.reply == "relayed"
    out = next(s.raw for s in sent if s.recipients == (OUTSIDE,))
    head = split_message(out)
    assert b"example.com" not in bytes(out[: head.body_start])
    references = head.first("references")
    assert references is not None
    assert references.value.split() == ["<c-1@customer.example>", "<copy-1@email.amazonses.com>"]


def test_team_forward_of_list_mail_keeps_no_list_post_for_a_reply_list_around_the_reply_address() -> None:
    # GIVEN Carol's mail through a mailing list, whose List-Post names where a "Reply List" goes (Thunderbird's
    # Reply List button and mutt's list-reply write to it)
    _, copy = World().forward_from_outside(
        b"To: booth@lists.customer.example\r\nList-Id: <booth.lists.customer.example>\r\n"
        b"List-Post: <mailto:booth@lists.customer.example>\r\n"
        b"List-Unsubscribe: <https://lists.customer.example/u/booth>\r\n"
    )
    # WHEN it is forwarded to the team
    head = split_message(copy)
    # THEN no List-Post is left to send a member's Reply List straight from their own mailbox to the list, their
    # address with it: Reply all reaches the list through the reply address, which stands for it in To
    assert head.first("list-post") is None
    to = head.first("to")
    assert to is not None and "+r-" in to.value
    # AND the fields members' filters sort list mail by stay
    assert head.first("list-id") is not None and head.first("list-unsubscribe") is not None


def test_relay_list_distribution_to_a_reply_address_is_not_relayed() -> None:
    # GIVEN a reply address someone subscribed to a mailing list, and Bob posting to that list: the list hands his
    # post, his From and DKIM signature intact (DMARC PASS), to every subscriber, the reply address among them
    world = World()
    address = world.forward_outside_mail()
    post = (
        b"From: Bob <bob@example.net>\r\nTo: booth@lists.example\r\nList-Id: <booth.lists.example>\r\n"
        b"Subject: [booth] Chairs\r\n\r\nWho brings the chairs?\r\n"
    )
    # WHEN it arrives at the reply address
    outcome, sent = world.deliver("post", post, address, author="booth-bounces@lists.example")
    # THEN it is list traffic, dropped as automatic: never sent to the outside sender as the team's answer
    assert sent == []
    assert not outcome.forwarded and outcome.reason == "reply-automatic"
