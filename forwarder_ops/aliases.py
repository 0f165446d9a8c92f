"""`forwarder aliases ...`: the alias lists in SSM Parameter Store, edited with a diff and a question.

One parameter per alias, `<alias path>/<alias>`, type `StringList`, value = the member addresses
separated by commas (../shared/CONTRACT.md). Alias lists can live in git as a TOML or YAML file
(`[aliases] team = ["a@x.org"]` / `aliases: {team: [a@x.org]}`) and be synced with `import --prune`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from forwarder.mail.routing import (
    ALIAS_NAME,
    NOT_AN_ADDRESS,
    ON_OUR_DOMAIN,
    is_valid_address,
    skip_reason,
    split_members,
)
from forwarder_ops.errors import CommandError, read_text

# SSM's standard tier holds 4 KB per value; Intelligent-Tiering moves only a longer list to the
# advanced tier, and never fails on a parameter that is already advanced.
_TIER = "Intelligent-Tiering"
_STANDARD_BYTES = 4096  # free
_ADVANCED_BYTES = 8192  # the most one parameter holds; an advanced parameter is charged per month
FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}

Aliases = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Change:
    """One alias to create, update or delete: its members before and after."""

    alias: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def kind(self) -> str:
        if not self.before:
            return "create"
        return "delete" if not self.after else "update"

    @property
    def added(self) -> list[str]:
        old = {m.lower() for m in self.before}
        return [m for m in self.after if m.lower() not in old]

    @property
    def removed(self) -> list[str]:
        new = {m.lower() for m in self.after}
        return [m for m in self.before if m.lower() not in new]

    def as_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "change": self.kind, "added": self.added, "removed": self.removed}


# pure: names, members, plans ---------------------------------------------------------------------


def alias_name(text: str, domain: str | None = None) -> str:
    """`team`, `Team` or `team@<domain>` -> `team`; a `CommandError` for anything else."""
    name, at, name_domain = text.strip().partition("@")
    if at and domain and name_domain.lower().rstrip(".") != domain:
        raise CommandError(f"{text} is not on {domain}: give the alias name, e.g. {name}")
    name = name.lower()
    if not ALIAS_NAME.match(name):
        raise CommandError(
            f"{text!r} is not an alias name: use a-z, 0-9, '.', '_' or '-' (at most 64, no '.' first, last or "
            "twice in a row)"
        )
    return name


def unique(members: Iterable[str]) -> list[str]:
    """The members without blanks and repeats (case-insensitive), in their first order."""
    seen: set[str] = set()
    result = []
    for member in (m.strip() for m in members):
        if member and member.lower() not in seen:
            seen.add(member.lower())
            result.append(member)
    return result


def no_blanks(addresses: Sequence[str]) -> None:
    """A `CommandError` for an empty address argument: most likely an unset shell variable, and `set team ""`
    would otherwise leave the alias without members, that is delete it."""
    if any(not address.strip() for address in addresses):
        raise CommandError(
            "an ADDRESS argument is empty: give member addresses (to delete an alias: forwarder aliases remove ALIAS)"
        )


def member_problems(alias: str, members: Iterable[str], domain: str | None) -> list[str]:
    """The members the forwarder would skip: invalid addresses and addresses on our own domain (a loop)."""
    found = []
    for member in members:
        reason = skip_reason(member, domain)
        if reason == NOT_AN_ADDRESS:
            # Semicolons or one member a line (the console invites both) make one entry of several addresses.
            parts = re.split(r"[;\s]+", member.strip())
            hint = " (separate members with commas)" if len(parts) > 1 and all(map(is_valid_address, parts)) else ""
            found.append(f"{alias}: {member!r} is not a valid address{hint}")
        elif reason == ON_OUR_DOMAIN:
            found.append(f"{alias}: {member} is on {domain} itself (a forwarding loop)")
    return found


def problems(aliases: Mapping[str, Sequence[str]], domain: str | None) -> list[str]:
    """What is wrong with these alias lists: no members, invalid addresses, loops to our own domain."""
    found = []
    for alias, members in sorted(aliases.items()):
        if not unique(members):
            found.append(f"{alias}: no members")
        found += member_problems(alias, members, domain)
    return found


def refuse(found: Sequence[str]) -> None:
    """A `CommandError` naming every problem, when there is one."""
    if found:
        raise CommandError("refusing to write invalid alias lists: " + "; ".join(found))


def plan(
    current: Mapping[str, Sequence[str]], desired: Mapping[str, Sequence[str]], *, prune: bool = False
) -> list[Change]:
    """The changes that turn `current` into `desired`; with `prune`, aliases missing from `desired` go.

    An alias whose desired list is empty is deleted. Member order does not matter (every member
    gets the mail), nor does the case of an address.
    """
    changes = []
    for alias in sorted(desired):
        before, after = tuple(unique(current.get(alias, ()))), tuple(unique(desired[alias]))
        if (before or after) and {m.lower() for m in before} != {m.lower() for m in after}:
            changes.append(Change(alias, before, after))
    if prune:
        changes += [Change(a, tuple(unique(current[a])), ()) for a in sorted(set(current) - set(desired))]
    return changes


def stored_value(members: Sequence[str]) -> str:
    """An alias's parameter value: its members joined by commas."""
    return ",".join(members)


def size_problems(changes: Sequence[Change]) -> tuple[list[str], list[str]]:
    """(lists too long for one SSM parameter, lists that SSM will store as charged advanced parameters)."""
    too_long, advanced = [], []
    for change in changes:
        size = len(stored_value(change.after).encode())
        what = f"{change.alias}: {len(change.after)} members, {size:,} bytes"
        if size > _ADVANCED_BYTES:
            too_long.append(f"{what}: SSM stores at most 8 KB in one parameter: split it into two aliases")
        elif size > _STANDARD_BYTES:
            advanced.append(
                f"{what}: over SSM's 4 KB standard tier, stored as an advanced parameter (charged per month)"
            )
    return too_long, advanced


def render(changes: Sequence[Change]) -> list[str]:
    """A diff of the changes, one `+`/`-` line per member."""
    lines = []
    for change in changes:
        sign = {"create": "+", "update": "~", "delete": "-"}[change.kind]
        note = {"create": "new alias", "update": "", "delete": "delete alias"}[change.kind]
        lines.append(f"  {sign} {change.alias}" + (f"  ({note})" if note else ""))
        lines += [f"      + {m}" for m in change.added]
        lines += [f"      - {m}" for m in change.removed]
    return lines


# files -------------------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CommandError(f"{path}: use a .toml, .yaml/.yml or .json file")
    return fmt


def read_file(path: Path, domain: str | None = None) -> Aliases:
    """Alias lists from a TOML (`[aliases] team = [...]`), YAML (`aliases: {team: [...]}`) or JSON file; a name
    given as an address (`team@<domain>`) must be on `domain` when it is known."""
    fmt = file_format(path)
    try:
        # A Windows editor may start the file with a byte order mark, which the TOML and JSON parsers refuse.
        text = read_text(path).removeprefix("\ufeff")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    try:
        if fmt == "toml":
            data: Any = tomllib.loads(text)
        elif fmt == "yaml":
            data = _load_yaml(text)
        else:
            import json

            data = json.loads(text, object_pairs_hook=_unique_keys)
    except Exception as error:  # each parser has its own error type; all mean "not valid"
        raise CommandError(f"{path} is not valid {fmt.upper()}: {error}".splitlines()[0]) from None
    table = data.get("aliases", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise CommandError(f"{path}: expected an 'aliases' table of alias = [addresses]")
    aliases: Aliases = {}
    for raw_name, members in table.items():
        if not isinstance(raw_name, str):  # YAML reads yes/no/on/off, null, 010 and dates as other types
            raise CommandError(f"{path}: an alias name reads as {raw_name!r} (YAML): put the name in quotes")
        name = alias_name(raw_name, domain)
        if name in aliases:
            raise CommandError(f"{path}: alias {name} is listed twice")
        if isinstance(members, str):
            members = split_members(members)
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise CommandError(f"{path}: alias {name} must be a list of addresses")
        aliases[name] = unique(members)
    return aliases


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping of a JSON/YAML document, refused when a key repeats: the parsers keep only the last one, so an
    alias listed twice would lose its first list without a word."""
    keys = [key for key, _ in pairs]
    if repeated := sorted({str(key) for key in keys if keys.count(key) > 1}):
        raise ValueError(f"{', '.join(repeated)} listed twice")
    return dict(pairs)


def _load_yaml(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type hints
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            pairs = [(self.construct_object(k, deep=deep), v) for k, v in node.value]
            _unique_keys(pairs)
            return dict(super().construct_mapping(node, deep=deep))

    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader


def render_file(aliases: Mapping[str, Sequence[str]], fmt: str, source: str = "", env: str = "ENV") -> str:
    """The alias lists as a TOML, YAML or JSON document that `read_file` reads back."""
    data = {"aliases": {name: list(aliases[name]) for name in sorted(aliases)}}
    if fmt == "json":
        from forwarder_ops.console import dump_json

        return dump_json(data) + "\n"
    header = (
        f"# Alias lists{' of ' + source if source else ''}, written by `forwarder aliases export`.\n"
        f"# Apply edits with `forwarder aliases import FILE --config-env {env}` (--prune also deletes\n"
        "# the aliases this file does not list).\n"
    )
    if fmt == "yaml":
        import yaml

        return header + str(yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False))
    import tomli_w

    return header + tomli_w.dumps(data, multiline_strings=False)


# SSM ---------------------------------------------------------------------------------------------


class AliasWriteError(CommandError):
    """AWS refused an alias write (`why`); `undone` says what became of the writes made before it."""

    def __init__(self, why: str, undone: str) -> None:
        super().__init__(f"{why}; {undone}")
        self.why, self.undone = why, undone


class AliasStore:
    """The alias parameters directly under one SSM path."""

    def __init__(self, ssm: Any, path: str) -> None:
        self._ssm = ssm
        self.path = path.rstrip("/")
        self._names: dict[str, str] = {}
        self._values: dict[str, str] = {}  # as read, to put back what a failed apply changed
        # Aliases this command must not edit, and why: set by `read_raw`.
        self.unwritable: dict[str, str] = {}
        self.clashes: set[str] = set()  # aliases stored under several names

    def read_raw(self) -> dict[str, str]:
        """Alias name (lower case) -> the parameter's value as stored (the values of every parameter naming the
        alias, joined, as the forwarder reads them)."""
        values: dict[str, str] = {}
        names: dict[str, list[str]] = {}
        secure: list[str] = []
        paginator = self._ssm.get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=self.path, Recursive=False, WithDecryption=False):
            for parameter in page["Parameters"]:
                name = parameter["Name"].removeprefix(self.path + "/")
                if "/" in name:
                    continue
                alias, value = name.lower(), str(parameter.get("Value", ""))
                self._names[alias] = parameter["Name"]
                names.setdefault(alias, []).append(parameter["Name"])
                values[alias] = f"{values[alias]},{value}" if alias in values else value
                if parameter.get("Type") == "SecureString":
                    secure.append(alias)
        self._values = dict(values)
        self.unwritable = {}
        for alias in secure:
            # Read without decryption its value is ciphertext: an edit would write that back as a member.
            self.unwritable[alias] = (
                f"{alias} is a SecureString parameter, which the forwarder reads without decryption (no member gets "
                f"its mail): delete it with `forwarder aliases remove {alias}`, then set it again"
            )
        self.clashes = {alias for alias, found in names.items() if len(found) > 1}
        for alias in sorted(self.clashes):  # SSM names are case-sensitive, aliases are not: the forwarder reads all
            found = ", ".join(sorted(names[alias]))
            self.unwritable[alias] = (
                f"{alias} is stored as {len(names[alias])} parameters whose names differ only in case ({found}): "
                "delete all but one with `aws ssm delete-parameter --name NAME`"
            )
        return values

    def read(self) -> Aliases:
        """Alias name -> member addresses (as split by the forwarder)."""
        return {name: split_members(value) for name, value in sorted(self.read_raw().items())}

    def changed_since_read(self, aliases: Iterable[str]) -> list[str]:
        """The aliases among `aliases` whose stored value is no longer the one read: SSM writes have no condition,
        so an edit someone made while this one awaited its answer would be overwritten without a word."""
        fresh = AliasStore(self._ssm, self.path).read_raw()
        return sorted(alias for alias in set(aliases) if fresh.get(alias) != self._values.get(alias))

    def apply(self, changes: Sequence[Change], domain: str | None = None) -> None:
        """Write every change: `StringList` parameters, deleted when an alias has no members left.

        All or nothing: when AWS refuses one write (throttling, access denied, expired credentials), the
        changes already written are put back as they were and a `CommandError` says so.
        """
        done: list[Change] = []
        try:
            for change in changes:
                self._write(change.alias, change.after, domain)
                done.append(change)
        except Exception as error:
            from forwarder_ops.errors import describe_aws_error

            why = describe_aws_error(error)
            if why is None:
                raise
            raise AliasWriteError(why, self._undo(done, domain)) from None

    def _write(self, alias: str, members: Sequence[str], domain: str | None, value: str | None = None) -> None:
        name = self._names.get(alias, f"{self.path}/{alias}")
        if not members:
            self._ssm.delete_parameter(Name=name)
            return
        where = f"{alias}@{domain}" if domain else alias
        self._ssm.put_parameter(
            Name=name,
            Value=value if value is not None else stored_value(members),
            Type="StringList",
            Overwrite=True,
            Tier=_TIER,
            Description=f"Members of {where}; managed with `forwarder aliases`"[:1024],
        )

    def _undo(self, done: Sequence[Change], domain: str | None) -> str:
        """Put back the changes of a failed apply, newest first; what the error message says about them."""
        if not done:
            return "nothing was changed"
        left = []
        for change in reversed(done):
            try:
                self._write(change.alias, change.before, domain, self._values.get(change.alias))
            except Exception:  # the same refusal, most likely: say what stays changed
                left.append(f"{change.kind} {change.alias}")
        if left:
            return f"already applied and not undone: {', '.join(reversed(left))}: run the command again"
        return f"the {len(done)} change(s) applied before it were undone: nothing was changed"


# the commands ------------------------------------------------------------------------------------


class AliasCommands:
    """What `forwarder aliases <action>` does for one environment; output goes to `out`."""

    def __init__(self, target: Any, out: TextIO, err: TextIO, *, stdin: TextIO | None = None) -> None:
        self.target = target
        self.out = out
        self.err = err
        self.stdin = stdin
        self.store = AliasStore(target.client("ssm"), target.alias_path)

    @property
    def where(self) -> str:
        return f"{self.store.path} ({self.target.region})"

    def read(self) -> Aliases:
        """The alias lists, with a warning for each alias whose parameters the forwarder misreads: what is shown
        (or exported) for it is not what its members get."""
        aliases = self.store.read()
        for why in self.store.unwritable.values():
            self.err.write(f"forwarder: warning: {why}\n")
        return aliases

    def show(self, alias: str) -> list[str]:
        name = alias_name(alias, self.target.domain)
        aliases = self.read()
        if name not in aliases:
            raise CommandError(f"no alias {name} under {self.where}: see `forwarder aliases list`")
        return aliases[name]

    def set(self, alias: str, members: Sequence[str], assume_yes: bool) -> int:
        name = alias_name(alias, self.target.domain)
        no_blanks(members)
        return self._edit(lambda current: {**current, name: list(members)}, assume_yes)

    def add(self, alias: str, members: Sequence[str], assume_yes: bool) -> int:
        name = alias_name(alias, self.target.domain)
        no_blanks(members)
        return self._edit(lambda current: {**current, name: [*current.get(name, []), *members]}, assume_yes)

    def remove(self, alias: str, members: Sequence[str], assume_yes: bool) -> int:
        name = alias_name(alias, self.target.domain)
        no_blanks(members)

        def without(current: Aliases) -> Aliases:
            if members and name in self.store.unwritable:  # before "not a member": its members may be unreadable
                raise CommandError(f"cannot edit: {self.store.unwritable[name]}")
            if name not in current:
                raise CommandError(f"no alias {name} under {self.where}: see `forwarder aliases list`")
            listed = {m.lower() for m in current[name]}
            if missing := [m for m in members if m.lower() not in listed]:
                raise CommandError(f"not a member of {name}: {', '.join(missing)}")
            gone = {m.lower() for m in members}
            return {**current, name: [m for m in current[name] if members and m.lower() not in gone]}

        return self._edit(without, assume_yes)

    def import_file(self, path: Path, prune: bool, assume_yes: bool) -> int:
        desired = read_file(path, self.target.domain)
        refuse(problems(desired, self.target.domain))
        return self._edit(lambda current: desired, assume_yes, prune=prune, source=str(path))

    def export(self, path: Path | None, fmt: str) -> str:
        """The alias lists as a document; written to `path` when given."""
        env = self.target.name or "ENV"
        text = render_file(self.read(), file_format(path) if path else fmt, self.where, env)
        if path:
            from forwarder_ops.samconfig_edit import write

            write(path, text)  # all or nothing: a half-written file imported with --prune would delete aliases
        return text

    def _edit(self, edit: Any, assume_yes: bool, *, prune: bool = False, source: str = "") -> int:
        from forwarder_ops.console import Declined, confirm, printable_lines

        domain = self.target.domain
        if domain is None:
            self.err.write("forwarder: warning: the domain is unknown (give --domain): the loop check is skipped\n")
        current = self.store.read()
        changes = plan(current, edit(current), prune=prune)
        # Only a SecureString alias may be deleted (one name of several would leave the others receiving).
        if blocked := [
            self.store.unwritable[c.alias]
            for c in changes
            if c.alias in self.store.unwritable and not (c.kind == "delete" and c.alias not in self.store.clashes)
        ]:
            raise CommandError("cannot edit: " + "; ".join(blocked))
        refuse([p for c in changes for p in member_problems(c.alias, c.added, domain)])
        too_long, advanced = size_problems(changes)
        if too_long:  # AWS would refuse it only after the question, and after the send-as grants changed
            raise CommandError("cannot write: " + "; ".join(too_long))
        if not changes:
            self.out.write(f"nothing to change: {self.where} already matches{' ' + source if source else ''}\n")
            return 0
        from forwarder_ops.sendas import follow_alias_changes

        grants = follow_alias_changes(self.target, changes, self.out, self.err)  # members who leave lose send-as
        lines = render(changes) + grants.render() + [f"  note: {line}" for line in advanced]
        self.out.write(f"changes to {self.where}:\n" + printable_lines(lines) + "\n")
        try:
            confirm(f"apply {len(changes)} change(s)?", assume_yes=assume_yes, stdin=self.stdin, out=self.out)
        except Declined:
            self.out.write("nothing changed\n")
            return 1
        # Read again just before writing: the answer may have taken minutes, another operator's edit only seconds.
        if moved := self.store.changed_since_read(c.alias for c in changes):
            raise CommandError(
                f"{', '.join(moved)} changed since it was read (another edit?): nothing was written; run the "
                "command again to see the new diff"
            )
        grants.apply()  # first: a member who leaves must not keep sending as the alias if the SSM write fails
        try:
            self.store.apply(changes, domain)
        except AliasWriteError as error:
            if not grants.changes:
                raise
            # The alias writes were put back (or the message names what stays); the revocations are not.
            raise CommandError(
                f"{error.why}; alias lists: {error.undone}; the {len(grants.changes)} send-as grant change(s) stay "
                "applied: run the command again to finish"
            ) from None
        counts = {kind: sum(c.kind == kind for c in changes) for kind in ("create", "update", "delete")}
        self.out.write(
            f"applied: {counts['create']} created, {counts['update']} updated, {counts['delete']} deleted "
            "(a running forwarder sees it within FORWARDER_ALIAS_CACHE_SECONDS, 60 s by default)\n"
        )
        return 0
