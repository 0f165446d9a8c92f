"""The embedded AWS emulator: the real handler against in-process moto, SES sends captured.

Used by `make run`, `forwarder run`, `forwarder smtp` and the integration tests. moto provides S3,
SSM, DynamoDB and the SES identities; SES v2 `SendEmail` is answered here instead, below moto (whose
raw send decodes the message as UTF-8 and counts header recipients as envelope recipients), with the
checks real SES makes: a verified sender identity, 1 to 50 recipients, 40 MB, no line over 1,000
octets, no single-instance header twice.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forwarder.config import SES_V2_RAW_LIMIT
from forwarder.mail import headers as h
from forwarder.mail.addresses import parse_addresses
from forwarder.mail.message import has_long_line, split_message
from forwarder.models import first_inbound

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "local-forwarder-mail"
PREFIX = "inbound/"
TABLE = "local-forwarder-idempotency"
TRACE_TABLE = "local-forwarder-trace"
REPLY_TABLE = "local-forwarder-replies"
LINK_SECRET = "local-forwarder-links"  # noqa: S105 (the secret's name)
# The emulator's signing key: fixed, so that local reply addresses are the same from run to run (it signs
# nothing outside this process; a deployed stack generates its own in Secrets Manager).
LOCAL_SIGNING_KEY = "local-only-signing-key-not-a-secret-0123456789abcdef0123456789abcdef"
FUNCTION = "local-forwarder"


@dataclass(frozen=True, slots=True)
class SentMail:
    """One accepted `SendEmail` call: the envelope and the exact bytes."""

    message_id: str
    from_address: str
    recipients: tuple[str, ...]
    raw: bytes
    configuration_set: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class SesRefusal(Exception):
    """What real SES would answer with an error; `code` is its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _reply(status: int, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What botocore's `before-call` short-circuit expects: (HTTP response, parsed body)."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    parsed = {**body, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse("https://email.local", status, HTTPHeaders(), None), parsed


@dataclass
class SuppressionList:
    """The SES v2 account-level suppression list of one region (moto has none): Get, List, Put and
    DeleteSuppressedDestination, answered below moto like `LocalSes` answers SendEmail."""

    entries: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    def add(self, address: str, reason: str = "BOUNCE", when: datetime | None = None) -> None:
        self.entries[address.lower()] = (reason, when or datetime.now(UTC))

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["local_suppression_params"] = params

    def _missing(self, address: str) -> tuple[Any, dict[str, Any]]:
        error = {
            "Code": "NotFoundException",
            "Message": f"Email address {address} does not exist on your suppression list.",
        }
        return _reply(404, {"Error": error})

    def _get(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        address = str(context["local_suppression_params"].get("EmailAddress", ""))
        if address.lower() not in self.entries:
            return self._missing(address)
        reason, when = self.entries[address.lower()]
        destination = {"EmailAddress": address.lower(), "Reason": reason, "LastUpdateTime": when}
        return _reply(200, {"SuppressedDestination": destination})

    def _list(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        summaries = [
            {"EmailAddress": address, "Reason": reason, "LastUpdateTime": when}
            for address, (reason, when) in sorted(self.entries.items())
        ]
        return _reply(200, {"SuppressedDestinationSummaries": summaries})

    def _put(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        params = context["local_suppression_params"]
        self.add(str(params["EmailAddress"]), str(params.get("Reason", "BOUNCE")))
        return _reply(200, {})

    def _delete(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        address = str(context["local_suppression_params"].get("EmailAddress", ""))
        if self.entries.pop(address.lower(), None) is None:
            return self._missing(address)
        return _reply(200, {})

    def install(self, events: Any) -> None:
        """Answer the suppression-list calls of every client made from `events` (a session's or a client's)."""
        for operation, answer in (
            ("GetSuppressedDestination", self._get),
            ("ListSuppressedDestinations", self._list),
            ("PutSuppressedDestination", self._put),
            ("DeleteSuppressedDestination", self._delete),
        ):
            events.register(f"provide-client-params.sesv2.{operation}", self._remember)
            events.register(f"before-call.sesv2.{operation}", answer)


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["local_ses_params"] = params


def _moto_verified(account: str, region: str, name: str) -> bool:
    """Whether moto's SES knows `name` (an address, or `postmaster@<domain>` for a domain) as verified."""
    from moto.ses.models import ses_backends

    return bool(name) and ses_backends[account][region]._is_verified_address(name)


@dataclass
class SesV2Answers:
    """The SES v2 calls moto lacks (GetAccount) or answers unlike SES (GetEmailIdentity: never verified
    for sending, no DKIM or MAIL FROM), answered as a deployed environment would. The one filler for the
    local emulator and the CLI tests; the fields change the answers.
    """

    account: str = ACCOUNT
    region: str = REGION
    production: bool = True
    # GetEmailIdentity of an identity moto knows; `verified` None: as moto says
    verified: bool | None = None
    dkim: str = "SUCCESS"
    mail_from: str | None = "SUCCESS"
    mail_from_behavior: str = "USE_DEFAULT_VALUE"
    # GetAccount's (Max24HourSend, MaxSendRate, SentLast24Hours); None: SES's defaults, `sent` from `sent_count`
    quota: tuple[float, float, float] | None = None
    sent_count: Callable[[], int] = lambda: 0
    account_error: Exception | None = None
    # GetAccount's SendingEnabled and EnforcementStatus: sending paused in the account, or by SES
    sending_enabled: bool = True
    enforcement: str = "HEALTHY"
    # the identity's default configuration set, as the template attaches one
    configuration_set: str | None = None

    def install(self, events: Any) -> None:
        events.register("provide-client-params.sesv2.GetEmailIdentity", _remember_params)
        events.register("before-call.sesv2.GetAccount", self._account)
        events.register("before-call.sesv2.GetEmailIdentity", self._identity)

    def _account(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        if self.account_error is not None:
            raise self.account_error
        limit, rate = (50_000.0, 14.0) if self.production else (200.0, 1.0)
        quota = self.quota or (limit, rate, float(self.sent_count()))
        account = {
            "ProductionAccessEnabled": self.production,
            "SendingEnabled": self.sending_enabled,
            "EnforcementStatus": self.enforcement,
            "SendQuota": dict(zip(("Max24HourSend", "MaxSendRate", "SentLast24Hours"), quota, strict=True)),
        }
        return _reply(200, account)

    def _identity(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        name = context["local_ses_params"]["EmailIdentity"]
        if not _moto_verified(self.account, self.region, name if "@" in name else f"postmaster@{name}"):
            missing = {"Code": "NotFoundException", "Message": f"Email identity {name} does not exist."}
            return _reply(404, {"Error": missing})
        verified = True if self.verified is None else self.verified
        identity: dict[str, Any] = {
            "IdentityType": "EMAIL_ADDRESS" if "@" in name else "DOMAIN",
            "VerifiedForSendingStatus": verified,
            "VerificationStatus": "SUCCESS" if verified else "PENDING",
            # DKIM never started (an identity made without Easy DKIM): no tokens yet
            "DkimAttributes": {
                "SigningEnabled": self.dkim != "NOT_STARTED",
                "Status": self.dkim,
                "Tokens": [] if self.dkim == "NOT_STARTED" else ["tok1", "tok2", "tok3"],
            },
        }
        if self.configuration_set:
            identity["ConfigurationSetName"] = self.configuration_set
        if self.mail_from:
            identity["MailFromAttributes"] = {
                "MailFromDomain": f"bounces.{name}",
                "MailFromDomainStatus": self.mail_from,
                "BehaviorOnMxFailure": self.mail_from_behavior,
            }
        return _reply(200, identity)


@dataclass
class LocalSes:
    """SES v2 `SendEmail` (raw) as the forwarder uses it, with SES's own acceptance rules."""

    account: str = ACCOUNT
    region: str = REGION
    outbox: list[SentMail] = field(default_factory=list)
    refuse: dict[str, SesRefusal] = field(default_factory=dict)
    refuse_calls: dict[int, SesRefusal] = field(default_factory=dict)
    calls: int = 0
    suppression: SuppressionList = field(default_factory=SuppressionList)
    answers: SesV2Answers = field(default_factory=SesV2Answers)

    def __post_init__(self) -> None:
        self.answers.account, self.answers.region = self.account, self.region
        self.answers.sent_count = lambda: len(self.outbox)

    @property
    def sandbox(self) -> bool:
        """The region is in the SES sandbox (GetAccount says so)."""
        return not self.answers.production

    @sandbox.setter
    def sandbox(self, value: bool) -> None:
        self.answers.production = not value

    def accept(self, params: Mapping[str, Any]) -> SentMail:
        """Check a `SendEmail` request like SES does; record and return it, or raise `SesRefusal`.

        `refuse` (by recipient) and `refuse_calls` (by call number, from 1) inject refusals for tests.
        """
        self.calls += 1
        if self.calls in self.refuse_calls:
            raise self.refuse_calls[self.calls]
        raw = params["Content"]["Raw"]["Data"]
        raw = raw.encode() if isinstance(raw, str) else bytes(raw)
        sender = params.get("FromEmailAddress") or ""
        recipients = tuple(params.get("Destination", {}).get("ToAddresses", ()))
        for recipient in recipients:
            if recipient.lower() in self.refuse:
                raise self.refuse[recipient.lower()]
        if not self._verified(sender):
            raise SesRefusal("MessageRejected", f"Email address is not verified: {sender} in {self.region}")
        if not 0 < len(recipients) <= 50:
            raise SesRefusal("BadRequestException", f"{len(recipients)} recipients: SES accepts 1 to 50")
        if len(raw) > SES_V2_RAW_LIMIT:
            raise SesRefusal("MessageRejected", "Message length is more than 40 MB")
        if has_long_line(raw):
            raise SesRefusal("MessageRejected", "Message contains a line longer than 1,000 characters")
        names = [f.key for f in split_message(raw).fields]
        repeated = sorted({n for n in names if n in h.SINGLE_INSTANCE and names.count(n) > 1})
        if repeated:
            raise SesRefusal("MessageRejected", f"Duplicate header '{repeated[0]}'")
        tags = {str(t.get("Name")): str(t.get("Value")) for t in params.get("EmailTags") or ()}
        sent = SentMail(f"local-{uuid.uuid4().hex}", sender, recipients, raw, params.get("ConfigurationSetName"), tags)
        self.outbox.append(sent)
        return sent

    def _verified(self, sender: str) -> bool:
        return _moto_verified(self.account, self.region, sender)

    # botocore event handlers -------------------------------------------------------------------

    def _answer(self, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        try:
            sent = self.accept(context["local_ses_params"])
        except SesRefusal as refusal:
            return _reply(400, {"Error": {"Code": refusal.code, "Message": str(refusal)}})
        return _reply(200, {"MessageId": sent.message_id})

    def install(self, events: Any) -> None:
        self.suppression.install(events)
        events.register("provide-client-params.sesv2.SendEmail", _remember_params)
        events.register("before-call.sesv2.SendEmail", self._answer)
        self.answers.install(events)


@dataclass(frozen=True, slots=True)
class LocalContext:
    """Enough of a Lambda context for Powertools."""

    function_name: str = FUNCTION
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def message_id_for(raw: bytes) -> str:
    """A stable SES-like message id for a local mail (the same bytes give the same id)."""
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:32]


def build_event(
    raw: bytes,
    recipients: Sequence[str],
    *,
    message_id: str | None = None,
    spam: str = "PASS",
    virus: str = "PASS",
    spf: str = "PASS",
    dkim: str = "PASS",
    dmarc: str = "PASS",
    dmarc_policy: str | None = None,
    region: str = REGION,
    account: str = ACCOUNT,
    function: str = FUNCTION,
    timestamp: datetime | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The event an SES receipt rule's Lambda action sends for `raw` delivered to `recipients`.

    `source` is the envelope sender (SMTP MAIL FROM); by default the first From address.
    """
    message = split_message(raw)
    when = (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    first = {f.key: f.value for f in reversed(message.fields)}
    senders = [address for _, address in parse_addresses(first.get("from", ""))]
    source = source or (senders[0] if senders else "unknown@localhost")

    def addresses(key: str) -> list[str] | None:
        return [f.value for f in message.all(key)] or None

    common: dict[str, Any] = {"from": [f.value for f in message.all("from")] or [source]}
    for key, name in (("to", "to"), ("cc", "cc"), ("reply-to", "replyTo")):
        if (values := addresses(key)) is not None:
            common[name] = values
    if "return-path" in first:
        # SES writes the address alone here (the header keeps its angle brackets); a bounce's <> is ""
        common["returnPath"] = first["return-path"].strip().removeprefix("<").removesuffix(">").strip()
    for key, name in (
        ("message-id", "messageId"),
        ("date", "date"),
        ("subject", "subject"),
    ):
        if key in first:
            common[name] = first[key]
    receipt: dict[str, Any] = {
        "timestamp": when,
        "processingTimeMillis": 412,
        "recipients": list(recipients),
        "spamVerdict": {"status": spam},
        "virusVerdict": {"status": virus},
        "spfVerdict": {"status": spf},
        "dkimVerdict": {"status": dkim},
        "dmarcVerdict": {"status": dmarc},
        "action": {
            "type": "Lambda",
            "functionArn": f"arn:aws:lambda:{region}:{account}:function:{function}",
            "invocationType": "Event",
        },
    }
    if dmarc_policy:
        receipt["dmarcPolicy"] = dmarc_policy
    mail = {
        "timestamp": when,
        "source": source,
        "messageId": message_id or message_id_for(raw),
        "destination": list(recipients),
        "headersTruncated": False,
        "headers": [{"name": f.name, "value": f.value} for f in message.fields],
        "commonHeaders": common,
    }
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {"mail": mail, "receipt": receipt}}]}


@dataclass
class EmbeddedAws:
    """An environment in in-process moto: the bucket, the verified domain, the alias parameters."""

    domain: str
    ses: LocalSes
    alias_path: str
    bucket: str = BUCKET
    prefix: str = PREFIX

    def clients(self) -> dict[str, Any]:
        import boto3

        return {
            name: boto3.client(name, region_name=self.ses.region) for name in ("s3", "ssm", "ses", "dynamodb", "sqs")
        }

    def store_mail(self, raw: bytes, message_id: str) -> str:
        """Put a received mail where the receipt rule's S3 action would; returns its key."""
        import boto3

        key = f"{self.prefix}{message_id}"
        boto3.client("s3", region_name=self.ses.region).put_object(Bucket=self.bucket, Key=key, Body=raw)
        return key

    def set_aliases(self, aliases: Mapping[str, Sequence[str]]) -> None:
        """Write each alias as an SSM `StringList` parameter under the alias path."""
        import boto3

        ssm = boto3.client("ssm", region_name=self.ses.region)
        for name, members in aliases.items():
            ssm.put_parameter(
                Name=f"{self.alias_path}/{name}", Value=",".join(members), Type="StringList", Overwrite=True
            )

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """Run the real Lambda handler on `event`."""
        from forwarder.app import lambda_handler

        result: dict[str, Any] = lambda_handler(event, LocalContext())
        return result

    def deliver(self, raw: bytes, recipients: Sequence[str], **verdicts: Any) -> tuple[dict[str, Any], list[SentMail]]:
        """Store `raw`, invoke the handler as SES would, and return its result and the new sends."""
        message_id = verdicts.pop("message_id", None) or message_id_for(raw)
        return self.deliver_event(raw, build_event(raw, recipients, message_id=message_id, **verdicts))

    def deliver_event(self, raw: bytes, event: dict[str, Any]) -> tuple[dict[str, Any], list[SentMail]]:
        """Store `raw` under `event`'s message id, invoke the handler on `event`; its result and the new sends."""
        self.store_mail(raw, first_inbound(event).message_id)
        before = len(self.ses.outbox)
        result = self.invoke(event)
        return result, self.ses.outbox[before:]


@contextmanager
def embedded_aws(
    domain: str,
    aliases: Mapping[str, Sequence[str]] | None = None,
    *,
    alias_path: str = "/email-forwarder/local/aliases",
    idempotency: bool = True,
    trace: bool = False,
    settings: Mapping[str, str] | None = None,
    reply_mode: str = "direct",
) -> Iterator[EmbeddedAws]:
    """Start moto, create the environment for `domain`, point the forwarder at it; undo on exit.

    `reply_mode="team"` (as the template deploys; `forwarder run` and `forwarder smtp` use it) also creates
    the reply table and the signing secret; the default `direct` is the code's default.
    """
    import boto3
    from moto import mock_aws

    from forwarder import wiring

    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "SesForwarder",
        "FORWARDER_DOMAIN": domain,
        "FORWARDER_BUCKET": BUCKET,
        "FORWARDER_PREFIX": PREFIX,
        "FORWARDER_ALIAS_PATH": alias_path,
        "FORWARDER_ALIAS_CACHE_SECONDS": "0",
        **({"FORWARDER_IDEMPOTENCY_TABLE": TABLE} if idempotency else {}),
        **({"FORWARDER_TRACE_TABLE": TRACE_TABLE} if trace else {}),
        "FORWARDER_REPLY_MODE": reply_mode,
        **(
            {"FORWARDER_REPLY_TABLE": REPLY_TABLE, "FORWARDER_LINK_SECRET": LINK_SECRET} if reply_mode == "team" else {}
        ),
        **(settings or {}),
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    ses = LocalSes()
    try:
        with mock_aws():
            boto3.setup_default_session(region_name=REGION)
            ses.install(boto3.DEFAULT_SESSION.events)  # type: ignore[union-attr]
            wiring.reset()
            env = EmbeddedAws(domain=domain, ses=ses, alias_path=alias_path)
            _create_resources(env, idempotency, team=reply_mode == "team")
            if trace:
                create_trace_table(boto3.client("dynamodb", region_name=REGION), TRACE_TABLE)
            env.set_aliases(aliases or {})
            yield env
    finally:
        boto3.DEFAULT_SESSION = None
        wiring.reset()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _create_resources(env: EmbeddedAws, idempotency: bool, team: bool = False) -> None:
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=env.bucket)
    boto3.client("ses", region_name=REGION).verify_domain_identity(Domain=env.domain)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for table in ([TABLE] if idempotency else []) + ([REPLY_TABLE] if team else []):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    if team:
        dynamodb.update_time_to_live(
            TableName=REPLY_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
        )
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(Name=LINK_SECRET, SecretString=LOCAL_SIGNING_KEY)


def create_trace_table(client: Any, name: str) -> None:
    """The trace table as template.yaml declares it: keys pk/sk, the `lookup` and `by-day` indexes."""
    indexes = [("lookup", "lookup"), ("by-day", "day")]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in ("pk", "sk", "lookup", "day", "received")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": key, "KeyType": "HASH"},
                    {"AttributeName": "received", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, key in indexes
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def write_outbox(sent: Sequence[SentMail], directory: Path, start: int = 1) -> list[Path]:
    """Write each forwarded message to `directory` as `<n>-<alias>-<id>.eml`; returns the paths."""
    if sent:
        directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, mail in enumerate(sent, start=start):
        alias = mail.from_address.partition("@")[0]
        path = directory / f"{number:02d}-{alias}-{mail.message_id[-8:]}.eml"
        path.write_bytes(mail.raw)
        paths.append(path)
    return paths
