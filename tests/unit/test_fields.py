"""utf8_words writes exactly what email.header writes for a UTF-8 text, in one pass."""

from __future__ import annotations

from email.header import Header

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forwarder.mail.fields import utf8_words

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300) | st.text(
    st.sampled_from(["a", " ", "é", "日", "😀", "=", "?", "_", "\t", '"']), max_size=300
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(["\r\n", "\n"]))
@example("陳愛琳 Alice Chen (alice.chen at example.com) via team", "\r\n")
@example("ab\u00e9" * 40, "\n")
@example("x" * 100 + "é", "\r\n")
def test_utf8_words_matches_email_header(text: str, linesep: str) -> None:
    # GIVEN any text, WHEN it is encoded by utf8_words and by the stdlib's Header
    # THEN both give the same value, byte for byte
    assert utf8_words(text, linesep) == Header(text, "utf-8").encode(linesep=linesep)
