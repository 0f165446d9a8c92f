"""`forwarder trace`: where did a mail go? Its whole path from the trace table, member by member.

`forwarder trace MESSAGE_ID` reads one partition (the mail's items); `--from`, `--alias` and `--since` find
mails without the id through the table's two indexes (`lookup`: `from#<sender>` / `alias#<alias>`, and
`by-day`), each a query bounded by the key and the time range, never a scan.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from forwarder.feedback import NOT_SENT_TO, UNSURE_COMPLAINANT
from forwarder.trace import (
    ALIAS_PREFIX,
    COMPLAINED,
    MAIL_SK,
    MEMBER_PREFIX,
    PROBLEMS,
    SENDER_PREFIX,
    SENT,
    SKIPPED,
    SUPPRESSED,
    TraceEntry,
    latest,
    mail_pk,
    order,
    timestamp,
)
from forwarder_ops.errors import CommandError

# BatchGetItem's unprocessed keys are asked again with exponential backoff, as DynamoDB advises.
_BATCH_ATTEMPTS = 8
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 5.0
_SINCE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DAYS = 3650


def parse_since(text: str, now: datetime | None = None) -> str:
    """`30m`, `12h`, `2d`, `1w` or a date/time (`2026-11-28`, `2026-11-28T09:00`) -> the sortable timestamp."""
    now = now or datetime.now(UTC)
    match = _SINCE.match(text)
    if match:
        try:
            span = timedelta(**{_UNITS[match[2]]: int(match[1])})
        except OverflowError:  # more days than a timedelta holds
            span = timedelta.max
        if span > timedelta(days=MAX_DAYS):
            raise CommandError(f"--since {text}: at most {MAX_DAYS} days")
        return timestamp(now - span)
    try:
        moment = datetime.fromisoformat(text.strip())
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        since = timestamp(moment)
    except ValueError:
        raise CommandError(f"--since {text!r}: give a duration (30m, 12h, 2d, 1w) or a date (2026-11-28)") from None
    except OverflowError:  # a date at the end of the calendar, in UTC beyond it
        raise CommandError(f"--since {text!r}: give a date between the years 1 and 9999") from None
    # `--since` without --from/--alias queries the by-day index once per day: a date centuries back would never end.
    if now - moment > timedelta(days=MAX_DAYS):
        raise CommandError(f"--since {text}: at most {MAX_DAYS} days")
    return since


def plain(value: Any) -> Any:
    """DynamoDB's Decimals and sets as JSON-ready numbers and lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(v) for v in value]
    return value


# one mail ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member's path: where the mail is now for them, since when, and why."""

    alias: str
    member: str
    state: str
    at: str
    detail: str
    path: tuple[str, ...]
    history: tuple[TraceEntry, ...] = ()

    @property
    def problem(self) -> bool:
        return self.state in PROBLEMS

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = list(self.path)
        data["history"] = [entry.as_item() for entry in self.history]
        return data


@dataclass(frozen=True, slots=True)
class MailTrace:
    """What the table knows of one mail: the forwarder's record (None if it wrote none) and the members."""

    message_id: str
    mail: dict[str, Any] | None
    members: tuple[MemberRow, ...] = field(default_factory=tuple)

    @property
    def found(self) -> bool:
        return self.mail is not None or bool(self.members)

    @property
    def problems(self) -> list[MemberRow]:
        return [row for row in self.members if row.problem]

    def as_dict(self) -> dict[str, Any]:
        mail = {k: v for k, v in (self.mail or {}).items() if k not in {"pk", "sk", "lookup", "day", "members"}}
        return {
            "message_id": self.message_id,
            "found": self.found,
            "mail": mail or None,
            "members": [row.as_dict() for row in self.members],
            "problems": [row.member for row in self.problems],
        }


def compose(message_id: str, items: Iterable[dict[str, Any]]) -> MailTrace:
    """One mail's items (any order) -> its trace: the forwarder's step for each member, then SES's."""
    mail: dict[str, Any] | None = None
    events: dict[str, dict[str, Any]] = {}
    for item in items:
        sk = str(item.get("sk", ""))
        if sk == MAIL_SK:
            mail = plain(item)
        elif sk.startswith(MEMBER_PREFIX):
            events[sk.removeprefix(MEMBER_PREFIX)] = plain(item)
    rows: list[MemberRow] = []
    seen: set[str] = set()
    received = str((mail or {}).get("received") or "")
    for record in (mail or {}).get("members", []):
        member = str(record.get("member", "")).lower()
        status = str(record.get("status", SENT))
        own = TraceEntry(received, status, "forwarder", "forwarder", str(record.get("detail", "")))
        history = [TraceEntry.from_item(e) for e in events.get(member, {}).get("history", [])]
        rows.append(_row(str(record.get("alias", "")), member, own, [] if status == SKIPPED else history))
        seen.add(member)
    for member, item in sorted(events.items()):
        if member not in seen:  # the forwarder's own record is missing (trace write failed, or older)
            history = [TraceEntry.from_item(e) for e in item.get("history", [])]
            rows.append(_row(str(item.get("alias", "")), member, None, history))
    return MailTrace(message_id, mail, tuple(rows))


def _row(alias: str, member: str, own: TraceEntry | None, history: list[TraceEntry]) -> MemberRow:
    """The forwarder's step comes first whatever its clock says (SES reports only what it was handed), then
    SES's events in stage order (`order`); the furthest of those says where the member is now."""
    ordered = sorted(history, key=order)
    steps = ([own] if own else []) + ordered
    now = latest(ordered) or own or TraceEntry("", "unknown", "", "")
    states = [s for i, s in enumerate(e.state for e in steps) if i == 0 or s != steps[i - 1].state]
    return MemberRow(alias, member, now.state, now.at, now.detail, tuple(states), tuple(steps))


# reading the table ------------------------------------------------------------------------------


class TraceTable:
    """Queries of the trace table (the operator's credentials)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self.table = table

    def _query(self, **request: Any) -> list[dict[str, Any]]:
        from forwarder.aws.trace import from_item

        items: list[dict[str, Any]] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, **request):
            items += [from_item(item) for item in page.get("Items", [])]
        return items

    def mail(self, message_id: str) -> MailTrace:
        items = self._query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": mail_pk(message_id)}}
        )
        return compose(message_id, items)

    def lookup(self, key: str, since: str | None) -> list[str]:
        """Message ids under a `lookup` key (`from#...`, `alias#...`), newest first."""
        condition, values = "#l = :k", {":k": {"S": key}}
        if since:
            condition += " AND #r >= :since"
            values[":since"] = {"S": since}
        names = {"#l": "lookup", **({"#r": "received"} if since else {})}
        items = self._query(
            IndexName="lookup",
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
        )
        return [str(item["message_id"]) for item in items]

    def since(self, since: str, until: datetime | None = None) -> list[str]:
        """Message ids received since `since`: one query per day partition of `by-day`."""
        first = datetime.fromisoformat(since.replace("Z", "+00:00")).date()
        last = (until or datetime.now(UTC)).date()
        ids: list[str] = []
        day = last
        while day >= first:
            items = self._query(
                IndexName="by-day",
                KeyConditionExpression="#d = :d AND #r >= :since",
                ExpressionAttributeNames={"#d": "day", "#r": "received"},
                ExpressionAttributeValues={":d": {"S": day.isoformat()}, ":since": {"S": since}},
                ScanIndexForward=False,
            )
            ids += [str(item["message_id"]) for item in items]
            day -= timedelta(days=1)
        return ids

    def mails(self, message_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The forwarder's records of `message_ids` (BatchGetItem, 100 at a time)."""
        from forwarder.aws.trace import from_item

        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(message_ids))
        for start in range(0, len(unique), 100):
            keys = [{"pk": {"S": mail_pk(i)}, "sk": {"S": MAIL_SK}} for i in unique[start : start + 100]]
            pending: Any = {self.table: {"Keys": keys}}
            for attempt in range(_BATCH_ATTEMPTS):
                if attempt:  # DynamoDB returns what it could not read (throttled): ask again after a pause
                    time.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
                answer = self._client.batch_get_item(RequestItems=pending)
                found += [plain(from_item(item)) for item in answer.get("Responses", {}).get(self.table, [])]
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                left = len(pending.get(self.table, {}).get("Keys", []))
                raise CommandError(
                    f"DynamoDB kept throttling the reads of {self.table} ({left} mail record(s) still unread after "
                    f"{_BATCH_ATTEMPTS} tries): try again in a minute, or narrow the search (--since, --limit)"
                )
        return sorted(found, key=lambda m: str(m.get("received", "")), reverse=True)

    def find(self, sender: str | None, alias: str | None, since: str | None, limit: int) -> Found:
        """The newest `limit` mails matching every given filter, and how many match; the most selective index
        answers."""
        if sender:
            ids = self.lookup(f"{SENDER_PREFIX}{sender.strip().lower()}", since)
        elif alias:
            ids = self.lookup(f"{ALIAS_PREFIX}{alias}", since)
        elif since:
            ids = self.since(since)
        else:
            raise CommandError("give a MESSAGE_ID, or find mails with --from ADDRESS, --alias ALIAS or --since 2d")
        if sender and alias:  # the alias is a filter on the mail records: read them all
            mails = [m for m in self.mails(ids) if alias in m.get("aliases", [])]
            return Found(mails[:limit], len(mails))
        # The indexes answer newest first: only the records shown are read.
        unique = list(dict.fromkeys(ids))
        return Found(self.mails(unique[:limit]), len(unique))


@dataclass(frozen=True, slots=True)
class Found:
    """The mails listed (newest first, at most --limit) and how many matched in all."""

    mails: list[dict[str, Any]]
    matched: int

    @property
    def truncated(self) -> bool:
        return self.matched > len(self.mails)


# output -----------------------------------------------------------------------------------------


def _when(stamp: str) -> str:
    return stamp[:19].replace("T", " ") if stamp else "-"


def _fix(row: MemberRow, env_flag: str) -> str:
    if any(entry.outside for entry in row.history):
        return _outside_fix(row, env_flag)
    if row.state == SUPPRESSED:
        return (
            f"{row.member} is on the account's suppression list: SES accepts mail for it and delivers nothing. "
            f"If the address works again: `forwarder suppression remove {row.member}{env_flag}`"
        )
    if row.state == "bounced" and row.detail.startswith("Permanent"):
        remove = f"forwarder aliases remove {row.alias} {row.member}{env_flag}"
        # SES may name the address a member's mailbox forwards to: removing that from the alias would change nothing.
        forwarded = f"{row.member} refused the mail and is {NOT_SENT_TO}: ask {row.alias}'s members who forwards there"
        own = f"{row.member} does not accept mail: correct or remove it (`{remove}`)"
        return forwarded if NOT_SENT_TO in row.detail else own
    if row.state == "complained" and UNSURE_COMPLAINANT in row.detail:
        return f"{row.member} or another member at the same provider marked the mail as spam: ask them"
    if row.state == "complained":
        return f"{row.member} marked the mail as spam: ask them, or remove them from {row.alias}"
    return ""


def _outside_fix(row: MemberRow, env_flag: str) -> str:
    """The fix for the outside sender a member's reply was relayed to: no member, so not "remove it"."""
    who = f"{row.member} (an outside address the reply went to, not a member of {row.alias}: nothing to change)"
    if row.state == SUPPRESSED:
        remove = f"forwarder suppression remove {row.member}{env_flag}"
        return f"{who} is on the account's suppression list; if it works again: `{remove}`"
    if row.state == "bounced" and row.detail.startswith("Permanent"):
        return f"{who} does not accept mail: tell the member who wrote the reply that it did not arrive"
    if row.state == "complained":
        return f"{who} marked the reply as spam: the team should not write to it again unasked"
    return ""


def render(trace: MailTrace, env_flag: str = "") -> list[str]:
    """The path of one mail as lines: the forwarder's record, then one row per member."""
    from forwarder_ops.console import table

    mail = trace.mail or {}
    lines = [f"mail {trace.message_id}"]
    if mail:
        verdicts = mail.get("verdicts", {})
        shown = ", ".join(f"{name} {value}" for name, value in verdicts.items())
        lines += [
            f"  received  {_when(str(mail.get('received', '')))} UTC",
            f"  from      {mail.get('sender') or '(empty envelope sender)'}",
            f"  to        {', '.join(mail.get('recipients', []))}",
        ]
        if mail.get("subject"):
            lines.append(f"  subject   {mail['subject']}")
        lines += [f"  verdicts  {shown}", f"  decision  {mail.get('decision', '')}"]
        if mail.get("unknown"):
            lines.append(f"  unknown   {', '.join(mail['unknown'])} (no such alias)")
    else:
        lines.append("  (the forwarder's own record is missing: only SES's events are known)")
    if trace.members:
        lines.append("")
        rows = [
            (row.alias, row.member, row.state, _when(row.at), " > ".join(row.path), row.detail[:120])
            for row in trace.members
        ]
        lines += table(rows, ("alias", "member", "now", "since (UTC)", "path", "detail"), "  ")
    # A complaint comes from the member's mailbox: the mail was delivered, and the member marked it as spam.
    complained = sum(row.state == COMPLAINED for row in trace.members)
    delivered = sum(row.state == "delivered" for row in trace.members) + complained
    sent = sum(row.state != SKIPPED for row in trace.members)
    pending = sum(row.state in {SENT, "delayed"} for row in trace.members)
    summary = [f"{delivered} of {sent} member(s) delivered"]
    if len(trace.problems) > complained:
        summary.append(f"{len(trace.problems) - complained} did not get it")
    if complained:
        summary.append(f"{complained} marked it as spam")
    if pending:
        summary.append(f"{pending} still on the way (SES has not reported a delivery yet)")
    lines += ["", ", ".join(summary)]
    fixes = [fix for row in trace.problems if (fix := _fix(row, env_flag))]
    lines += [f"  fix: {fix}" for fix in fixes]
    return lines


def render_list(mails: Sequence[dict[str, Any]], env_flag: str = "", matched: int | None = None) -> list[str]:
    from forwarder_ops.console import table

    if not mails:
        return ["no mail matches"]
    shown = f"{len(mails)} mail(s)"
    if matched is not None and matched > len(mails):
        more = f"more with --limit {matched} or a shorter --since"
        shown = f"the newest {len(mails)} of {matched} matching mails ({more})"
    rows = [
        (
            _when(str(m.get("received", ""))),
            str(m.get("message_id", "")),
            str(m.get("sender", "")),
            ",".join(m.get("aliases", [])) or "-",
            str(m.get("decision", "")),
            str(sum(1 for r in m.get("members", []) if r.get("status") == SENT)),
        )
        for m in mails
    ]
    lines = table(rows, ("received (UTC)", "message id", "from", "aliases", "decision", "sent"), "  ")
    return [*lines, "", f"{shown}; the path of one: forwarder trace MESSAGE_ID{env_flag}"]


# command ----------------------------------------------------------------------------------------


def add_parser(commands: Any, environment: argparse.ArgumentParser) -> None:
    trace = commands.add_parser(
        "trace",
        parents=[environment],
        help="where did a mail go: received, verdicts, decision, and each member's delivery state",
        description="Show a mail's path from the trace table: received, verdicts, decision, and one row per "
        "member (sent > delivered / bounced / complained / delayed / suppressed). Without a MESSAGE_ID, "
        "list the mails matching --from, --alias and --since. Exit code 1 when the mail is unknown or a member "
        "did not get it or marked it as spam (or nothing matches).",
    )
    trace.add_argument("message_id", nargs="?", metavar="MESSAGE_ID", help="the inbound (SES receipt) message id")
    trace.add_argument("--from", dest="sender", metavar="ADDRESS", help="mails from this envelope sender")
    trace.add_argument("--alias", help="mails addressed to this alias")
    trace.add_argument("--since", help="mails received since: 30m, 12h, 2d, 1w or a date (2026-11-28)")
    trace.add_argument("--limit", type=int, default=50, help="list at most N mails (default 50)")
    trace.add_argument("--table", help="the trace table (default: the stack's TraceTable output)")
    trace.add_argument("--json", action="store_true", help="machine-readable output")
    trace.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    from forwarder_ops.cli import _target

    if not args.message_id and not (args.sender or args.alias or args.since):
        raise CommandError("give a MESSAGE_ID, or find mails with --from ADDRESS, --alias ALIAS or --since 2d")
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")
    since = parse_since(args.since) if args.since else None
    alias = args.alias.partition("@")[0].lower() if args.alias else None
    target = _target(args)
    table = TraceTable(target.client("dynamodb"), args.table or target.output("TraceTable"))
    env_flag = target.command_flags
    try:
        return _show(args, table, since, alias, env_flag)
    except Exception as error:
        from botocore.exceptions import ClientError

        problem = error.response.get("Error", {}) if isinstance(error, ClientError) else {}
        code, message = problem.get("Code"), str(problem.get("Message", ""))
        if code in {"ValidationException", "ResourceNotFoundException"} and "index" in message.lower():
            # A table made by hand, or one whose index is still being built: --from/--alias/--since need both.
            # (DynamoDB answers a missing index with ValidationException, moto with ResourceNotFoundException.)
            raise CommandError(
                f"{table.table} cannot answer --from/--alias/--since ({message}): the stack's TraceTable has the "
                "`lookup` and `by-day` indexes (their creation on a full table takes a while); give --table the "
                "stack's TraceTable output, or look a mail up by its MESSAGE_ID"
            ) from None
        if code == "ResourceNotFoundException":
            raise CommandError(
                f"no trace table {table.table} in {target.region}: deploy the stack with the current template "
                "(it creates TraceTable), or give --table NAME"
            ) from None
        raise


def _show(args: argparse.Namespace, table: TraceTable, since: str | None, alias: str | None, env_flag: str) -> int:
    from forwarder_ops.cli import OK, PROBLEM
    from forwarder_ops.console import print_json, printable_lines

    if args.message_id:
        trace = table.mail(args.message_id.strip())
        if args.json:
            print_json(trace.as_dict())
        elif not trace.found:
            print(
                f"no trace of {args.message_id} in {table.table}: not received, older than the retention, "
                "or received before the trace was switched on"
            )
        else:
            print(printable_lines(render(trace, env_flag)))  # the subject and sender are the mail's
        return PROBLEM if not trace.found or trace.problems else OK
    found = table.find(args.sender, alias, since, args.limit)
    if args.json:
        print_json({"mails": found.mails, "matched": found.matched, "truncated": found.truncated})
    else:
        print(printable_lines(render_list(found.mails, env_flag, found.matched)))
    return OK if found.mails else PROBLEM
