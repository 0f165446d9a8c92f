"""Hostile mail through the Lambda handler against the emulator, whose SES refuses what real SES refuses (a line
over 998 octets, a duplicate single-instance field): every mail is forwarded or noticed, never raised, and the
stored mail stays in the bucket."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder_ops.local import EmbeddedAws
from tests.hostile import assert_sendable, header_blocks, mime_mails

TEAM = ["team@dev.aws-educate.tw"]
mails = st.one_of(header_blocks.map(b"".join), mime_mails())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=mails)
def test_hostile_mail_through_the_handler_is_sent_and_kept(aws: EmbeddedAws, raw: bytes) -> None:
    # GIVEN a hostile mail (arbitrary header bytes, or parts with over-long lines) stored by SES
    # (a new id each time: hypothesis may draw the same mail twice, and the claims would rightly send it once)
    message_id = uuid.uuid4().hex
    # WHEN the handler gets its event
    result, sent = aws.deliver(raw, TEAM, message_id=message_id)
    # THEN nothing raised (Lambda would retry in vain), SES took what went to the members, and it is sendable
    [outcome] = result["outcomes"]
    assert outcome["forwarded"], outcome
    assert len(sent) == 1
    assert_sendable(sent[0].raw)
    # AND the stored mail is still in the bucket, as received
    stored = aws.clients()["s3"].get_object(Bucket=aws.bucket, Key=f"{aws.prefix}{message_id}")["Body"].read()
    assert stored == raw
