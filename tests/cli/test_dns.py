"""The doctor's real DNS resolver, with dnspython's network calls answered here (no network in tests)."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.resolver
import pytest

from forwarder_ops.doctor import DnsLookupError, DnsResolver

REFERRAL = """id 1
opcode QUERY
rcode NOERROR
flags QR
;QUESTION
dev.aws-educate.tw. IN NS
;ANSWER
;AUTHORITY
dev.aws-educate.tw. 172800 IN NS ns-1.awsdns-01.org.
dev.aws-educate.tw. 172800 IN NS NS-2.awsdns-02.com.
;ADDITIONAL
"""


class Answer(list[Any]):
    pass


class Record:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> DnsResolver:
    """A DnsResolver whose recursive resolver and parent-zone queries are answered from tables."""
    real = DnsResolver(timeout=1)
    answers = {
        ("aws-educate.tw.", "NS"): [Record(target=dns.name.from_text("ns1.parent-dns.example."))],
        ("ns1.parent-dns.example.", "A"): [Record(address="192.0.2.53")],
        ("dev.aws-educate.tw", "MX"): [
            Record(preference=10, exchange=dns.name.from_text("Inbound-SMTP.us-east-1.amazonaws.com.")),
            Record(preference=20, exchange=dns.name.from_text("backup.example.")),
        ],
    }

    def resolve(name: Any, kind: str) -> Answer:
        key = (str(name), kind)
        if key not in answers:
            raise dns.resolver.NXDOMAIN
        return Answer(answers[key])

    monkeypatch.setattr(real._resolver, "resolve", resolve)
    monkeypatch.setattr(
        dns.resolver, "zone_for_name", lambda name, resolver=None: dns.name.from_text("aws-educate.tw.")
    )
    return real


def test_delegation_is_the_referral_of_a_parent_name_server(
    resolver: DnsResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str]] = []

    def query(message: dns.message.Message, where: str, timeout: float | None = None) -> tuple[Any, bool]:
        asked.append((str(message.question[0].name), where))
        return dns.message.from_text(REFERRAL), False

    monkeypatch.setattr("dns.query.udp_with_fallback", query)

    # WHEN asking for the delegation of dev.aws-educate.tw
    # THEN a name server of the parent zone was asked directly, and its referral's NS set is the answer
    assert resolver.delegation("dev.aws-educate.tw") == ["ns-1.awsdns-01.org", "ns-2.awsdns-02.com"]
    assert asked == [("dev.aws-educate.tw.", "192.0.2.53")]


def test_delegation_without_any_answering_parent_server(resolver: DnsResolver, monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(*args: Any, **kwargs: Any) -> Any:
        raise dns.exception.Timeout

    monkeypatch.setattr("dns.query.udp_with_fallback", timeout)

    with pytest.raises(DnsLookupError, match=r"no name server of aws-educate\.tw answered"):
        resolver.delegation("dev.aws-educate.tw")


def test_mx_records_are_sorted_and_normalised(resolver: DnsResolver) -> None:
    assert resolver.mx("dev.aws-educate.tw") == [
        (10, "inbound-smtp.us-east-1.amazonaws.com"),
        (20, "backup.example"),
    ]


def test_no_mx_records_is_an_empty_list(resolver: DnsResolver) -> None:
    assert resolver.mx("nothing.example") == []
