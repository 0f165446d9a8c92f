"""Alias data as an operator may leave it in SSM (by hand, in the console), through the real handler."""

from __future__ import annotations

import boto3

from forwarder_ops.local import EmbeddedAws

RAW = b"From: a@example.com\r\nTo: board@dev.aws-educate.tw\r\nSubject: hello\r\n\r\nbody\r\n"


def test_alias_parameters_named_in_two_cases_both_receive(aws: EmbeddedAws) -> None:
    # GIVEN two parameters whose names differ only in case (SSM names are case-sensitive, mail local parts are not):
    # `Board` made in the console, `board` by the CLI
    ssm = boto3.client("ssm", region_name=aws.ses.region)
    ssm.put_parameter(Name=f"{aws.alias_path}/Board", Value="upper@example.org, Lower@example.org", Type="String")
    ssm.put_parameter(Name=f"{aws.alias_path}/board", Value="lower@example.org", Type="StringList")

    # WHEN mail for board@ arrives
    _, sent = aws.deliver(RAW, ["board@dev.aws-educate.tw"], message_id="two-cases")

    # THEN the members of both get it, each once (before, the one read last hid the other, whose members lost it)
    assert sorted(m.lower() for s in sent for m in s.recipients) == ["lower@example.org", "upper@example.org"]
