"""The forwarding service: one received message in, its forwards out. Adapters are injected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from forwarder.config import Settings
from forwarder.mail.message import SplitMessage, shorten_if_long
from forwarder.mail.policy import INTERRUPTED, Decision, DropReason, decide
from forwarder.mail.rewrite import RewriteOptions, is_own_output, rewrite_headers
from forwarder.mail.routing import Delivery, Routing, batch, combine, resolve_routes, without
from forwarder.observability import logger
from forwarder.ports import (
    MAX_RECIPIENTS,
    NOTICE_TAG,
    AliasDirectory,
    Always,
    ClaimInProgressError,
    Inbound,
    MailStore,
    MessageRejectedError,
    NoPending,
    NoTrace,
    Once,
    Outcome,
    Parking,
    Pending,
    RecipientNotVerifiedError,
    Sender,
    SenderNotReadyError,
    SendError,
    TraceLog,
    send_result,
    split_stored,
)

if TYPE_CHECKING:
    from forwarder.relay import ReplyRelay

# Where `_forward` puts the trace record of what it did: the trace table, or the collector of a reply's parts.
Record = Callable[[Inbound, Outcome, Routing | None, Decision | None], None]


class ForwardingService:
    """Policy, routing, header rewrite and sending for one environment."""

    def __init__(
        self,
        settings: Settings,
        store: MailStore,
        directory: AliasDirectory,
        sender: Sender,
        once: Once | None = None,
        notice: Callable[..., bytes] | None = None,
        links: Callable[[str], str] | None = None,
        parking: Parking | None = None,
        trace: TraceLog | None = None,
        relay: ReplyRelay | None = None,
        pending: Pending | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.sender = sender
        self.once: Once = once or Always()
        self._notice = notice
        self._links = links
        self._parking = parking
        self.trace: TraceLog = trace or NoTrace()
        self._relay = relay
        self._pending: Pending = pending if pending is not None else NoPending()
        self._intended = False  # this mail's trace intent was queued
        self._warned: set[tuple[str, str]] = set()

    def register_context(self, context: Any) -> None:
        """Lets idempotency expire an in-progress record when this invocation times out."""
        self.once.register_context(context)

    def forward(self, inbound: Inbound, mark: str | None = None) -> Outcome:
        """Forward one received message to the members of its aliases.

        Each batch send is claimed under (message id, alias, recipients): a retried, duplicated or
        replayed event sends nothing twice and completes what an earlier attempt left unsent. One
        claim per batch, not also one per message. Mail to a reply address goes to the relay (team mode),
        which calls back `_forward`, with `mark` as a subject tag, for what it does not relay.

        The writes the adapters queued to ride with the sends' claims (`pending`) that no claim took are
        written at the end. If forwarding raises, they are dropped: another invocation holds the mail
        (`ClaimInProgressError`), or Lambda's retry queues them again; in the second case the completions
        left to SES's Send events are written first, and the trace says the attempt failed (its intent,
        written with a claim, would otherwise say the members were sent the mail).
        """
        self._intended = False
        try:
            outcome = self._handle(inbound, mark)
        except BaseException as error:
            self._settle()  # an earlier batch of this run may have gone out
            self._pending.discard()
            # Held by another invocation: the trace is that run's to write.
            if self._intended and not isinstance(error, ClaimInProgressError):
                reason = f"{INTERRUPTED}{type(error).__name__}"
                failed = Outcome(message_id=inbound.message_id, forwarded=False, reason=reason)
                self._record(inbound, failed)
                self._flush()
            raise
        self._flush()
        return outcome

    def _handle(self, inbound: Inbound, mark: str | None) -> Outcome:
        decision = decide(inbound.verdicts, self.settings.spam_action)
        if not decision.forward:
            return self._dropped(inbound, decision.reason)
        if self._relay is not None and mark is None and self._relay.addressed(inbound.recipients):
            return self._reply(self._relay, inbound, decision)
        return self._forward(inbound, decision, mark, self._record)

    def _reply(self, relay: ReplyRelay, inbound: Inbound, decision: Decision) -> Outcome:
        """Mail to a reply address: the relay relays, drops or hands back (to `_forward`) each part. The trace
        gets one record for the whole mail, with everyone it went to: a second record would replace the first."""
        routings: list[Routing] = []

        def collect(part: Inbound, outcome: Outcome, routing: Routing | None, _: Decision | None) -> None:
            if routing is not None:
                routings.append(routing)

        def forward(part: Inbound, mark: str | None) -> Outcome:
            # Whom the relayed copies and the parts forwarded before reached: a member of several aliases, once.
            reached = {member.lower() for r in routings for d in r.deliveries for member in d.members}
            return self._forward(part, decision, mark, collect, reached)

        outcome = relay.handle(inbound, decision, forward, routings.append)
        self._record(inbound, outcome, combine(routings) if routings else None, decision)
        return outcome

    def _forward(
        self, inbound: Inbound, decision: Decision, mark: str | None, record: Record, reached: set[str] | None = None
    ) -> Outcome:
        routing = self._route(inbound)
        if reached and routing.deliveries:
            routing = without(routing, reached)
            if not routing.deliveries:  # every member of these aliases got this mail from another part of it
                outcome = Outcome(message_id=inbound.message_id, forwarded=False)
                record(inbound, outcome, routing, decision)
                return outcome
        if not routing.deliveries:
            reason = DropReason.NO_MEMBERS if routing.skipped else DropReason.UNKNOWN_RECIPIENT
            return self._dropped(inbound, reason, routing, record)
        message = split_stored(self.store.read(inbound.message_id))
        if is_own_output(message, self.settings.domain):
            return self._dropped(inbound, DropReason.LOOP, routing, record)
        if message.dropped_lines:
            logger.info("header block lines that are no fields dropped", extra={"lines": message.dropped_lines})
        unsendable = None
        message, body_report = shorten_if_long(message)
        if body_report is not None:
            if body_report.changed or body_report.unfixable:
                logger.warning(
                    "re-encoded body parts with lines over 998 octets",
                    extra={
                        "parts": body_report.reencoded,
                        "repaired": body_report.repaired,
                        "unfixable": body_report.unfixable,
                    },
                )
            if body_report.unfixable:
                # SES would refuse the message: each member gets the notice with the download link instead.
                unsendable = "; ".join(body_report.unfixable)
        return self._deliver(inbound, message, routing, decision, unsendable, mark, record)

    def park(
        self, event: dict[str, Any], inbound: Inbound, error: SenderNotReadyError, request_id: str, function_arn: str
    ) -> Outcome:
        """Put an event that cannot succeed until an operator acts straight into the failure queue, instead
        of letting Lambda retry it twice in vain; `forwarder redrive` replays it after the fix. Without a
        failure queue configured the error propagates, and Lambda's retries end in the same queue."""
        if self._parking is None:
            raise error
        parked = self._parking.park(event, error, request_id, function_arn)
        logger.error(
            "parked in the failure queue: SES cannot send until this is fixed, then run `forwarder redrive`",
            extra={"code": error.code, "fix": str(error), "sqs_message_id": parked},
        )
        outcome = Outcome(message_id=inbound.message_id, forwarded=False, reason="parked")
        self._record(inbound, outcome)
        self._flush()
        return outcome

    def _route(self, inbound: Inbound) -> Routing:
        aliases = self.directory.aliases()
        if not aliases:
            logger.error("no alias lists found", extra={"alias_path": self.settings.alias_path})
        routing = resolve_routes(inbound.recipients, aliases, self.settings.domain, self.settings.catch_all_alias)
        for skipped in routing.skipped:
            if (skipped.alias, skipped.member) not in self._warned:
                self._warned.add((skipped.alias, skipped.member))
                logger.warning(
                    "alias member skipped",
                    extra={"alias": skipped.alias, "member": skipped.member, "reason": skipped.reason},
                )
        if routing.foreign:
            logger.warning("recipients outside the forwarding domain ignored", extra={"count": len(routing.foreign)})
        return routing

    def _deliver(
        self,
        inbound: Inbound,
        message: SplitMessage,
        routing: Routing,
        decision: Decision,
        unsendable: str | None,
        mark: str | None,
        record: Record,
    ) -> Outcome:
        options = RewriteOptions(
            domain=self.settings.domain,
            subject_prefix=self.settings.subject_prefix,
            spam_tag=self.settings.spam_tag if decision.tag_spam else None,
            mark=mark,
        )
        # Every head and notice first, while `message.raw` is as received; then each head is written
        # into that buffer in place of the previous one (and of the store's free room before the first),
        # ending where the body starts: a head no longer than what it replaces never grows the buffer,
        # so the body is never copied.
        body_length = len(message.raw) - message.body_start
        payloads: list[tuple[Delivery, bytes, bool]] = []
        replies: list[str | None] = []
        header_changes: dict[str, Any] = {}
        for delivery in routing.deliveries:
            team = self._relay.reply_address(delivery.alias, message, inbound.envelope_sender) if self._relay else None
            reply = team.address if team and team.reply_to else None
            replies.append(reply)
            masked, masked_as = (team.masked, team.address) if team else ((), None)
            rewritten = rewrite_headers(
                message, delivery.alias, options, inbound.envelope_sender, reply, masked, masked_as
            )
            if not payloads:
                header_changes = {name: _loggable(value) for name, value in asdict(rewritten.report).items() if value}
            size = len(rewritten.head) + body_length
            if size > self.settings.max_message_bytes or unsendable:
                notice = self._oversize_notice(inbound, message, delivery, size, reply, unsendable)
                payloads.append((delivery, notice, True))
            else:
                payloads.append((delivery, rewritten.head, False))
        if record == self._record:
            # What the trace will say if every send succeeds, written with the first send's claim when the
            # adapters queue their writes; after the sends, `record` only writes what differs.
            intent = Outcome(
                message_id=inbound.message_id,
                forwarded=True,
                recipients=routing.member_count,
                aliases=tuple(d.alias for d in routing.deliveries),
                oversize=any(is_notice for _, _, is_notice in payloads),
            )
            self._trace_safely(self.trace.intend, inbound, intent, routing, decision)
            self._intended = True
        buffer = message.raw if isinstance(message.raw, bytearray) else bytearray(message.raw)
        head_length = message.body_start
        sent: list[str] = []
        failed: list[str] = []
        noticed: list[str] = []  # aliases whose members got a notice because SES refused their forward
        for (delivery, payload, is_notice), reply in zip(payloads, replies, strict=True):
            if not is_notice:
                buffer[:head_length] = payload
                head_length = len(payload)
            instead = None if is_notice else self._refusal_notice(inbound, delivery, reply)
            for members in batch(delivery.members, MAX_RECIPIENTS):
                raw = payload if is_notice else buffer
                ids, rejected = self._send(inbound.message_id, delivery, members, raw, instead, noticed)
                sent.extend(ids)
                failed.extend(rejected)
        oversize = any(is_notice for _, _, is_notice in payloads) or bool(noticed)
        delivered = routing.member_count - len(failed)
        outcome = Outcome(
            message_id=inbound.message_id,
            forwarded=delivered > 0,
            reason=None if delivered else "rejected-by-ses",
            recipients=delivered,
            aliases=tuple(d.alias for d in routing.deliveries),
            sent=tuple(sent),
            failed=tuple(failed),
            oversize=oversize,
        )
        # One log line per mail: the outcome, and the header fields changed beyond From/Reply-To (names only).
        extra: dict[str, Any] = {"outcome": outcome.as_dict()}
        if header_changes:
            extra["header_changes"] = header_changes
        logger.info("forwarded" if outcome.forwarded else "not forwarded", extra=extra)
        record(inbound, outcome, routing, decision)
        return outcome

    def _send(
        self,
        message_id: str,
        delivery: Delivery,
        members: tuple[str, ...],
        raw: bytes | bytearray,
        instead: Callable[[MessageRejectedError], bytes | None] | None = None,
        noticed: list[str] | None = None,
        notice: bool = False,
    ) -> tuple[list[str], list[str]]:
        """Send one batch once; SES refusals of this message or member are logged, not raised (a refusal
        of the whole environment, `SenderNotReadyError`, propagates: the handler parks the event). When SES
        refuses the message itself, `instead` may give a notice to send to the same members in its place;
        the alias is added to `noticed` once SES took that notice (`notice`: `raw` is that notice), in this
        run or, as the batch's claim tells, in an earlier one."""
        from_address = f"{delivery.alias}@{self.settings.domain}"
        key = {"message_id": message_id, "alias": delivery.alias, "recipients": list(members)}
        marked = {NOTICE_TAG: "true"} if notice else {}
        try:
            tags = {"inbound": message_id, "alias": delivery.alias, **self.once.tags(key), **marked}
            result = self.once(key, lambda: send_result(self.sender.send(raw, from_address, members, tags), notice))
        except SenderNotReadyError:
            raise
        except RecipientNotVerifiedError as error:
            if len(members) > 1:
                # One unverified address fails its whole batch in the sandbox: send one by one instead.
                results = [
                    self._send(message_id, delivery, (member,), raw, instead, noticed, notice) for member in members
                ]
                return [i for ids, _ in results for i in ids], [m for _, rejected in results for m in rejected]
            logger.error(
                "recipient not verified in the SES sandbox",
                extra={"alias": delivery.alias, "member": members[0], "fix": str(error)},
            )
            return [], list(members)
        except SendError as error:
            logger.error(
                "SES rejected the message",
                extra={
                    "alias": delivery.alias,
                    "recipients": len(members),
                    "code": error.code,
                    "detail": str(error),
                },
            )
            replacement = instead(error) if instead is not None and isinstance(error, MessageRejectedError) else None
            if replacement is not None:
                # Same members, same claim (the refused send released it): a retry finds the notice sent.
                return self._send(message_id, delivery, members, replacement, noticed=noticed, notice=True)
            return [], list(members)
        if result.get("notice") and noticed is not None and delivery.alias not in noticed:
            noticed.append(delivery.alias)  # not before: SES may refuse the notice too
        return [str(result["ses_id"])], []

    def _refusal_notice(
        self, inbound: Inbound, delivery: Delivery, reply: str | None
    ) -> Callable[[MessageRejectedError], bytes | None] | None:
        """What `_send` sends when SES refuses a forward itself (e.g. an attachment type SES does not send): the
        notice with the download link, built from the stored mail read again (the buffer holds the rewritten
        heads by now). None without a notice builder."""
        if self._notice is None or self._links is None:
            return None
        built: list[bytes] = []  # one notice per alias, whatever the number of its refused batches

        def build(error: MessageRejectedError) -> bytes:
            if not built:
                message = split_stored(self.store.read(inbound.message_id))
                built.append(self._oversize_notice(inbound, message, delivery, len(message.raw), reply, refused=error))
            return built[0]

        return build

    def _oversize_notice(
        self,
        inbound: Inbound,
        message: SplitMessage,
        delivery: Delivery,
        size: int,
        reply: str | None = None,
        unsendable: str | None = None,
        refused: MessageRejectedError | None = None,
    ) -> bytes:
        """The notice with the download link sent in place of a forward: too large, `unsendable` (lines SES would
        refuse), or `refused` by SES."""
        if self._notice is None or self._links is None:
            raise RuntimeError("oversize mail needs a notice builder and a link maker")
        link = self._links(inbound.message_id)
        if refused is not None:
            logger.warning(
                "SES refused the forward; sending a notice with a download link",
                extra={"alias": delivery.alias, "code": refused.code},  # SES's words are logged once, by _send
            )
        elif unsendable:
            logger.warning(
                "message has lines over 998 octets that cannot be shortened (SES would refuse it); "
                "sending a notice with a download link",
                extra={"cause": unsendable, "alias": delivery.alias},
            )
        else:
            logger.warning(
                "message too large to forward; sending a notice with a download link",
                extra={"size": size, "limit": self.settings.max_message_bytes, "alias": delivery.alias},
            )
        return self._notice(
            unsendable=bool(unsendable),
            refused=str(refused) if refused is not None else None,
            message=message,
            alias=delivery.alias,
            domain=self.settings.domain,
            size=size,
            link=link,
            link_days=self.settings.link_expiry_days,
            envelope_sender=inbound.envelope_sender,
            reply_address=reply,
        )

    def _dropped(
        self,
        inbound: Inbound,
        reason: DropReason | None,
        routing: Routing | None = None,
        record: Record | None = None,
    ) -> Outcome:
        outcome = Outcome(message_id=inbound.message_id, forwarded=False, reason=str(reason))
        logger.info("not forwarded", extra={"outcome": outcome.as_dict()})
        (record or self._record)(inbound, outcome, routing, None)
        return outcome

    def _record(
        self, inbound: Inbound, outcome: Outcome, routing: Routing | None = None, decision: Decision | None = None
    ) -> None:
        """The trace is for operators: a failed write is logged, never raised (the mail matters more)."""
        self._trace_safely(self.trace.record, inbound, outcome, routing, decision)

    @staticmethod
    def _trace_safely(
        write: Record, inbound: Inbound, outcome: Outcome, routing: Routing | None, decision: Decision | None
    ) -> None:
        try:
            write(inbound, outcome, routing, decision)
        except Exception as error:
            _log_failure("trace not recorded", error)

    def _flush(self) -> None:
        """Queued writes (the trace, reply addresses) matter less than the mail: a failure is logged."""
        try:
            self._pending.flush()
        except Exception as error:
            _log_failure("queued writes not written", error)

    def _settle(self) -> None:
        try:
            self.once.settle()
        except Exception as error:
            _log_failure("send completions not written", error)


def _log_failure(message: str, error: Exception) -> None:
    logger.warning(message, extra={"error": type(error).__name__, "detail": str(error)[:300]})


# The log line's header changes: a hostile mail's field names (any length, any number) are cut to these. Only the
# log is cut: the rewrite's report, which `forwarder run` shows and tests read, keeps every name whole.
_LOGGED_NAME, _LOGGED_NAMES = 64, 20


def _loggable(names: list[str]) -> list[str]:
    """Field names for the log: each shortened to `_LOGGED_NAME` characters, at most `_LOGGED_NAMES` of them."""
    shown = [name if len(name) <= _LOGGED_NAME else name[: _LOGGED_NAME - 3] + "..." for name in names[:_LOGGED_NAMES]]
    return shown + ([f"... {len(names) - _LOGGED_NAMES} more"] if len(names) > _LOGGED_NAMES else [])
