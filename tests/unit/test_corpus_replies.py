"""Team mode over the shared corpus: every message forwards with a reply address, and every message taken
as a member's reply goes out with only allow-listed fields, SES-acceptable, body unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder.mail import headers as h
from forwarder.mail.message import has_long_line, split_message
from forwarder.mail.reply import build_reply_head
from forwarder.mail.rewrite import RewriteOptions, rewrite_headers
from tests.conftest import CORPUS, corpus_files
from tests.mailcheck import parsed

DOMAIN = "dev.aws-educate.tw"
FILES = corpus_files()
REPLY_ADDRESS = "team+r-aaaaaaaaaaaa-bbbbbbbbbbbbbbbb@dev.aws-educate.tw"
OURS = {h.MARKER.lower(), "from", "to", "date", "reply-to"}


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_message_forwards_with_one_reply_address(path: Path) -> None:
    raw = path.read_bytes()
    rewritten = rewrite_headers(
        split_message(raw), "team", RewriteOptions(domain=DOMAIN), "e@example.net", REPLY_ADDRESS
    )
    out = split_message(rewritten.to_bytes())
    [reply_to] = out.all(h.REPLY_TO)
    assert reply_to.value.endswith(f"<{REPLY_ADDRESS}>")
    assert len(out.all(h.REFERENCES)) <= 1
    assert not has_long_line(rewritten.head)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_message_as_a_reply_keeps_only_the_allow_list(path: Path) -> None:
    raw = path.read_bytes()
    message = split_message(raw)
    head = build_reply_head(
        message, domain=DOMAIN, alias="team", display_name="Bob via team", to_address="carol@customer.example"
    )
    out = split_message(head + bytes(message.body))
    names = [f.key for f in out.fields]
    assert set(names) <= OURS | h.REPLY_ALLOWED
    assert len(names) == len(set(names))
    assert not has_long_line(head)
    assert out.raw[out.body_start :] == bytes(message.body)
    assert [a.addr_spec for a in parsed(head)["To"].addresses] == ["carol@customer.example"]
