"""Header surgery: From/Reply-To, removed and duplicate headers, marker, subject, folding, hostile input."""

from __future__ import annotations

import base64
import email

import pytest

from forwarder.mail.addresses import display_name, find_sender
from forwarder.mail.fields import decode_words
from forwarder.mail.message import split_message
from forwarder.mail.rewrite import RewriteOptions, is_own_output, rewrite_headers
from tests.mailcheck import assert_forwarded, from_addresses, parsed

DOMAIN = "dev.aws-educate.tw"
OPTIONS = RewriteOptions(domain=DOMAIN)


def forward(raw: bytes, alias: str = "team", options: RewriteOptions = OPTIONS, envelope: str | None = None) -> bytes:
    return rewrite_headers(split_message(raw), alias, options, envelope).to_bytes()


def test_rewrite_from_names_the_real_sender_via_the_alias() -> None:
    # GIVEN a mail from Alice
    raw = b"From: Alice Chen <alice@example.com>\r\nTo: team@dev.aws-educate.tw\r\nSubject: hi\r\n\r\nbody\r\n"
    # WHEN it is forwarded through team@
    out = forward(raw)
    # THEN From is the alias with a display name naming Alice, and replies go to Alice
    message = parsed(out)
    assert message["From"].addresses[0].display_name == "Alice Chen (alice at example.com) via team"
    assert message["From"].addresses[0].addr_spec == "team@dev.aws-educate.tw"
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["alice@example.com"]
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_keeps_an_existing_reply_to_byte_for_byte() -> None:
    raw = b"From: news@example.org\r\nReply-To: Organisers <org@example.org>\r\nSubject: x\r\n\r\nbody"
    out = forward(raw)
    assert b"\r\nReply-To: Organisers <org@example.org>\r\n" in out
    assert out.count(b"Reply-To:") == 1


def test_rewrite_replaces_a_reply_to_without_address() -> None:
    raw = b"From: Bob <bob@example.org>\r\nReply-To: undisclosed-recipients:;\r\n\r\nbody"
    out = forward(raw)
    assert [a.addr_spec for a in parsed(out)["Reply-To"].addresses] == ["bob@example.org"]
    assert out.count(b"Reply-To:") == 1


def test_rewrite_removes_signatures_and_envelope_headers() -> None:
    raw = (
        b"Return-Path: <a@example.com>\r\nDKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n"
        b"DomainKey-Signature: a=rsa-sha1\r\nSender: list@example.com\r\nDKIM-Signature: v=1; b=def\r\n"
        b"From: a@example.com\r\n\r\nbody"
    )
    out = forward(raw)
    for name in (b"Return-Path", b"DKIM-Signature", b"DomainKey-Signature", b"Sender:"):
        assert name not in out
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_removes_the_ses_control_headers_a_sender_wrote() -> None:
    # GIVEN a received mail carrying the headers SES obeys in a raw send: another configuration set, tags, and
    # another account's identity to send as (SES removes them before sending: no member would see them)
    raw = (
        b"From: a@example.com\r\nX-SES-CONFIGURATION-SET: attacker-set\r\nX-SES-MESSAGE-TAGS: claim=x\r\n"
        b"x-ses-source-arn: arn:aws:ses:us-east-1:999999999999:identity/example.com\r\n"
        b"X-SES-FROM-ARN: arn:aws:ses:us-east-1:999999999999:identity/example.com\r\n"
        b"X-SES-RETURN-PATH-ARN: arn:aws:ses:us-east-1:999999999999:identity/example.com\r\n"
        b"X-SES-Spam-Verdict: PASS\r\n\r\nbody"
    )

    # WHEN it is forwarded
    out = forward(raw)

    # THEN none of them steers our send; SES's receiving verdict headers (informational) stay, and our marker is added
    head = out.split(b"\r\n\r\n", 1)[0].lower()
    for name in (b"configuration-set", b"message-tags", b"source-arn", b"from-arn", b"return-path-arn"):
        assert b"x-ses-" + name not in head
    assert b"x-ses-spam-verdict: pass" in head
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_keeps_the_first_of_duplicated_single_instance_headers() -> None:
    raw = b"From: a@example.com\r\nDelivered-To: x@y.org\r\nDelivered-To: z@y.org\r\nDate: one\r\nDate: two\r\n\r\nb"
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    assert out.count(b"Delivered-To:") == 1
    assert b"Delivered-To: x@y.org" in out
    assert out.count(b"Date:") == 1
    assert rewritten.report.duplicates == ["Delivered-To", "Date"]


def test_rewrite_keeps_repeatable_headers_in_order() -> None:
    raw = b"Received: one\r\nFrom: a@example.com\r\nReceived: two\r\nX-Tag: 1\r\nX-Tag: 2\r\n\r\nb"
    out = forward(raw)
    assert out.index(b"Received: one") < out.index(b"Received: two") < out.index(b"X-Tag: 1") < out.index(b"X-Tag: 2")


@pytest.mark.parametrize(
    "from_block",
    [
        b"from: alice@example.com\r\n",
        b"FROM: Alice <alice@example.com>\r\n",
        b"From: Alice\r\n <alice@example.com>\r\n",
        b"From: Alice <alice@example.com>\r\nFrom: Mallory <mallory@evil.example>\r\n",
        b"From: Friends: alice@example.com, bob@example.com;\r\n",
        b"From: =?utf-8?b?5byg5LiJ?= <alice@example.com>\r\n",
        b"From: \xe5\xbc\xa0\xe4\xb8\x89 <alice@example.com>\r\n",
        b"From: \xf0\xd2\xc9\xd7\xc5\xd4 <alice@example.com>\r\n",
    ],
)
def test_rewrite_from_variants_give_one_from_and_reply_to_alice(from_block: bytes) -> None:
    raw = from_block + b"Subject: x\r\n\r\nbody"
    out = forward(raw)
    assert from_addresses(out) == ["team@dev.aws-educate.tw"]
    assert "alice@example.com" in [a.addr_spec for a in parsed(out)["Reply-To"].addresses]
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_without_from_uses_the_envelope_sender() -> None:
    raw = b"Subject: no from\r\n\r\nbody"
    out = forward(raw, envelope="bounce@example.org")
    message = parsed(out)
    assert message["From"].addresses[0].display_name == "bounce at example.org via team"
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["bounce@example.org"]


def test_rewrite_without_any_sender_has_no_reply_to() -> None:
    out = forward(b"Subject: x\r\n\r\nbody", envelope="")
    assert b"Reply-To" not in out
    assert parsed(out)["From"].addresses[0].display_name == "Unknown sender via team"


def test_rewrite_from_address_longer_than_a_mailbox_can_be_is_no_reply_address() -> None:
    # GIVEN a From whose address is 1,500 octets long: no mailbox is (RFC 5321 allows 254), no line may be
    raw = b"From: Spammer <" + b"x" * 1500 + b"@example.com>\r\nSubject: win\r\n\r\nbody\r\n"
    # WHEN it is forwarded
    out = forward(raw, envelope="bounce@example.org")
    # THEN replies go to the envelope sender, and no line is over 998 octets (SES would refuse the message)
    assert [a.addr_spec for a in parsed(out)["Reply-To"].addresses] == ["bounce@example.org"]
    assert_forwarded(raw, out, "team", DOMAIN)


@pytest.mark.parametrize(
    "name",
    [b'"Member %d of the Programme Committee"', "Mitglied %d des Ausschusses für Programm".encode()],
    ids=["ascii", "utf-8"],
)
def test_rewrite_reply_to_of_many_authors_has_no_line_over_998_octets(name: bytes) -> None:
    # GIVEN a From of fifteen authors, each on a folded line of its own (about 1,100 octets unfolded)
    authors = b",\r\n ".join(name % i + b" <member.%d@committee.example.org>" % i for i in range(15))
    raw = b"From: " + authors + b"\r\nSubject: minutes\r\n\r\nbody\r\n"
    # WHEN it is forwarded
    out = forward(raw)
    # THEN Reply-To names every author, and no line is over 998 octets (SES would refuse the message)
    addresses = [a.addr_spec for a in parsed(out)["Reply-To"].addresses]
    assert addresses == [f"member.{i}@committee.example.org" for i in range(15)]
    assert_forwarded(raw, out, "team", DOMAIN)


@pytest.mark.parametrize(
    "hostile",
    [
        b"From: =?utf-8?q?Evil=0D=0ABcc=3A_victim=40example=2Ecom?= <evil@bad.example>\r\n",
        b'From: "Evil\\r\\nBcc: victim@example.com" <evil@bad.example>\r\n',
        b'From: "ceo@bank.example" <evil@bad.example>\r\n',
        b'From: "a <b@c.example>, d@e.example" <evil@bad.example>\r\n',
        b"From: =?utf-8?b?" + b"QUFB" * 500 + b"?= <evil@bad.example>\r\n",
        b'From: "' + b"A" * 1500 + b'" <evil@bad.example>\r\n',
        b'From: "Evil\x00Name" <evil@bad.example>\r\n',
        b"From: =?utf-8?q?=E2=80=AEmoc=2Eelgoog?= <evil@bad.example>\r\n",
    ],
)
def test_rewrite_hostile_display_names_cannot_inject_headers_or_addresses(hostile: bytes) -> None:
    raw = hostile + b"To: team@dev.aws-educate.tw\r\nSubject: hi\r\n\r\nbody"
    out = forward(raw)
    message = parsed(out)
    # exactly one From with exactly our address, no Bcc or other injected field
    assert from_addresses(out) == ["team@dev.aws-educate.tw"]
    assert message.get_all("Bcc") is None
    assert [f.key for f in split_message(out).fields].count("from") == 1
    display = message["From"].addresses[0].display_name
    assert len(display) < 300
    assert "\r" not in display and "\n" not in display and "\x00" not in display and "\u202e" not in display
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_non_ascii_display_name_is_rfc2047_encoded() -> None:
    out = forward("From: 陳愛琳 <alice@example.com>\r\n\r\nb".encode())
    from_line = next(f for f in split_message(out).fields if f.key == "from")
    assert from_line.raw.isascii()
    assert b"=?utf-8?" in from_line.raw
    assert parsed(out)["From"].addresses[0].display_name == "陳愛琳 (alice at example.com) via team"


@pytest.mark.parametrize(
    "from_value",
    [
        # Big5 words on two lines, as Outlook writes a name too long for one word
        b"=?big5?B?s68=?=\r\n =?big5?B?pGqk5Q==?= <dawen@example.tw>",
        # UTF-8 words cut inside a character (the first word ends with the first of 大's three bytes)
        b"=?UTF-8?B?6Zmz5Q==?= =?UTF-8?B?pKfmloc=?= <dawen@example.tw>",
        # quoted-printable words of one name
        b"=?utf-8?q?=E9=99=B3?= =?utf-8?q?=E5=A4=A7=E6=96=87?= <dawen@example.tw>",
    ],
)
def test_rewrite_display_name_of_adjacent_encoded_words_reads_as_one_name(from_value: bytes) -> None:
    # GIVEN a From whose name 陳大文 is written as adjacent encoded words (RFC 2047 6.2: the white space between
    # them is no part of the name; mail programs join the bytes of words of one charset before decoding)
    raw = b"From: " + from_value + b"\r\nTo: team@dev.aws-educate.tw\r\nSubject: hi\r\n\r\nbody\r\n"
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To name 陳大文, as the sender's own mail program shows it: no space, no broken character
    message = parsed(out)
    assert message["From"].addresses[0].display_name == "陳大文 (dawen at example.tw) via team"
    assert message["Reply-To"].addresses[0].display_name == "陳大文"
    assert_forwarded(raw, out, "team", DOMAIN)


@pytest.mark.parametrize(
    ("label", "codec", "name"),
    [
        ("big5", "cp950", "陳恒"),  # Outlook in Taiwan: code page 950 labelled big5
        ("big5", "big5hkscs", "林喆"),  # HKSCS labelled big5
        ("shift_jis", "cp932", "髙橋①"),
        ("gb2312", "gb18030", "王镕"),
        ("ks_c_5601-1987", "cp949", "김똠"),
        ("iso-8859-1", "cp1252", "Seán O’Brien"),
    ],
)
def test_rewrite_display_name_in_a_charset_labelled_by_its_standard_name_reads_as_mail_programs_read_it(
    label: str, codec: str, name: str
) -> None:
    # GIVEN a From whose name is written in a Windows code page but labelled with the standard charset it extends,
    # which mail programs (the WHATWG Encoding Standard) read as that code page
    word = f"=?{label}?B?{base64.b64encode(name.encode(codec)).decode()}?="
    raw = f"From: {word} <someone@example.tw>\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To show the whole name, as the sender's mail program did
    message = parsed(out)
    assert message["From"].addresses[0].display_name == f"{name} (someone at example.tw) via team"
    assert message["Reply-To"].addresses[0].display_name == name
    assert_forwarded(raw, out, "team", DOMAIN)


def assert_named(out: bytes, name: str, shown_address: str) -> None:
    """From and Reply-To of the forward `out` spell the author's `name` whole (From read with email.header, which
    joins adjacent encoded words as RFC 2047 says: the address parser would add a space between them)."""
    from_field = split_message(out).first("from")
    assert from_field is not None
    assert decode_words(from_field.value) == f"{name} ({shown_address}) via team <team@{DOMAIN}>"
    assert parsed(out)["Reply-To"].addresses[0].display_name == name


@pytest.mark.parametrize("name", ["Alice 👩\u200d💻", "محمد\u200cرضا", "Sam 🏳️\u200d🌈"])
def test_rewrite_display_name_keeps_the_joiners_that_spell_it(name: str) -> None:
    # GIVEN a From whose name holds a zero-width joiner or non-joiner: an emoji sequence, a Persian name
    word = f"=?utf-8?b?{base64.b64encode(name.encode()).decode()}?="
    raw = f"From: {word} <someone@example.com>\r\nSubject: hi\r\n\r\nbody\r\n".encode()
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To spell the name as written, not with a space in place of the joiner (From is read with
    # email.header, which joins adjacent encoded words as RFC 2047 says: the address parser adds a space between)
    assert_named(out, name, "someone at example.com")
    assert_forwarded(raw, out, "team", DOMAIN)


BIG5_BODIES = [
    b"Content-Type: text/plain; charset=big5\r\n\r\n" + "內容".encode("big5"),
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset="Big5"\r\n\r\n'
    + "內容".encode("big5")
    + b"\r\n--b--\r\n",
]


@pytest.mark.parametrize("body", BIG5_BODIES)
def test_rewrite_display_name_written_unencoded_in_the_messages_charset_reads_in_that_charset(body: bytes) -> None:
    # GIVEN a mail from an old mailer (a web form, a script) that wrote its From name as raw Big5 bytes, the charset
    # its text declares, which is how mail programs read it
    raw = "From: 系統管理員 <admin@ntu.example>\r\nSubject: test\r\n".encode("big5") + body
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To name 系統管理員, not replacement characters
    message = parsed(out)
    assert message["From"].addresses[0].display_name == "系統管理員 (admin at ntu.example) via team"
    assert message["Reply-To"].addresses[0].display_name == "系統管理員"
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_keeps_a_reply_to_written_unencoded_in_big5_whose_trail_bytes_are_backslashes() -> None:
    # GIVEN a raw Big5 Reply-To whose name 許功蓋 has the trail byte 0x5C (`\`) in each character: read as UTF-8 it
    # holds no address the parser can find
    raw = (
        "From: 系統管理員 <admin@ntu.example>\r\nReply-To: 許功蓋 <xu@ntu.example>\r\n".encode("big5") + BIG5_BODIES[0]
    )
    # WHEN it is forwarded (direct mode)
    out = forward(raw)
    # THEN that Reply-To is kept as it came, and replies go to xu@, not to the From address
    assert "\r\nReply-To: 許功蓋 <xu@ntu.example>\r\n".encode("big5") in out
    assert out.count(b"Reply-To:") == 1
    assert_forwarded(raw, out, "team", DOMAIN)


@pytest.mark.parametrize(
    ("from_value", "name", "address"),
    [
        (b"root@host.example (Cron Daemon)", "Cron Daemon", "root@host.example"),
        (b"alice@example.com (=?utf-8?b?6Zmz5aSn5paH?=)", "陳大文", "alice@example.com"),
    ],
)
def test_rewrite_display_name_of_the_rfc822_comment_form_is_the_comment(
    from_value: bytes, name: str, address: str
) -> None:
    # GIVEN a From in RFC 822's `local@domain (Name)` form (cron, scripts, old mailers), which mail programs show
    # by the comment's name
    raw = b"From: " + from_value + b"\r\nSubject: backup done\r\n\r\nbody\r\n"
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To name the sender by that name
    message = parsed(out)
    assert message["From"].addresses[0].display_name == f"{name} ({address.replace('@', ' at ')}) via team"
    assert message["Reply-To"].addresses[0].display_name == name
    assert message["Reply-To"].addresses[0].addr_spec == address
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_display_name_in_iso_2022_jp_with_outlooks_nec_characters_reads_whole() -> None:
    # GIVEN a From name written by Outlook in ISO-2022-JP (code page 50220): 株式会社 abbreviated ㈱ and the circled
    # ① are NEC characters in JIS row 13, which Python's iso2022_jp codec refuses
    name = "㈱山田商事 ①"
    jis = b"\x1b$B-j;3ED>&;v\x1b(B \x1b$B-!\x1b(B"
    raw = b"From: =?ISO-2022-JP?B?" + base64.b64encode(jis) + b"?= <sales@yamada.example>\r\n\r\nbody\r\n"
    # WHEN it is forwarded
    out = forward(raw)
    # THEN From and Reply-To show the whole name, as Outlook and Gmail do (From read with email.header, which joins
    # adjacent encoded words as RFC 2047 says)
    assert_named(out, name, "sales at yamada.example")
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_adds_marker_and_detects_own_output() -> None:
    raw = b"From: a@example.com\r\n\r\nbody"
    out = forward(raw)
    assert out.startswith(b"X-SES-Forwarder: dev.aws-educate.tw\r\n")
    assert is_own_output(split_message(out), DOMAIN)
    assert not is_own_output(split_message(out), "aws-educate.tw")
    assert not is_own_output(split_message(raw), DOMAIN)


def test_rewrite_subject_prefix_and_spam_tag() -> None:
    options = RewriteOptions(domain=DOMAIN, subject_prefix="[dev]", spam_tag="[SPAM]")
    out = forward(b"From: a@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nb", options=options)
    assert b"Subject: [SPAM] [dev] =?utf-8?q?caf=C3=A9?=\r\n" in out
    assert parsed(out)["Subject"] == "[SPAM] [dev] café"


@pytest.mark.parametrize(
    ("prefix", "subject", "expected"),
    [
        ("[測試]", b"=?UTF-8?B?5pyD6K2w6KiY6YyE?=", "[測試] 會議記錄"),
        ("[測試]", b"\r\n =?UTF-8?B?5pyD6K2w6KiY6YyE?=", "[測試] 會議記錄"),
        ("[dev]", b"\r\n =?UTF-8?B?5pyD6K2w6KiY6YyE?=", "[dev] 會議記錄"),
        ("[測試]", b"Re: =?UTF-8?B?5pyD6K2w6KiY6YyE?=", "[測試] Re: 會議記錄"),
    ],
)
def test_rewrite_subject_prefix_is_one_space_from_an_encoded_subject(
    prefix: str, subject: bytes, expected: str
) -> None:
    # GIVEN a Subject that starts with an encoded word (on its first line or, folded, on the next), as Chinese
    # subjects do, and a subject prefix (non-ASCII: itself an encoded word, and white space between two encoded
    # words is not shown)
    raw = b"From: a@example.com\r\nSubject: " + subject + b"\r\n\r\nbody"
    # WHEN it is forwarded
    out = forward(raw, options=RewriteOptions(domain=DOMAIN, subject_prefix=prefix))
    # THEN the reader sees the prefix, one space and the subject
    assert parsed(out)["Subject"] == expected
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_subject_prefix_not_repeated_on_replies() -> None:
    options = RewriteOptions(domain=DOMAIN, subject_prefix="[dev]")
    out = forward(b"From: a@example.com\r\nSubject: Re: [dev] plan\r\n\r\nb", options=options)
    assert b"Subject: Re: [dev] plan\r\n" in out


def test_rewrite_subject_prefix_decodes_only_the_head_of_a_huge_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a 3.4 MB Subject of encoded words between words of text, which the stdlib's decoder reads in time that
    # grows with the square of the number of words (over a minute: past Lambda's timeout on every retry, in every
    # environment with a subject prefix); here it fails if it is handed more than the head of it
    from forwarder.mail import fields

    decode = fields.decode_header

    def refuse_huge(value: str) -> object:
        assert len(value) <= 65_536, "the stdlib's decoder was given a huge subject"
        return decode(value)

    monkeypatch.setattr(fields, "decode_header", refuse_huge)
    subject = b" ".join([b"=?utf-8?b?5pyD?= x"] * 180_000)
    raw = b"From: a@example.com\r\nSubject: " + subject + b"\r\n\r\nbody"
    options = RewriteOptions(domain=DOMAIN, subject_prefix="[dev]")
    # WHEN it is forwarded with a subject prefix
    rewritten = rewrite_headers(split_message(raw), "team", options)
    # THEN the prefix is put in front of the Subject, whose own bytes are kept
    out = rewritten.to_bytes()
    assert b"\r\nSubject: [dev] " + subject[:100] in out
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_subject_prefix_added_when_subject_missing() -> None:
    out = forward(b"From: a@example.com\r\n\r\nb", options=RewriteOptions(domain=DOMAIN, subject_prefix="[dev]"))
    assert parsed(out)["Subject"] == "[dev]"


def test_rewrite_folds_long_headers_at_white_space() -> None:
    raw = b"From: a@example.com\r\nReferences: " + b"<id@example.com> " * 200 + b"\r\n\r\nbody"
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    assert rewritten.report.folded == ["References"]
    assert parsed(out)["References"].split() == (b"<id@example.com> " * 200).decode().split()
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_drops_unfoldable_x_header_and_encodes_others() -> None:
    raw = b"From: a@example.com\r\nX-Blob: " + b"x" * 1200 + b"\r\nThread-Topic: " + b"y" * 1200 + b"\r\n\r\nbody"
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    assert rewritten.report.dropped == ["X-Blob"]
    assert rewritten.report.encoded == ["Thread-Topic"]
    assert b"X-Blob" not in out
    assert str(parsed(out)["Thread-Topic"]) == "y" * 1200
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_drops_a_field_whose_name_alone_fills_a_line() -> None:
    # GIVEN a field (not X-) whose name is 1,200 characters: no fold or encoding can put it on a 998-octet line
    raw = b"From: a@example.com\r\nSubject: plan\r\n" + b"N" * 1200 + b": v\r\n\r\nbody"
    # WHEN it is forwarded
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # THEN that field is dropped (SES would refuse the whole mail), and the rest goes out with no line over 998
    assert rewritten.report.dropped == ["N" * 1200]
    assert b"N" * 100 not in out
    assert max(len(line) for line in out.split(b"\r\n")) <= 998
    assert parsed(out)["Subject"] == "plan"


def test_rewrite_folds_a_long_address_list_without_white_space_between_its_addresses() -> None:
    # GIVEN a To of 100 addresses separated by bare commas: one 1,700-octet line without white space
    addresses = [f"member.{i}@example.org" for i in range(100)]
    raw = b"From: a@example.com\r\nTo: " + ",".join(addresses).encode() + b"\r\n\r\nbody"
    # WHEN it is forwarded
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # THEN the line is folded between addresses, not RFC 2047-encoded (which would leave no address to read)
    assert rewritten.report.folded == ["To"]
    assert [a.addr_spec for a in parsed(out)["To"].addresses] == addresses
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_folds_long_references_without_white_space_between_message_ids() -> None:
    # GIVEN References of 40 message ids written without white space between them (1,400 octets, one line)
    ids = [f"<message.{i}.thread@mail.example.com>" for i in range(40)]
    raw = b"From: a@example.com\r\nSubject: Re: plan\r\nReferences: " + "".join(ids).encode() + b"\r\n\r\nbody"
    # WHEN it is forwarded
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # THEN the ids are folded apart and still read as the thread (encoded words would lose the threading)
    assert rewritten.report.folded == ["References"]
    assert parsed(out)["References"].split() == ids
    assert_forwarded(raw, out, "team", DOMAIN)


_LONG_NAME = "日本語の長いファイル名" * 10 + ".pdf"
_LONG_UTF8_NAME = "報告書" * 150 + ".pdf"


@pytest.mark.parametrize(
    ("parameter", "name"),
    [
        # 1,080 octets of RFC 2231 percent-encoding
        (b"name*=utf-8''" + "".join(f"%{byte:02X}" for byte in _LONG_NAME.encode()).encode(), _LONG_NAME),
        # raw UTF-8 (RFC 6532), 1,354 octets without white space
        (b'name="' + _LONG_UTF8_NAME.encode() + b'"', _LONG_UTF8_NAME),
    ],
    ids=["percent-encoded", "raw-utf8"],
)
def test_rewrite_continues_a_content_type_parameter_too_long_for_a_line(parameter: bytes, name: str) -> None:
    # GIVEN a one-part mail whose Content-Type names a file in a parameter longer than a line
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf; " + parameter + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    )
    # WHEN it is forwarded
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # THEN the parameter is split into RFC 2231 continuations: the type and the file name read as before
    # (RFC 2047-encoded, the field would make the PDF a text/plain part without a name)
    assert rewritten.report.folded == ["Content-Type"]
    message = email.message_from_bytes(out)
    assert (message.get_content_type(), message.get_filename()) == ("application/pdf", name)
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_sanitises_bare_cr_and_nul_in_kept_headers() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\rBcc: victim@example.com\r\nX-N: a\x00b\r\n\r\nbody"
    out = forward(raw)
    assert b"\rBcc" not in out and b"\x00" not in out
    assert parsed(out).get_all("Bcc") is None


def test_rewrite_removes_white_space_before_colons_that_end_other_parsers_header_blocks() -> None:
    # GIVEN an obsolete-syntax field before From (the stdlib's parser takes it for the body's start)
    raw = b"Received : from x\r\nFrom: Alice <alice@example.com>\r\nSubject\t: hi\r\n\r\nbody"
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # THEN the names are written without it and every parser sees our From
    assert b"\r\nReceived: from x\r\n" in out
    assert b"\r\nSubject: hi\r\n" in out
    assert rewritten.report.sanitized == ["Received", "Subject"]
    assert from_addresses(out) == ["team@dev.aws-educate.tw"]
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_keeps_eight_bit_headers_and_body_bytes() -> None:
    raw = (
        b"From: a@example.com\nSubject: \xcf\xf0\xe8\xe2\xe5\xf2\nContent-Type: text/plain; charset=koi8-r\n\n"
        b"\xf0\xd2\xc9\xd7\xc5\xd4\n"
    )
    out = forward(raw)
    assert b"Subject: \xcf\xf0\xe8\xe2\xe5\xf2\n" in out
    assert out.endswith(b"\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n")
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_lf_message_gets_lf_headers() -> None:
    out = forward(b"From: a@example.com\nSubject: x\n\nbody\n")
    assert b"\r" not in out


def test_rewrite_message_without_separator_gets_one() -> None:
    raw = b"From: a@example.com\r\nSubject: x\r\nthis is body text\r\n"
    out = forward(raw)
    assert out.endswith(b"\r\n\r\nthis is body text\r\n")


@pytest.mark.parametrize(
    ("name", "address", "expected"),
    [
        ("Alice", "alice@example.com", "Alice (alice at example.com) via team"),
        ("", "alice@example.com", "alice at example.com via team"),
        ("alice@example.com", "alice@example.com", "alice at example.com via team"),
        ("Team Bot", None, "Team Bot via team"),
    ],
)
def test_display_name(name: str, address: str | None, expected: str) -> None:
    from forwarder.mail.addresses import Sender

    assert display_name(Sender(name, address), "team") == expected


def test_find_sender_shortens_absurd_names() -> None:
    sender = find_sender(split_message(b'From: "' + b"N" * 5000 + b'" <a@example.com>\r\n\r\n'), None)
    assert len(sender.name) <= 64
    assert sender.address == "a@example.com"


REPLY_ADDRESS = "team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@dev.aws-educate.tw"


def test_rewrite_team_mode_reply_to_is_the_reply_address() -> None:
    # GIVEN a mail with its own Reply-To, forwarded in team mode
    raw = (
        b"From: Carol <carol@customer.example>\r\nReply-To: Desk <desk@customer.example>\r\n"
        b"Subject: x\r\nMessage-ID: <q-1@customer.example>\r\n\r\nbody"
    )
    out = rewrite_headers(split_message(raw), "team", OPTIONS, None, REPLY_ADDRESS).to_bytes()
    # THEN Reply-To is only the reply address, named after whom it reaches; the original Reply-To is gone
    message = parsed(out)
    [reply_to] = message["Reply-To"].addresses
    assert reply_to.addr_spec == REPLY_ADDRESS
    assert reply_to.display_name == "Desk (desk at customer.example) via team"
    assert out.count(b"Reply-To:") == 1
    # AND the original Message-ID is in References, for the member's reply to name it
    assert str(message["References"]) == "<q-1@customer.example>"


def test_rewrite_team_mode_adds_the_message_id_to_existing_references() -> None:
    raw = b"From: c@x.org\r\nReferences: <a@x.org>\r\nMessage-ID: <b@x.org>\r\n\r\nbody"
    out = rewrite_headers(split_message(raw), "team", OPTIONS, None, REPLY_ADDRESS).to_bytes()
    assert b"\r\nReferences: <a@x.org>\r\n <b@x.org>\r\n" in out
    assert out.count(b"References:") == 1


def test_rewrite_team_mode_without_a_usable_message_id_adds_no_references() -> None:
    raw = b"From: c@x.org\r\nMessage-ID: not an id\r\n\r\nbody"
    out = rewrite_headers(split_message(raw), "team", OPTIONS, None, REPLY_ADDRESS).to_bytes()
    assert b"References" not in out


def test_rewrite_mark_tags_the_subject_first() -> None:
    raw = b"From: c@x.org\r\nSubject: Re: Booth\r\n\r\nbody"
    options = RewriteOptions(domain=DOMAIN, subject_prefix="[dev]", mark="[not relayed]")
    out = rewrite_headers(split_message(raw), "team", options).to_bytes()
    assert b"\r\nSubject: [not relayed] [dev] Re: Booth\r\n" in out


def test_rewrite_direct_mode_adds_no_references() -> None:
    raw = b"From: c@x.org\r\nMessage-ID: <b@x.org>\r\n\r\nbody"
    assert b"References" not in forward(raw)


def test_notice_team_mode_reply_to_is_the_reply_address() -> None:
    from forwarder.mail.notice import build_notice

    raw = b"From: Carol <carol@customer.example>\r\nSubject: big\r\n\r\nbody"
    common = {"message": split_message(raw), "alias": "team", "domain": DOMAIN, "size": 9, "link": "https://x/"}
    team = parsed(build_notice(**common, link_days=7, reply_address=REPLY_ADDRESS))
    direct = parsed(build_notice(**common, link_days=7))
    assert [a.addr_spec for a in team["Reply-To"].addresses] == [REPLY_ADDRESS]
    assert [a.addr_spec for a in direct["Reply-To"].addresses] == ["carol@customer.example"]


def _header_lines(out: bytes) -> list[bytes]:
    """The header block's lines, each with its line ending, up to the first empty line."""
    head = out[: out.index(b"\n\r\n") + 1] if b"\n\r\n" in out else out[: out.index(b"\n\n") + 1]
    return head.splitlines(keepends=True)


@pytest.mark.parametrize(
    ("raw", "newline"),
    [
        # a CRLF mail with a field ended by a bare LF, and a bare LF before a continuation line
        (b"From: a@example.com\r\nSubject: hi\nTo: t@example.org\r\nComments: one\n two\r\n\r\nbody\r\n", b"\r\n"),
        # an LF mail (its first line says so) with CRLF fields
        (b"From: a@example.com\nSubject: hi\r\nComments: one\r\n two\r\n\nbody\n", b"\n"),
    ],
)
def test_rewrite_ends_every_header_line_with_the_messages_line_ending(raw: bytes, newline: bytes) -> None:
    # GIVEN a header block whose fields mix bare LF and CRLF line endings
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # WHEN it is forwarded THEN every header line ends with the message's line ending (SMTP requires CRLF, and
    # MTAs refuse a bare LF since SMTP smuggling), the values are kept and the repair is reported
    lines = _header_lines(out)
    assert all(line.endswith(newline) and b"\r" not in line[: -len(newline)] for line in lines), lines
    message = parsed(out)
    assert (str(message["Subject"]), str(message["Comments"])) == ("hi", "one two")
    assert set(rewritten.report.sanitized) >= {"Subject", "Comments"}
    assert out.endswith(b"body" + newline)


def test_rewrite_drops_continuation_lines_of_only_white_space() -> None:
    # GIVEN a Subject folded onto lines of only white space (obsolete syntax, RFC 5322 4.2), then the charset
    raw = (
        b"From: a@example.com\r\nSubject: hi\r\n \r\n\t\r\n there\r\nContent-Type: text/plain; charset=big5\r\n"
        b"\r\n\xa7\x41\r\n"
    )
    rewritten = rewrite_headers(split_message(raw), "team", OPTIONS)
    out = rewritten.to_bytes()
    # WHEN it is forwarded THEN no header line is only white space: readers that end the header block at such a
    # line (the Ruby mail gem splits at CRLF *WSP CRLF) would read the fields after it as body
    assert not any(not line.strip() for line in _header_lines(out)[:-1])
    assert str(parsed(out)["Subject"]) == "hi there"
    assert parsed(out).get_content_charset() == "big5"
    assert rewritten.report.sanitized == ["Subject"]
    assert out.endswith(b"\r\n\r\n\xa7\x41\r\n")


def test_rewrite_survives_a_from_whose_encoded_word_is_not_utf8() -> None:
    # GIVEN a From of an encoded word with invalid UTF-8 before a bare address (spam does this)
    raw = b"From: =?utf-8?q?=E9?= a@x.com\r\nSubject: hi\r\n\r\nbody\r\n"
    # WHEN it is forwarded THEN the rewrite does not raise, and replies go to the envelope sender instead
    out = forward(raw, envelope="bounce@x.com")
    assert [a.addr_spec for a in parsed(out)["Reply-To"].addresses] == ["bounce@x.com"]
    assert_forwarded(raw, out, "team", DOMAIN)


def test_rewrite_keeps_the_subject_and_body_of_a_cr_only_mail() -> None:
    # GIVEN a mail whose lines end with a bare CR
    raw = b"From: Alice <alice@example.com>\rSubject: hello\rTo: team@dev.aws-educate.tw\r\rbody line\rmore\r\n"
    # WHEN it is forwarded
    out = forward(raw)
    # THEN the member gets its Subject and body (before, the whole mail was one From field, replaced by ours), the
    # header block in CRLF and the body as received
    message = parsed(out)
    assert str(message["Subject"]) == "hello"
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["alice@example.com"]
    assert out.endswith(b"\r\n\r\nbody line\rmore\r\n")
    assert b"\r" not in out[: out.index(b"\r\n\r\n")].replace(b"\r\n", b"")
