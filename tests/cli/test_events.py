"""events/*.json: what an SES receipt rule's Lambda action sends (the shape in the SES developer guide's sample
incoming email event), and what `make events` writes from events/manifest.toml and events/mail/."""

from __future__ import annotations

import json
from pathlib import Path

from forwarder_ops.local import build_event
from forwarder_ops.samples import load_manifest, write_events
from tests.conftest import EVENTS


def test_events_common_headers_return_path_is_the_bare_address() -> None:
    # GIVEN a stored mail whose Return-Path (prepended by SES) holds the address in angle brackets, and a bounce's
    raw = b"Return-Path: <alice@example.com>\r\nFrom: alice@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    bounce = b"Return-Path: <>\r\nFrom: MAILER-DAEMON@example.com\r\nSubject: failed\r\n\r\nbody\r\n"

    # WHEN the event is built
    event = build_event(raw, ["team@dev.aws-educate.tw"])["Records"][0]["ses"]["mail"]

    # THEN the header keeps its brackets, commonHeaders.returnPath is the address alone, as SES writes them
    assert {"name": "Return-Path", "value": "<alice@example.com>"} in event["headers"]
    assert event["commonHeaders"]["returnPath"] == "alice@example.com"
    assert (
        build_event(bounce, ["team@dev.aws-educate.tw"])["Records"][0]["ses"]["mail"]["commonHeaders"]["returnPath"]
        == ""
    )


def test_events_committed_samples_are_what_make_events_writes(tmp_path: Path) -> None:
    # GIVEN the committed events WHEN they are written again from the manifest and the mails
    written = write_events(load_manifest(EVENTS / "manifest.toml"), tmp_path)

    # THEN each is the committed file byte for byte (a changed mail or builder is followed by `make events`)
    for path in written:
        assert path.read_bytes() == (EVENTS / path.name).read_bytes(), f"run `make events`: {path.name} differs"
        assert json.loads(path.read_text())["Records"][0]["eventSource"] == "aws:ses"
