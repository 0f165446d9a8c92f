"""Verdict policy."""

from __future__ import annotations

import pytest

from forwarder.mail.policy import Decision, DropReason, Verdicts, decide


@pytest.mark.parametrize(
    ("verdicts", "spam_action", "expected"),
    [
        (Verdicts(), "tag", Decision(forward=True)),
        (Verdicts(virus="FAIL"), "tag", Decision(forward=False, reason=DropReason.VIRUS)),
        (Verdicts(dmarc="FAIL", dmarc_policy="reject"), "tag", Decision(forward=False, reason=DropReason.DMARC_REJECT)),
        (Verdicts(dmarc="FAIL", dmarc_policy="REJECT"), "tag", Decision(forward=False, reason=DropReason.DMARC_REJECT)),
        (Verdicts(dmarc="FAIL", dmarc_policy="quarantine"), "tag", Decision(forward=True)),
        (Verdicts(dmarc="FAIL"), "tag", Decision(forward=True)),
        (Verdicts(spam="FAIL"), "tag", Decision(forward=True, tag_spam=True)),
        (Verdicts(spam="FAIL"), "drop", Decision(forward=False, reason=DropReason.SPAM)),
        (Verdicts(spam="GRAY", virus="GRAY"), "drop", Decision(forward=True)),
        (Verdicts(spam="FAIL", virus="FAIL"), "tag", Decision(forward=False, reason=DropReason.VIRUS)),
        (Verdicts(spam="DISABLED", virus="DISABLED"), "tag", Decision(forward=True)),
    ],
)
def test_decide(verdicts: Verdicts, spam_action: str, expected: Decision) -> None:
    assert decide(verdicts, spam_action) == expected  # type: ignore[arg-type]
