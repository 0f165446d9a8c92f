"""parse_addresses' fast path for common one-mailbox values gives exactly what the full parser gives."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forwarder.mail import addresses
from forwarder.mail.addresses import _full_parse, _simple_mailbox, clean_text, parse_addresses
from forwarder.mail.message import split_message
from tests.conftest import corpus_files

# Pieces near the fast path's edges: atoms with and without specials, quoted strings with escapes and
# encoded words inside, encoded words valid and broken (bad base64, unknown charsets, CR/LF, tabs,
# `?=` inside), addresses with odd dots and domains, and arbitrary text.
atoms = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,8}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
quoted = st.builds(lambda t: f'"{t}"', st.one_of(texts, st.from_regex(r"[ -~]{0,12}", fullmatch=True)))
payloads = st.one_of(texts, st.binary(max_size=12).map(lambda b: b.decode("latin-1")))
charsets = st.sampled_from(["utf-8", "UTF-8", "us-ascii", "iso-8859-1", "windows-1252", "bogus", "utf-8*en", "utf8"])
b_words = st.builds(
    lambda c, t, cut: f"=?{c}?B?{base64.b64encode(t.encode('utf-8', 'replace')).decode()[: cut or None]}?=",
    charsets,
    payloads,
    st.integers(-3, 0),
)
q_words = st.builds(
    lambda c, t: f"=?{c}?q?{t}?=", charsets, st.from_regex(r"[A-Za-z0-9=_%?!<>\"@.\t ]{0,16}", fullmatch=True)
)
words = st.one_of(b_words, q_words)
local = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\"]{1,10}", fullmatch=True)
domain = st.from_regex(r"[A-Za-z0-9.\-\[\]]{1,12}", fullmatch=True)
address = st.builds(lambda lp, d: f"{lp}@{d}", local, domain)
name = st.lists(st.one_of(atoms, quoted, words, texts), max_size=3).map(" ".join)
separator = st.sampled_from(["", " ", "  ", "\t", " \r\n "])
values = st.one_of(
    address,
    st.builds(lambda a, s: f"<{a}>{s}", address, separator),
    st.builds(lambda n, s, a: f"{n}{s}<{a}>", name, separator, address),
    st.builds(lambda n, a, m: f"{n} <{a}>, {m}", name, address, address),
    texts,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
@example("=?UTF-8?B?6Zmz5oSb55CzIEFsaWNlIENoZW4=?= <alice.chen@example.com>")
@example('"Lon L. Peters" <lpeters@PACIFIER.COM>')
@example("=?utf-8?q?a=0D=0A_b?= <x@y.z>")
@example("=?utf-8?B?YQkJYg==?= <x@y.z>")
@example('"=?utf-8?q?a?=" <x@y.z>')
@example("=?utf-8?q?=?= <0@0.0>")  # the text `=` ends the word early: no encoded word to the full parser
@example("=?utf-8?q?==?= <0@0.0>")
@example("=?utf-8?q?=4?= <0@0.0>")
@example("=?utf-8?q?=E9=99=B3?= <a@b.c>")  # `?=` then hex digits: an escape, the word goes on
def test_simple_mailbox_matches_the_full_parser(value: str) -> None:
    # GIVEN a From value as parse_addresses sees it (one line, control characters gone)
    flat = clean_text(value, len(value) + 1)
    # WHEN the fast path reads it
    simple = _simple_mailbox(flat)
    # THEN it either declines or gives exactly the full parser's (name, address)
    if simple is not None:
        assert [simple] == _full_parse(flat)


@pytest.mark.parametrize(
    "value",
    [
        "alice@example.com",
        "<alice@example.com>",
        "Alice Chen <alice@example.com>",
        '"Chen, Alice" <alice@example.com>',
        "=?UTF-8?B?6Zmz5oSb55CzIEFsaWNlIENoZW4=?= <alice.chen@example.com>",
    ],
)
def test_simple_mailbox_reads_the_common_forms(value: str) -> None:
    # GIVEN the forms most mail's From has, WHEN the fast path reads them, THEN it does not decline
    assert _simple_mailbox(value) is not None


def test_parse_addresses_falls_back_to_the_full_parser_for_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a value with two mailboxes, which the fast path declines
    calls: list[str] = []
    full = addresses._full_parse
    monkeypatch.setattr(addresses, "_full_parse", lambda flat: calls.append(flat) or full(flat))
    # WHEN it is parsed
    pairs = parse_addresses("Alice <alice@example.com>, bob@example.org")
    # THEN the full parser read it, and both mailboxes are there
    assert calls == ["Alice <alice@example.com>, bob@example.org"]
    assert pairs == [("Alice", "alice@example.com"), ("", "bob@example.org")]


def test_parse_addresses_reads_a_huge_field_without_the_stdlibs_full_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a From of 20,000 encoded words, which the stdlib's full parser reads in time that grows with the square of
    # its length (half a minute here: past Lambda's timeout, on every retry); here it fails if it is called
    from email.headerregistry import AddressHeader

    full_parser = AddressHeader.value_parser

    def refuse_long(value: str) -> object:
        assert len(value) <= 16_384, "the full parser was given a huge value"
        return full_parser(value)

    monkeypatch.setattr(AddressHeader, "value_parser", staticmethod(refuse_long))
    value = " ".join(["=?utf-8?b?5Lit?="] * 20_000) + " <alice@example.com>"

    # WHEN it is parsed
    pairs = parse_addresses(value)

    # THEN the address is read, and the name decoded (shortened, as every name is)
    assert [address for _, address in pairs] == ["alice@example.com"]
    assert pairs[0][0].startswith("中中中")


def test_field_addresses_bound_the_full_parsers_work_for_a_whole_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a mail of 30 From and 30 To fields, each 16,000 characters of comments and no address: each is short
    # enough for the stdlib's full parser, which takes seconds on each (its time grows with the square of the number
    # of tokens): a minute and more for the mail, past Lambda's timeout on every retry, and the mail is never sent
    from forwarder.mail.addresses import original_authors
    from forwarder.mail.participants import outside_people

    given: list[int] = []
    monkeypatch.setattr(addresses, "_full_parse", lambda flat: given.append(len(flat)) or [])
    hostile = b"(a)" * 5_333
    raw = (b"From: " + hostile + b"\r\n") * 30 + (b"To: " + hostile + b"\r\n") * 30 + b"\r\nbody\r\n"
    message = split_message(raw)

    # WHEN its authors and the people of its conversation are read
    authors = original_authors(message, "bounce@example.org")
    people = outside_people(message, "bounce@example.org", "dev.aws-educate.tw", set())

    # THEN the full parser reads at most the first 16 KB of the message's address fields, the rest is read by the
    # linear parser, and the envelope sender is the author
    assert sum(given) <= 16_384
    assert authors == [("", "bounce@example.org")]
    assert people == ()


@pytest.mark.parametrize(
    ("value", "found"),
    [
        # nested comments: both stdlib parsers recurse once per `(`
        ("(" * 3_000 + "alice@example.com", ["alice@example.com"]),
        ("Alice (" + "(" * 3_000 + ") <alice@example.com>", ["alice@example.com"]),
        # the legacy parser (values over 16 KB) recurses at each `:` it takes for a group, such as the colons of
        # times in encoded words: what a mutated corpus mail held
        ("Alice <alice@example.com> " + "=?utf-8?Q?10:08:28?= " * 1_000, ["alice@example.com"]),
        ("g:" * 9_000 + "alice@example.com;", ["alice@example.com"]),
    ],
)
def test_parse_addresses_reads_hostile_nesting_without_exhausting_the_stack(value: str, found: list[str]) -> None:
    # GIVEN an address field nested thousands deep (3 KB is enough), WHEN it is parsed THEN no RecursionError: the
    # address written in it is read (the mail went to the failure queue on every retry, never forwarded)
    assert [address for _, address in parse_addresses(value)] == found


def test_forward_of_a_from_nested_thousands_deep_goes_out() -> None:
    from forwarder.mail.rewrite import RewriteOptions, rewrite_headers

    raw = b"From: " + b"(" * 3_000 + b"alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    out = rewrite_headers(split_message(raw), "team", RewriteOptions(domain="dev.aws-educate.tw")).to_bytes()
    assert b"alice at example.com via team" in out and out.endswith(b"\r\n\r\nbody\r\n")


def test_simple_mailbox_agrees_with_the_full_parser_on_the_corpus() -> None:
    # GIVEN every From, Reply-To, Sender, To and Cc value of the corpus
    checked = 0
    for path in corpus_files():
        for field in split_message(path.read_bytes()).fields:
            if field.key not in ("from", "reply-to", "sender", "to", "cc"):
                continue
            flat = clean_text(field.value, len(field.value) + 1)
            # WHEN the fast path reads it, THEN it declines or agrees with the full parser
            simple = _simple_mailbox(flat)
            if simple is not None:
                assert [simple] == _full_parse(flat), field.value
                checked += 1
    assert checked > 0


def test_parse_addresses_leaves_out_an_address_with_undecodable_bytes() -> None:
    # GIVEN a From whose encoded word holds invalid UTF-8 and runs into a bare address: the stdlib's parser
    # reads the word into the local part, as a lone surrogate (`"\udce9 a"@x.com`)
    value = "=?utf-8?q?=E9?= a@x.com, b@x.com"
    # WHEN its addresses are read THEN nothing raises (it escaped the handler: Lambda retried the mail in vain)
    # and only the address that can be written is kept
    assert parse_addresses(value) == [("", "b@x.com")]


def test_parse_addresses_joins_encoded_words_in_names_never_in_addresses() -> None:
    # GIVEN a name of two encoded words beside an address whose local part is two encoded words (the stdlib reads
    # it as `"a b"@x.com`, no address anyone can write; joined, it would read as the other address `ab@x.com`)
    value = "=?utf-8?q?A?= =?utf-8?q?li?= <alice@x.com>, <=?utf-8?q?a?= =?utf-8?q?b?=@x.com>"
    # WHEN its addresses are read
    pairs = parse_addresses(value)
    # THEN no address appears that the value does not hold, and so the whole value is read as it came
    assert pairs == [("A li", "alice@x.com")]
    # AND alone, the name's words are joined (RFC 2047 6.2)
    assert parse_addresses("=?utf-8?q?A?= =?utf-8?q?li?= <alice@x.com>") == [("Ali", "alice@x.com")]


def test_field_addresses_reads_each_field_of_a_message_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a team-mode forward's work: its From read for the display name, the reply address and the people
    message = split_message(b"From: Alice <alice@x.org>\r\nCc: bob@z.net\r\n\r\nbody\r\n")
    calls: list[str] = []
    parse = addresses.parse_addresses
    monkeypatch.setattr(addresses, "parse_addresses", lambda value, *rest: calls.append(value) or parse(value, *rest))
    # WHEN each field is read three times
    from_field, cc = message.fields
    results = [addresses.field_addresses(field, message) for field in (from_field, cc) * 3]
    # THEN each was parsed once, and every reading gives the same pairs
    assert calls == ["Alice <alice@x.org>", "bob@z.net"]
    assert results[0] == results[2] == results[4] == [("Alice", "alice@x.org")]
    # AND another message's equal field is read for itself
    other = split_message(b"From: Alice <alice@x.org>\r\n\r\nbody\r\n")
    assert addresses.field_addresses(other.fields[0], other) == [("Alice", "alice@x.org")]
    assert len(calls) == 3
