"""Replies as the team: mail to a reply address goes on to the outside sender it stands for, from the alias.

The service hands over every message addressed to a reply address (`<alias>+r-<id>-<mac>@domain`, see
forwarder/mail/replyaddr.py). A reply is relayed out only when all of these hold:
1. the token is ours for this alias (HMAC with the current or previous key; the forwarder keeps the previous
   key as long as a record signed with it may live, `keyring.reply_grace_seconds`), else `reply-bad-token`;
2. its record exists and has not expired (the TTL deletes items lazily, so `expires` is checked here),
   else `reply-expired`: forwarded to the members as ordinary inbound mail with the `[not relayed: reply
   address expired]` subject tag (an automatic one is dropped), so that the member who answered learns it
   did not go out instead of believing it sent;
3. it is not automatic (vacation notice, auto-reply, list mail, a report, or anything sent with the null envelope
   sender of notifications), else `reply-automatic`;
4. its author (From address or envelope sender) is a current member of the alias, else it is forwarded to
   the members as ordinary inbound mail with the `[not relayed]` subject tag (`reply-not-member`);
5. SES's verdicts vouch for that member address (`forwarder.mail.reply.is_authentic`), else `reply-forged`;
   a reply SES judged spam is not relayed either, but tagged and forwarded to the members (`reply-spam`);
6. it can go out without the member's signature (an S/MIME certificate names the member's address): a
   `multipart/signed` reply goes out as its signed content alone; opaque S/MIME (or a signature part that cannot
   be taken off) is forwarded to the members tagged (`reply-signed`).
Refused mail is never sent to the outside address. A relayed reply goes to exactly the outside people of the
record, the sender in To and the others in Cc (never to anyone the member named), and a copy goes to every other
member of the alias. When SES refuses some of the others (not the sender), the reply still goes to everyone else:
the refused ones are `failed` in the outcome and the trace, and the team's copy, then also sent to its author,
names them as not reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from forwarder.config import Settings
from forwarder.mail.addresses import Sender as Person
from forwarder.mail.addresses import display_name, format_address
from forwarder.mail.message import SplitMessage, shorten_if_long
from forwarder.mail.participants import outside_people, relayed
from forwarder.mail.policy import NOT_MEMBER, REFUSED, RELAYED, SIGNED, SPAM, UNSENDABLE, Decision, DropReason
from forwarder.mail.reply import (
    PASS,
    Author,
    author_of,
    build_reply_head,
    has_null_sender,
    hidden_domains,
    is_authentic,
    is_automatic,
    member_display_name,
    reply_target,
)
from forwarder.mail.replyaddr import (
    ReplyToken,
    fits,
    format_reply_address,
    parse_reply_address,
    reply_id,
    verify_token,
)
from forwarder.mail.rewrite import is_own_output
from forwarder.mail.routing import Delivery, Routing, alias_of, batch, is_valid_address, resolve_routes
from forwarder.mail.signed import without_signature
from forwarder.observability import logger
from forwarder.ports import (
    MAX_RECIPIENTS,
    OUTSIDE_TAG,
    AliasDirectory,
    Inbound,
    MailStore,
    Once,
    Outcome,
    ReplyAddress,
    ReplyRecord,
    ReplyStore,
    ReplyStoreError,
    Result,
    Sender,
    SenderNotReadyError,
    SendError,
    split_stored,
)

if TYPE_CHECKING:
    from forwarder.keyring import KeyRing

Forward = Callable[[Inbound, str | None], Outcome]

# Appended to the name of an outside address SES refused, in the team's copy's Cc.
_NOT_REACHED = " (not reached: SES refused it)"


@dataclass(frozen=True, slots=True)
class Check:
    """What to do with one reply address recipient: relay (with the record and the member), forward to the
    members marked (`reason` NOT_MEMBER, SPAM, or REPLY_EXPIRED unless automatic), or drop (`reason` a
    DropReason)."""

    reason: str | None
    record: ReplyRecord | None = None
    member: str | None = None

    @property
    def relay(self) -> bool:
        return self.reason is None


class ReplyRelay:
    """Reply addresses for forwards (team mode), and the relay of the answers that come back to them."""

    def __init__(
        self,
        settings: Settings,
        keys: Callable[[], KeyRing],
        replies: ReplyStore,
        directory: AliasDirectory,
        store: MailStore,
        sender: Sender,
        once: Once,
        clock: Callable[[], float] = time.time,
        renewed_keys: Callable[[], KeyRing | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self._keys = keys
        # The ring read anew for a token no cached key signed (None when read too recently): another container
        # signs with a rotated key at once, while this one's cached ring lags up to its refresh time.
        self._renewed_keys = renewed_keys
        self._replies = replies
        self._directory = directory
        self._store = store
        self._sender = sender
        self._once = once
        self._clock = clock

    # forwards: the reply address members see ------------------------------------------------------------

    def reply_address(self, alias: str, message: SplitMessage, envelope_sender: str | None) -> ReplyAddress | None:
        """The reply address of (alias, the sender of `message` and the other outside people it wrote to), its
        record saved or renewed; None when there is none: no usable address, an alias too long for the address,
        or replies go straight to a member or our own domain and nobody outside is in To or Cc. One conversation,
        one address: the same sender with other people in To or Cc gets another.

        When replies go straight to whom the mail names (a member writing to their alias, a Reply-To of the alias
        itself: answering as the team would make no sense, or loop), the outside people in To and Cc still get a
        reply address (`reply_to` False): the members' copy writes them as it in To and Cc only, so that a
        member's Reply all reaches them through the relay, not from the member's own mailbox."""
        domain, members = self.settings.domain, self._members(alias)
        target = reply_target(message, envelope_sender, domain, members)
        if not target or not is_valid_address(target) or not fits(alias):
            return None
        people = outside_people(message, target, domain, members)
        if target.rpartition("@")[2].lower() == domain or target.lower() in members:
            answered = relayed(people)
            if not answered:
                return None
            return self._saved(alias, answered[0], answered[1:], frozenset(people), reply_to=False)
        return self._saved(alias, target, relayed(people), frozenset((target.lower(), *people)))

    def _saved(
        self, alias: str, target: str, also: tuple[str, ...], masked: frozenset[str], reply_to: bool = True
    ) -> ReplyAddress | None:
        """The reply address of `target` and `also` (the others), its record saved; None when it cannot be."""
        key = self._keys().current
        # The sender alone keeps the id it always had; with others, the id names them all.
        rid = reply_id(key, alias, ",".join((target, *sorted(also))))
        now = int(self._clock())
        expires = now + self.settings.reply_expiry_days * 86_400
        try:
            self._replies.save(ReplyRecord(rid, alias, target, now, expires, also))
        except ReplyStoreError as error:
            # The forward matters more than the reply address: this mail names the sender and its people as written.
            logger.error(
                "reply address not saved: Reply-To names the sender", extra={"alias": alias, "error": str(error)}
            )
            return None
        return ReplyAddress(format_reply_address(key, alias, rid, self.settings.domain), masked, reply_to)

    # replies: mail that comes back to a reply address --------------------------------------------------------

    def addressed(self, recipients: Sequence[str]) -> bool:
        """Whether any recipient has the form of a reply address (verified later, in `handle`)."""
        return any(parse_reply_address(r, self.settings.domain) for r in recipients)

    def handle(
        self, inbound: Inbound, decision: Decision, forward: Forward, routed: Callable[[Routing], None] | None = None
    ) -> Outcome:
        """Relay, forward marked or drop each reply address recipient; other recipients are forwarded as usual
        through `forward` (except the plain address of an alias the reply was relayed for: the copies
        already reach its members). `routed` is told whom each relayed reply went to (for the trace): the
        outside sender first, then the members who got a copy."""
        domain = self.settings.domain
        tokens: dict[tuple[str, str], tuple[str, ReplyToken]] = {}
        others: list[str] = []
        for recipient in inbound.recipients:
            token = parse_reply_address(recipient, domain)
            if token is None:
                others.append(recipient)
            else:
                tokens.setdefault((token.alias, token.reply_id), (recipient, token))
        message = split_stored(self._store.read(inbound.message_id))
        if is_own_output(message, domain):
            return self._dropped(inbound, DropReason.LOOP, reply=None)
        outcomes: list[Outcome] = []
        marked: dict[str, list[str]] = {}
        relayed: set[str] = set()
        author = author_of(message, inbound.envelope_sender)
        automatic = _automatic(message, inbound)
        sendable: tuple[SplitMessage, str | None] | None = None
        copied: set[str] = set()  # the members a team copy reached: once each, however many threads are answered
        for recipient, token in tokens.values():
            check = self._check(token, automatic, inbound, decision, author)
            if check.relay and check.record is not None and check.member is not None:
                sendable = sendable or _shortened(message)
                target = (check.record, check.member)
                result = self._relay_checked(inbound, sendable, token, check, target, author, copied)
                if isinstance(result, str):  # not relayed: forwarded to the members, marked
                    marked.setdefault(result, []).append(recipient)
                    continue
                outcome, delivery = result
                outcomes.append(outcome)
                relayed.add(token.alias)
                copied.update(member.lower() for member in delivery.members[1:])
                if routed is not None:
                    routed(Routing((delivery,), (), (), ()))
            elif (reason := _forwarded_reason(check, automatic)) is not None:
                logger.warning("reply address: not relayed, forwarded to the members", extra=self._log(token, check))
                marked.setdefault(reason, []).append(recipient)
            else:
                logger.warning("reply address: dropped", extra=self._log(token, check))
                outcomes.append(self._dropped(inbound, check.reason, reply=check.reason))
        for reason, recipients in marked.items():
            outcome = forward(replace(inbound, recipients=tuple(recipients)), self._mark(reason))
            outcomes.append(replace(outcome, reply=reason))
        rest = tuple(r for r in others if alias_of(r, domain) not in {None, *relayed})
        if rest:
            outcomes.append(forward(replace(inbound, recipients=rest), None))
        return merge_outcomes(inbound.message_id, outcomes)

    def _mark(self, reason: str) -> str:
        """The subject tag of mail to a reply address that was not relayed, forwarded to the members."""
        return self.settings.reply_expired_tag if reason == DropReason.REPLY_EXPIRED else self.settings.reply_tag

    def _check(self, token: ReplyToken, automatic: bool, inbound: Inbound, decision: Decision, author: Author) -> Check:
        record, reason = self._record(token)
        if record is None or reason is not None:
            return Check(reason, record)
        if automatic:
            return Check(DropReason.REPLY_AUTOMATIC, record)
        members = self._members(token.alias)
        from_is_member = author.from_address in members
        envelope_is_member = author.envelope_sender in members
        if not (from_is_member or envelope_is_member):
            return Check(NOT_MEMBER, record)
        if not is_authentic(inbound.verdicts, from_is_member=from_is_member, envelope_is_member=envelope_is_member):
            return Check(
                DropReason.REPLY_FORGED, record, author.from_address if from_is_member else author.envelope_sender
            )
        # The member the verdicts vouch for: the From address only when DMARC passed for it, else the envelope
        # sender (SPF): a member's server writing another member's From speaks as itself, not in their name.
        vouched = from_is_member and inbound.verdicts.dmarc == PASS
        member = author.from_address if vouched else author.envelope_sender
        return Check(SPAM if decision.tag_spam else None, record, member)

    def _record(self, token: ReplyToken) -> tuple[ReplyRecord | None, DropReason | None]:
        """The token's record when the token is ours and unexpired, else why not."""
        if not verify_token(token, self._keys().accepted):
            ring = self._renewed_keys()
            if ring is None or not verify_token(token, ring.accepted):
                return None, DropReason.REPLY_BAD_TOKEN
        record = self._replies.load(token.reply_id)
        if record is None:
            # The signature is ours, so the address was issued: its record expired and the TTL deleted it.
            return None, DropReason.REPLY_EXPIRED
        if record.alias != token.alias:
            return None, DropReason.REPLY_BAD_TOKEN
        if record.expires < self._clock():
            return record, DropReason.REPLY_EXPIRED
        return record, None

    def _relay_checked(
        self,
        inbound: Inbound,
        sendable: tuple[SplitMessage, str | None],
        token: ReplyToken,
        check: Check,
        target: tuple[ReplyRecord, str],
        author: Author,
        copied: Collection[str] = (),
    ) -> tuple[Outcome, Delivery] | str:
        """Relay a reply that passed every check; the reason to forward it marked instead when SES would refuse
        it (`UNSENDABLE`) or did (`REFUSED`). The members in `copied` got a team copy of it already."""
        shortened, unsendable = sendable
        if unsendable:
            logger.warning(
                "reply address: not relayed, SES would refuse it (lines over 998 octets that cannot be "
                "shortened); forwarded to the members",
                extra={**self._log(token, check), "reason": UNSENDABLE, "cause": unsendable},
            )
            return UNSENDABLE
        bare = without_signature(shortened)
        if bare is None:
            logger.warning(
                "reply address: not relayed, opaque S/MIME (its signature names the member and cannot be taken "
                "off); forwarded to the members",
                extra={**self._log(token, check), "reason": SIGNED},
            )
            return SIGNED
        record, member = target
        return self._relay(inbound, bare, record, member, author, copied)

    def _relay(
        self,
        inbound: Inbound,
        message: SplitMessage,
        record: ReplyRecord,
        member: str,
        author: Author,
        copied: Collection[str] = (),
    ) -> tuple[Outcome, Delivery] | str:
        """Send the reply to the outside address, then the team's copies (not to the members in `copied`); the
        reason when nothing was sent (the caller forwards it to the members, marked): `UNSENDABLE` when it is
        larger than the sends' limit, `REFUSED` when SES refused the reply to the outside sender."""
        settings = self.settings
        alias, domain = record.alias, settings.domain
        body = bytes(message.body)
        name = member_display_name(author, member, alias, settings.reply_name)
        strip = [
            tag
            for tag in (settings.subject_prefix, settings.spam_tag, settings.reply_tag, settings.reply_expired_tag)
            if tag
        ]
        reply_address = format_reply_address(self._keys().current, alias, record.reply_id, domain)
        # Every member's domain, not only the author's: another member's ids reach the author through the team's
        # copies (Alice answering her own earlier answer names it in References, Bob answering her copy names it too).
        members = (member, author.from_address, author.envelope_sender, *self._members(alias))
        hidden = hidden_domains(members, record.address)
        # Not the member who wrote, should they be one of the others (they joined the alias since).
        cc = tuple(address for address in record.others if address.lower() not in {member, record.address.lower()})
        outside = build_reply_head(
            message,
            domain=domain,
            alias=alias,
            display_name=name,
            to_address=record.address,
            cc=cc,
            strip=strip,
            hidden=hidden,
        )
        copy = self._copy_head(message, alias, name, record, reply_address, cc, strip)
        size = len(body) + max(len(outside), len(copy))
        if size > settings.max_message_bytes:
            # As on the forward path: SES refuses a larger send, or the operator's limit is the members' mailboxes'.
            logger.warning(
                "reply address: not relayed, larger than the sends' limit; forwarded to the members",
                extra={
                    "alias": alias,
                    "reply_id": record.reply_id,
                    "reason": UNSENDABLE,
                    "size": size,
                    "limit": settings.max_message_bytes,
                },
            )
            return UNSENDABLE
        outsiders = (record.address, *cc)
        sent, failed = self._send_outside(inbound.message_id, record, outside + body, outsiders)
        if record.address in failed:
            logger.warning(
                "reply not relayed: SES refused it; forwarded to the members, subject tagged",
                extra={"alias": alias, "reply_id": record.reply_id, "reason": REFUSED},
            )
            return REFUSED
        # Nor to the outside people, if they joined the alias since: they got the reply itself.
        authors = {member, *(address.lower() for address in outsiders)}
        team = [m for m in self._routed_members(alias) if m.lower() not in authors and m.lower() not in copied]
        if failed:
            # Some of the others were refused: the copy says who was not reached, and its author gets it too, who
            # would otherwise believe everyone in the answer's Cc got it.
            logger.warning(
                "reply relayed, but SES refused some of the others in Cc: they are left out, the team's copy "
                "names them",
                extra={"alias": alias, "reply_id": record.reply_id, "refused": len(failed)},
            )
            copy = self._copy_head(message, alias, name, record, reply_address, cc, strip, refused=failed)
            team += [m for m in self._routed_members(alias) if m.lower() == member and m.lower() not in copied]
        for members in batch(tuple(team), MAX_RECIPIENTS):
            key = {"message_id": inbound.message_id, "reply": record.reply_id, "recipients": list(members)}
            ids, rejected = self._send(key, copy + body, alias, members, inbound.message_id)
            sent += ids
            failed += rejected
        outcome = Outcome(
            message_id=inbound.message_id,
            forwarded=True,
            recipients=len(outsiders) + len(team) - len(failed),
            aliases=(alias,),
            sent=tuple(sent),
            failed=tuple(failed),
            reply=RELAYED,
        )
        logger.info(
            "reply relayed to the outside sender as the team",
            extra={"alias": alias, "reply_id": record.reply_id, "copies": len(team), "outcome": outcome.as_dict()},
        )
        return outcome, Delivery(alias, (*outsiders, *team))

    def _copy_head(
        self,
        message: SplitMessage,
        alias: str,
        name: str,
        record: ReplyRecord,
        reply_address: str,
        cc: Sequence[str],
        strip: Sequence[str],
        refused: Collection[str] = (),
    ) -> bytes:
        """The header block of the team's copy of a relayed reply; the others in `refused` (SES refused them)
        are named as not reached."""
        domain, newline = self.settings.domain, message.newline
        # The copy is addressed to the reply address, named after the outside sender, and names the others it went
        # to in Cc as the reply address too: the members see who got it, and Reply and Reply all on it both stay on
        # the reply address, so no member writes to the outside people directly.
        named = [
            format_address(
                display_name(Person("", other), alias) + (_NOT_REACHED if other in refused else ""),
                reply_address,
                newline,
            )
            for other in cc
        ]
        return build_reply_head(
            message,
            domain=domain,
            alias=alias,
            display_name=name,
            to_address=reply_address,
            to_name=display_name(Person("", record.address), alias),
            cc=named,
            reply_address=reply_address,
            strip=strip,
        )

    def _send_outside(
        self, message_id: str, record: ReplyRecord, raw: bytes, outsiders: tuple[str, ...]
    ) -> tuple[list[str], list[str]]:
        """Send the reply to the outside sender and the others (`outsiders`, the sender first); the SES ids and the
        addresses SES refused.

        SES refuses a send for all its recipients at once, whether it refused the message or one address (one
        SES will not send to, or, in the sandbox, an unverified one). As the forward does for its member batches,
        a refused send is tried again one address at a time, the outside sender first: when SES refuses the
        sender too, the others are not tried (the answer was to the sender: it goes to the team tagged), so a
        refused message costs one more send, not one per address."""
        key: Result = {"message_id": message_id, "reply": record.reply_id, "recipients": ["outside"]}
        ids, rejected = self._send(key, raw, record.alias, outsiders, message_id, outside=True)
        if not rejected or len(outsiders) == 1:
            return ids, rejected
        sent: list[str] = []
        failed: list[str] = []
        for address in outsiders:
            key = {"message_id": message_id, "reply": record.reply_id, "recipients": ["outside", address.lower()]}
            ids, rejected = self._send(key, raw, record.alias, (address,), message_id, outside=True)
            if rejected and address == record.address:
                return [], [address]
            sent += ids
            failed += rejected
        return sent, failed

    def _send(
        self, key: Result, raw: bytes, alias: str, recipients: tuple[str, ...], message_id: str, outside: bool = False
    ) -> tuple[list[str], list[str]]:
        """Send with the tags the delivery function reads: the inbound mail and alias, and `outside` for the send
        to the outside sender (its bounce or complaint is no member's)."""
        tags = {"inbound": message_id, "alias": alias, **self._once.tags(key)}
        if outside:
            tags[OUTSIDE_TAG] = "true"
        from_address = f"{alias}@{self.settings.domain}"
        try:
            result = self._once(key, lambda: {"ses_id": self._sender.send(raw, from_address, recipients, tags)})
        except SenderNotReadyError:
            raise
        except SendError as error:
            logger.error(
                "SES rejected the relayed reply",
                extra={"alias": alias, "recipients": len(recipients), "code": error.code, "detail": str(error)},
            )
            return [], list(recipients)
        return [str(result["ses_id"])], []

    def _members(self, alias: str) -> set[str]:
        """The alias's current member addresses, lower case (what the author is compared with)."""
        return {member.lower() for member in self._routed_members(alias)}

    def _routed_members(self, alias: str) -> tuple[str, ...]:
        """Members the forwarder sends to (valid, not on our domain), as in routing; no catch-all."""
        routing = resolve_routes([f"{alias}@{self.settings.domain}"], self._directory.aliases(), self.settings.domain)
        return routing.deliveries[0].members if routing.deliveries else ()

    def _dropped(self, inbound: Inbound, reason: str | None, reply: str | None) -> Outcome:
        outcome = Outcome(message_id=inbound.message_id, forwarded=False, reason=str(reason), reply=reply)
        logger.info("not forwarded", extra={"outcome": outcome.as_dict()})
        return outcome

    @staticmethod
    def _log(token: ReplyToken, check: Check) -> dict[str, object]:
        return {"alias": token.alias, "reply_id": token.reply_id, "reason": str(check.reason)}


def _automatic(message: SplitMessage, inbound: Inbound) -> bool:
    """Whether mail to a reply address is a mail program's or a server's, not a person's answer: its fields say so,
    or it came with the null envelope sender of notifications (a bounce or out-of-office notice written as plain
    text, with the member's From and their domain's DKIM, would otherwise go out as the team's answer)."""
    return is_automatic(message) or has_null_sender(inbound.envelope_sender)


def _forwarded_reason(check: Check, automatic: bool) -> str | None:
    """The reason when a refused reply goes to the members marked instead of being dropped, else None.

    Mail to a reply address we issued whose record expired (or is gone) is forwarded: a member answering an
    old thread would otherwise believe it sent, and the team would never see it. Only the relay to the
    outside sender has ended; plain mail to the alias reaches the members anyway. A vacation notice or
    auto-reply to it is dropped, as it is on a live address."""
    if check.reason in (NOT_MEMBER, SPAM):
        return check.reason
    if check.reason == DropReason.REPLY_EXPIRED and not automatic:
        return check.reason
    return None


def _shortened(message: SplitMessage) -> tuple[SplitMessage, str | None]:
    """The message with its long lines shortened as the forward path does, and what could not be (None)."""
    shortened, report = shorten_if_long(message)
    return shortened, ("; ".join(report.unfixable) or None) if report is not None else None


def merge_outcomes(message_id: str, outcomes: Sequence[Outcome]) -> Outcome:
    """One outcome for a message whose recipients were handled in parts (reply addresses and others)."""
    if len(outcomes) == 1:
        return outcomes[0]
    forwarded = any(o.forwarded for o in outcomes)
    aliases: list[str] = []
    for outcome in outcomes:
        aliases += [a for a in outcome.aliases if a not in aliases]
    return Outcome(
        message_id=message_id,
        forwarded=forwarded,
        reason=None if forwarded else next((o.reason for o in outcomes if o.reason), None),
        recipients=sum(o.recipients for o in outcomes),
        aliases=tuple(aliases),
        sent=tuple(s for o in outcomes for s in o.sent),
        failed=tuple(f for o in outcomes for f in o.failed),
        oversize=any(o.oversize for o in outcomes),
        reply=next((o.reply for o in outcomes if o.reply == RELAYED), None)
        or next((o.reply for o in outcomes if o.reply), None),
    )
