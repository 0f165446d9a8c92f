"""`forwarder run --reply-as MEMBER`: the team-reply round trip through the real handler, locally."""

from __future__ import annotations

import json
from pathlib import Path

from forwarder.mail.message import split_message
from tests.cli.conftest import Cli
from tests.conftest import DOMAIN, EVENTS

# `forwarder run` of the sample mail to team@, then a member's answer to the forward she got
REPLY_AS = (
    "run",
    str(EVENTS / "mail" / "workshop.eml"),
    "--to",
    f"team@{DOMAIN}",
    "--aliases",
    str(EVENTS / "aliases.toml"),
    "--reply-as",
)


def test_run_reply_as_a_member_relays_the_answer_to_the_outside_sender(cli: Cli, workdir: Path) -> None:
    # WHEN the sample mail to team@ is run and the member Yating answers the forward she got
    result = cli(*REPLY_AS, "yating.chen@example.com", "--json")

    # THEN the forward carries a reply address, and the answer goes out to the outside sender from team@
    assert result.code == 0, result.err
    forward, answer = json.loads(result.out)
    reply_to = split_message(Path(forward["sent"][0]["file"]).read_bytes()).first("reply-to")
    assert reply_to is not None and "<team+r-" in reply_to.value
    assert answer["recipients"] == [reply_to.value.rpartition("<")[2].rstrip(">")]
    assert answer["outcome"]["reply"] == "relayed"
    outside, copy = answer["sent"]
    # (Alice's mail has Bob Lin in Cc: the answer reaches him too, through the relay, as a Reply all would have; it
    # went to Alice alone, and a Reply all reached Bob from Yating's own mailbox)
    assert (outside["from"], outside["to"]) == (f"team@{DOMAIN}", ["alice.chen@example.com", "bob.lin@example.net"])
    assert copy["to"] == ["weijie.lin@example.net"]
    head = Path(outside["file"]).read_bytes().split(b"\r\n\r\n")[0]
    assert b"From: Yating Chen via team <team@dev.aws-educate.tw>" in head
    assert b"yating.chen@" not in head


def test_run_reply_as_text_report_names_the_relay(cli: Cli) -> None:
    result = cli(*REPLY_AS, "weijie.lin@example.net")
    assert result.code == 0, result.err
    assert "== weijie.lin@example.net's reply to workshop.eml  ->  team+r-" in result.out
    assert "relayed to the outside sender as team, copies to 1 member(s)" in result.out
