"""Sample mails and SES events: events/manifest.toml -> events/<name>.json, one source for all uses."""

from __future__ import annotations

import base64
import hashlib
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from forwarder.mail.message import split_message
from forwarder_ops.errors import CommandError, read_text
from forwarder_ops.local import build_event, message_id_for

_VERDICTS = ("spam", "virus", "spf", "dkim", "dmarc", "dmarc_policy")
_CONTENT = ("content-type", "content-transfer-encoding")


@dataclass(frozen=True)
class Sample:
    """One sample event: which mail, to whom, with which verdicts."""

    name: str
    about: str
    mail: Path
    recipients: tuple[str, ...]
    verdicts: dict[str, str] = field(default_factory=dict)
    size_mb: float = 0

    def raw(self) -> bytes:
        """The mail as SES stored it, grown by a generated attachment to about `size_mb` when set."""
        raw = self.mail.read_bytes()
        return with_attachment(raw, int(self.size_mb * 1_000_000), self.name) if self.size_mb else raw


@dataclass(frozen=True)
class Manifest:
    domain: str
    region: str
    account: str
    function: str
    timestamp: datetime
    samples: tuple[Sample, ...]
    path: Path = Path("manifest.toml")

    def event(self, sample: Sample) -> dict[str, Any]:
        raw = sample.raw()
        return build_event(
            raw,
            sample.recipients,
            message_id=message_id_for(raw + sample.name.encode()),
            region=self.region,
            account=self.account,
            function=self.function,
            timestamp=self.timestamp,
            **sample.verdicts,
        )


def load_manifest(path: Path) -> Manifest:
    """Read events/manifest.toml; mail paths are relative to it. A `CommandError` when it is not a manifest."""
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None
    try:
        return _manifest(path, data)
    except KeyError as error:
        raise CommandError(f"{path}: {error.args[0]!r} is missing (see events/manifest.toml)") from None
    except (TypeError, ValueError, AttributeError) as error:  # a value of the wrong type
        raise CommandError(f"{path} is not a manifest like events/manifest.toml: {error}") from None


def _manifest(path: Path, data: dict[str, Any]) -> Manifest:
    samples = tuple(
        Sample(
            name=item["name"],
            about=item.get("about", ""),
            mail=path.parent / item["mail"],
            recipients=_recipients(item),
            verdicts={key: item[key] for key in _VERDICTS if key in item},
            size_mb=float(item.get("size_mb", 0)),
        )
        for item in data["event"]
    )
    timestamp = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
    return Manifest(data["domain"], data["region"], data["account"], data["function"], timestamp, samples, path)


def _recipients(item: dict[str, Any]) -> tuple[str, ...]:
    """A sample's envelope recipients: a list of addresses (a bare string would become one per letter)."""
    recipients = item["recipients"]
    if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) for r in recipients):
        raise TypeError(f"event {item.get('name')!r}: recipients must be a list of addresses, got {recipients!r}")
    return tuple(recipients)


def write_events(manifest: Manifest, out: Path) -> list[Path]:
    """Write `<name>.json` for every sample; returns the paths. A `CommandError`, before anything is written,
    when a sample makes an event the handler refuses (a verdict or DMARC policy SES does not send)."""
    from forwarder.models import EventError, first_inbound

    events = {}
    for sample in manifest.samples:
        events[sample.name] = manifest.event(sample)
        try:
            first_inbound(events[sample.name])
        except EventError as error:
            raise CommandError(f"{manifest.path}: event {sample.name!r} is not what SES sends: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, event in events.items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def with_attachment(raw: bytes, size: int, seed: str = "attachment") -> bytes:
    """`raw` grown to about `size` bytes by a deterministic binary attachment (base64, 76-column lines).

    The original content becomes the first part of a new multipart/mixed body; its other header
    fields are kept.
    """
    message = split_message(raw)
    newline = message.newline
    boundary = "=_sample_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
    outer = [f.raw for f in message.fields if f.key not in _CONTENT and f.key != "mime-version"]
    inner = [f.raw for f in message.fields if f.key in _CONTENT] or [
        b"Content-Type: text/plain; charset=us-ascii" + newline
    ]
    binary = max(0, size - len(raw)) * 57 // (76 + len(newline))  # 57 bytes per base64 line
    data = base64.encodebytes(hashlib.shake_256(seed.encode()).digest(binary)).replace(b"\n", newline)
    parts = [
        *outer,
        b"MIME-Version: 1.0" + newline,
        f'Content-Type: multipart/mixed; boundary="{boundary}"'.encode() + newline,
        newline,
        f"--{boundary}".encode() + newline,
        *inner,
        newline,
        bytes(message.body),
        newline,
        f"--{boundary}".encode() + newline,
        f'Content-Type: application/octet-stream; name="{seed}.bin"'.encode() + newline,
        f'Content-Disposition: attachment; filename="{seed}.bin"'.encode() + newline,
        b"Content-Transfer-Encoding: base64" + newline,
        newline,
        data,
        f"--{boundary}--".encode() + newline,
    ]
    return b"".join(parts)


def iter_events(directory: Path) -> Iterator[tuple[Sample, dict[str, Any]]]:
    """Each sample of `directory`/manifest.toml with its committed `<name>.json` event; a `CommandError`
    naming the file, before the first is yielded, when one is not JSON or not an SES event."""
    manifest = load_manifest(directory / "manifest.toml")
    events = [(sample, _event(directory / f"{sample.name}.json")) for sample in manifest.samples]
    yield from events


def _event(path: Path) -> dict[str, Any]:
    from forwarder.models import EventError, first_inbound

    try:
        event: dict[str, Any] = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise CommandError(f"{path} is not valid JSON: {error}") from None
    try:
        first_inbound(event)
    except EventError as error:
        raise CommandError(f"{path} is not an SES event: {error} (make events rewrites the samples)") from None
    return event
