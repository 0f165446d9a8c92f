"""`forwarder run`: mail through the real handler against the embedded AWS emulator, into outbox/."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from forwarder.mail.message import split_message
from forwarder.mail.routing import alias_of
from forwarder.models import first_inbound
from forwarder_ops.errors import CommandError
from forwarder_ops.local import EmbeddedAws, SentMail, build_event, embedded_aws, message_id_for, write_outbox


@dataclass(frozen=True)
class RunResult:
    """One mail's trip through the handler: its outcome and what was sent, with the outbox files."""

    name: str
    recipients: tuple[str, ...]
    outcome: dict[str, Any]
    sent: tuple[SentMail, ...]
    files: tuple[Path, ...]

    @property
    def copies(self) -> int:
        """A relayed reply's copies to the team: the recipients after the first send's, which went to the outside
        sender and the other outside people of the conversation."""
        outside = len(self.sent[0].recipients) if self.sent else 0
        return int(self.outcome.get("recipients", 0)) - outside

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipients": list(self.recipients),
            "outcome": self.outcome,
            "sent": [
                {"from": s.from_address, "to": list(s.recipients), "bytes": len(s.raw), "file": str(f)}
                for s, f in zip(self.sent, self.files, strict=True)
            ],
        }


def domain_of(recipients: Sequence[str]) -> str:
    """The one domain of the envelope recipients; `CommandError` for a recipient that is not an address
    or for recipients on several domains (a run forwards for one domain, as one stack does). A domain that
    ends in a dot is refused as an SMTP server refuses it (it would be a domain of its own, never verified)."""
    for recipient in recipients:
        local, at, domain = recipient.rpartition("@")
        if not at or not local or "." not in domain.strip(".") or domain.endswith("."):
            raise CommandError(
                f"--to {recipient} is not an address: give alias@domain, e.g. --to team@dev.aws-educate.tw"
            )
    domains = sorted({r.rpartition("@")[2].lower() for r in recipients})
    if len(domains) != 1:
        raise CommandError(
            f"the recipients are on {len(domains)} domains ({', '.join(domains)}): a run forwards for one domain"
        )
    return domains[0]


def read_mail(path: Path, *, probe: bool = False) -> bytes:
    """A mail file's bytes (with `probe`, only whether it opens); `CommandError` when it is missing, a
    directory or unreadable."""
    if path.is_dir():
        raise CommandError(f"{path} is a directory: give mail files, e.g. {path}/*.eml")
    try:
        with path.open("rb") as file:
            return b"" if probe else file.read()
    except FileNotFoundError:
        raise CommandError(f"no such mail file: {path}") from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None


def check_aliases(aliases: Mapping[str, Sequence[str]], domain: str, source: Path | str, warn: TextIO) -> None:
    """What the local emulator cannot hold is an error naming the alias (an alias without members cannot
    be an SSM StringList); what the forwarder would skip is a warning on `warn`, as it is in AWS."""
    from forwarder_ops.aliases import member_problems, unique

    empty = sorted(name for name, members in aliases.items() if not unique(members))
    if empty:
        raise CommandError(f"alias {empty[0]} in {source} has no members: give it at least one address")
    for name, members in sorted(aliases.items()):
        for problem in member_problems(name, members, domain):
            print(f"forwarder: warning: {source}: {problem}: the forwarder skips this member", file=warn)


# The names `write_outbox` gives: `<n>-<alias>-<id>.eml`, the id being the last 8 hex digits of the local
# SES message id; anything looser also matches an operator's own `2024-01-invoice.eml`, which a run must keep.
_OUTBOX_FILE = re.compile(r"[0-9]{2,}-.+-[0-9a-f]{8}\.eml")


def clear_outbox(outbox: Path) -> int:
    """Remove what an earlier run wrote to `outbox` (only files named as `write_outbox` names them), so
    that the folder holds the last run's mail and does not grow run after run; the count removed."""
    if outbox.exists() and not outbox.is_dir():
        raise CommandError(f"--outbox {outbox} is a file, not a folder")
    removed = 0
    for path in outbox.glob("*.eml") if outbox.is_dir() else ():
        if _OUTBOX_FILE.fullmatch(path.name) and path.is_file():
            path.unlink()
            removed += 1
    return removed


def run_mail(
    env: EmbeddedAws, name: str, raw: bytes, event: dict[str, Any], outbox: Path, verbose: bool = False
) -> RunResult:
    """Store `raw` under the event's message id, invoke the handler, write what it sent to `outbox`."""
    first = len(env.ses.outbox) + 1
    # Powertools prints EMF metrics to stdout; keep the report readable unless asked for them.
    with nullcontext() if verbose else redirect_stdout(io.StringIO()):
        result, new = env.deliver_event(raw, event)
    sent = tuple(new)
    recipients = first_inbound(event).recipients
    try:
        files = tuple(write_outbox(sent, outbox, start=first))
    except OSError as error:
        raise OutboxError(RunResult(name, recipients, result["outcomes"][0], sent, ()), error) from error
    return RunResult(name, recipients, result["outcomes"][0], sent, files)


class OutboxError(OSError):
    """The handler ran (and sent), but its mail could not be written to the outbox: `result` is what it did.

    An `OSError` with the file's name, so that `forwarder run` says it in one line; `forwarder smtp` must not
    answer 451 for it, which would make the client send the mail again.
    """

    def __init__(self, result: RunResult, error: OSError) -> None:
        super().__init__(error.errno, error.strerror, error.filename)
        self.result = result


def run_files(
    paths: Sequence[Path],
    to: Sequence[str],
    aliases: Mapping[str, Sequence[str]],
    outbox: Path,
    verbose: bool = False,
    reply_as: str | None = None,
    **verdicts: Any,
) -> list[RunResult]:
    """Forward each mail file to `to` with the given alias lists (replies in team mode, as deployed);
    with `reply_as`, that member then answers each forward it got (see `run_replies`)."""
    domain = domain_of(to)
    results = []
    with embedded_aws(domain, _with_defaults(aliases, to, domain), reply_mode="team") as env:
        for number, path in enumerate(paths):
            raw = read_mail(path)
            # SES gives each delivery its own id: the same mail given twice is two mails, not a retry the
            # idempotency record would answer without sending
            event = build_event(raw, to, message_id=message_id_for(raw + str(number).encode()), **verdicts)
            results.append(run_mail(env, path.name, raw, event, outbox, verbose))
            results += run_replies(env, results[-1], reply_as, outbox, verbose)
    return results


def run_samples(
    directory: Path,
    aliases: Mapping[str, Sequence[str]],
    outbox: Path,
    verbose: bool = False,
    reply_as: str | None = None,
) -> list[RunResult]:
    """Replay every committed sample event of `directory` (events/)."""
    from forwarder_ops.samples import iter_events, load_manifest

    manifest = load_manifest(directory / "manifest.toml")
    results = []
    with embedded_aws(manifest.domain, aliases, reply_mode="team") as env:
        for sample, event in iter_events(directory):
            results.append(run_mail(env, sample.name, sample.raw(), event, outbox, verbose))
            results += run_replies(env, results[-1], reply_as, outbox, verbose)
    return results


def run_replies(
    env: EmbeddedAws, result: RunResult, member: str | None, outbox: Path, verbose: bool = False
) -> list[RunResult]:
    """The round trip: `member` answers each forward of `result` it received, from its own mailbox, to the
    forward's Reply-To (the reply address in team mode), through the handler like any received mail."""
    from forwarder_ops.replies import compose_reply

    if not member:
        return []
    replies = []
    for sent in result.sent:
        if member.lower() not in (r.lower() for r in sent.recipients):
            continue
        composed = compose_reply(sent.raw, member)
        if composed is None:
            continue
        raw, to = composed
        event = build_event(raw, [to], message_id=message_id_for(raw), source=member)
        replies.append(run_mail(env, f"{member}'s reply to {result.name}", raw, event, outbox, verbose))
    return replies


def _with_defaults(aliases: Mapping[str, Sequence[str]], to: Sequence[str], domain: str) -> dict[str, list[str]]:
    """Without alias lists, each addressed alias gets one demo member so that something is forwarded."""
    if aliases:
        return {k: list(v) for k, v in aliases.items()}
    names = {alias_of(r, domain) for r in to} - {None}
    return {str(name): [f"{name}.member@example.com"] for name in names}


def describe(result: RunResult) -> str:
    """Human-readable report: outcome, then each forwarded message's envelope and header block."""
    outcome = result.outcome
    lines = [f"== {result.name}  ->  {', '.join(result.recipients)}"]
    if outcome.get("reply") == "relayed":
        copies = result.copies
        lines.append(
            f"   relayed to the outside sender as {', '.join(outcome['aliases'])}, copies to {copies} member(s)"
        )
    elif outcome["forwarded"]:
        extra = "  (oversize: notice with download link)" if outcome.get("oversize") else ""
        lines.append(f"   forwarded to {outcome['recipients']} member(s) via {', '.join(outcome['aliases'])}{extra}")
    else:
        lines.append(f"   not forwarded: {outcome['reason']}")
    if outcome.get("reply") not in (None, "relayed"):
        lines.append(f"   mail to a reply address, not relayed: {outcome['reply']}")
    for failed in outcome.get("failed", []):
        lines.append(f"   ! SES refused {failed}")
    for sent, path in zip(result.sent, result.files, strict=True):
        lines.append(f"   -> {path}  ({len(sent.raw):,} bytes)")
        lines.append(f"      envelope from {sent.from_address} to {', '.join(sent.recipients)}")
        if sent.tags:
            lines.append(f"      SES tags {', '.join(f'{k}={v}' for k, v in sent.tags.items())}")
        for field in split_message(sent.raw).fields:
            text = field.raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n").replace("\n", "\n      ")
            lines.append(f"      {text if len(text) <= 160 else text[:157] + '...'}")
    return "\n".join(lines)
