"""Terminal helpers for the operator commands: confirmation, tables, JSON."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from forwarder_ops.errors import CommandError

# C0 and C1 control characters and DEL (a newline fakes an extra line, ESC starts a terminal control sequence),
# the Unicode line separators and the bidirectional overrides (which reorder what is shown).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Those of them that `json.dumps` writes unescaped (it escapes C0 itself; the newlines left are its own indentation).
_KEPT_BY_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe to print on one terminal line: each control character shown as its escape (`\\n`, `\\x1b`).

    Echoed input and what mail and AWS say (subjects, member lists, error messages) may hold them.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class Declined(Exception):
    """The operator answered no: nothing was changed."""


def confirm(question: str, *, assume_yes: bool, stdin: TextIO | None = None, out: TextIO | None = None) -> None:
    """Ask `question` on the terminal; return on yes, raise `Declined` on no.

    Without a terminal (a script, CI) there is nobody to ask: refuse unless --yes was given.
    """
    if assume_yes:
        return
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    if not stdin.isatty():
        raise CommandError("stdin is not a terminal, so nobody can confirm: re-run with --yes to apply")
    out.write(f"{question} [y/N] ")
    out.flush()
    if stdin.readline().strip().lower() not in {"y", "yes"}:
        raise Declined


def printable_lines(lines: Iterable[str]) -> str:
    """Lines for the terminal, each made `printable`: a field cannot fake a line or send a control sequence."""
    return "\n".join(printable(line) for line in lines)


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None, indent: str = "") -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is not padded.

    The cells are made `printable`: they hold what mail, AWS and other people wrote (members, subjects, reasons).
    """
    grid = [[printable(cell) for cell in header]] if header else []
    grid += [[printable(cell) for cell in row] for row in rows]
    if not grid:
        return []
    widths = [max(len(row[i]) for row in grid if i < len(row)) for i in range(max(len(r) for r in grid))]
    lines = []
    for row in grid:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def dump_json(data: Any) -> str:
    """The commands' `--json` output: indented, non-ASCII kept, anything else as its text. The control characters
    `json` leaves as they are (C1, DEL, line separators, bidirectional overrides: a C1 CSI drives some terminals
    as ESC [ does) are written as `\\uXXXX` escapes, which JSON reads back as the same text."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return _KEPT_BY_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def print_json(data: Any) -> None:
    print(dump_json(data))
