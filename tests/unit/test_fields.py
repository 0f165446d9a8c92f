"""utf8_words writes exactly what email.header writes for a UTF-8 text, in one pass."""

from __future__ import annotations

import base64
from email.header import Header

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forwarder.mail.fields import decode_words, repair_field, utf8_words
from forwarder.mail.message import has_long_line

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300) | st.text(
    st.sampled_from(["a", " ", "é", "日", "😀", "=", "?", "_", "\t", '"']), max_size=300
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(["\r\n", "\n"]))
@example("陳愛琳 Alice Chen (alice.chen at example.com) via team", "\r\n")
@example("ab\u00e9" * 40, "\n")
@example("x" * 100 + "é", "\r\n")
@example("x" * 60 + "é", "\r\n")  # quoted-printable, exactly as long as the first line allows
@example("x" * 61 + "é", "\r\n")  # one character more: two words
@example("é" * 24 + "x", "\n")  # base64, 64 characters on one line
@example("é" * 25, "\n")  # base64, 68: two words
def test_utf8_words_matches_email_header(text: str, linesep: str) -> None:
    # GIVEN any text, WHEN it is encoded by utf8_words and by the stdlib's Header
    # THEN both give the same value, byte for byte
    assert utf8_words(text, linesep) == Header(text, "utf-8").encode(linesep=linesep)


def test_fold_list_adds_white_space_only_between_the_items_of_a_list() -> None:
    # GIVEN a Cc line over 998 octets without white space, whose names hold commas in quotes and comments
    # and whose obsolete source routes hold commas in angle brackets
    import email
    import email.policy

    from forwarder.mail.fields import fold_list
    from forwarder.mail.message import has_long_line

    items = [f'"Doe,Jo{i}"<j{i}@x.org>,r{i}@x.org(Roe,Ri{i}),<@relay.x.org,@b.x.org:s{i}@x.org>' for i in range(20)]
    raw = ("Cc: " + ",".join(items) + "\r\n").encode()
    # WHEN it is folded
    folded = fold_list("Cc", raw)
    # THEN it has no long line, and it reads as the same names and addresses
    assert folded is not None and not has_long_line(folded)

    def cc(data: bytes) -> list[tuple[str, str]]:
        field = email.message_from_bytes(data + b"\r\n", policy=email.policy.default)["Cc"]
        return [(a.display_name, a.addr_spec) for a in field.addresses]

    assert cc(folded) == cc(raw)
    assert ("Doe,Jo7", "j7@x.org") in cc(folded)
    # AND a field that is no list is left to the other repairs
    assert fold_list("Subject", b"Subject: " + b"x," * 600 + b"\r\n") is None


def test_decode_words_reads_a_big5_label_as_code_page_950_and_joins_split_characters() -> None:
    # GIVEN a Subject in code page 950 labelled big5 (恒 is not in Big5 proper), over two words that split 大
    octets = "陳恒大文".encode("cp950")
    words = [f"=?big5?B?{base64.b64encode(part).decode()}?=" for part in (octets[:5], octets[5:])]
    # WHEN it is decoded (for a notice's text and the subject prefix's check)
    # THEN it reads as the sender wrote it
    assert decode_words("Re: " + " ".join(words)) == "Re: 陳恒大文"


def test_repair_field_does_not_hand_a_huge_parameter_field_to_the_stdlibs_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a 1.6 MB Content-Type of 400,000 parameters and a 2,000-character name, which no folding at white space
    # makes fit: the stdlib's MIME header parser, which would write it as RFC 2231 continuations, takes over two
    # minutes on it (its time grows with the square of the number of parameters), past Lambda's timeout; here it
    # fails if it is handed such a value
    from email.headerregistry import HeaderRegistry

    registry = HeaderRegistry.__call__

    def refuse_huge(self: HeaderRegistry, name: str, value: str) -> object:
        assert len(value) <= 16_384, "the stdlib's header parser was given a huge value"
        return registry(self, name, value)

    monkeypatch.setattr(HeaderRegistry, "__call__", refuse_huge)
    raw = b"Content-Type: text/plain" + b";a=b" * 400_000 + b";name=" + b"x" * 2000 + b"\r\n"
    # WHEN it is repaired THEN it is RFC 2047-encoded instead (the contract's way for a field that cannot be folded),
    # and it can be sent
    kept, repairs = repair_field("Content-Type", raw, b"\r\n")
    assert repairs == ["encoded"]
    assert kept is not None and not has_long_line(kept)
