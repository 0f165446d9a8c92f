"""Edits of samconfig.toml that keep everything else of the file: comments, order, other environments.

`forwarder adopt` changes items of one environment's `parameter_overrides`; `forwarder init` appends a new
environment. tomlkit keeps the document's formatting; only the touched items change.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forwarder_ops.errors import CommandError


def _parse(text: str, path: Path) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text)
    except ParseError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None


def _key(item: str) -> str:
    """The parameter an override item sets (`Key=Value` or `ParameterKey=Key,ParameterValue=Value`)."""
    if item.startswith("ParameterKey="):
        return item.removeprefix("ParameterKey=").partition(",")[0].strip()
    return item.partition("=")[0].strip()


def _item(key: str, value: str) -> str:
    return f"{key}={value}"


def set_overrides(text: str, path: Path, environment: str, changes: Mapping[str, str | None]) -> str:
    """`text` with `changes` applied to the environment's parameter_overrides (None removes the item).

    The list form keeps its comments and order: a changed item is replaced where it is, a new one appended.
    The string form is rewritten as one string.
    """
    import tomlkit

    document = _parse(text, path)
    sections = document.get(environment)
    if not isinstance(sections, dict):
        known = sorted(k for k, v in document.items() if isinstance(v, dict))
        raise CommandError(f"no environment {environment!r} in {path} (known: {', '.join(known) or 'none'})")
    holder = None
    for section in ("deploy", "global"):
        parameters = sections.get(section, {}).get("parameters", {})
        if "parameter_overrides" in parameters:
            holder = parameters
            break
    if holder is None:
        deploy = sections.setdefault("deploy", tomlkit.table())
        holder = deploy.setdefault("parameters", tomlkit.table())
        empty = tomlkit.array()
        empty.multiline(True)
        holder["parameter_overrides"] = empty
    overrides = holder["parameter_overrides"]
    if not isinstance(overrides, str | list):
        raise CommandError(f"parameter_overrides of {environment} in {path} is neither a string nor a list")
    if isinstance(overrides, str):
        items = shlex.split(overrides)
        holder["parameter_overrides"] = " ".join(_quoted(item) for item in _changed(items, changes))
    else:
        _change_array(overrides, changes)
    result: str = tomlkit.dumps(document)
    return result


def _quoted(item: str) -> str:
    """One item of the string form as SAM reads it: `Key=value`, or `Key="a value"` when it holds blanks."""
    key, _, value = item.partition("=")
    if value and not any(c.isspace() or c in "\"'\\" for c in value):
        return item
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def _changed(items: Sequence[str], changes: Mapping[str, str | None]) -> list[str]:
    result = []
    for item in items:
        key = _key(item)
        if key not in changes:
            result.append(item)
        elif changes[key] is not None:
            result.append(_item(key, str(changes[key])))
    present = {_key(i) for i in items}
    result += [_item(k, v) for k, v in changes.items() if v is not None and k not in present]
    return result


def _change_array(array: Any, changes: Mapping[str, str | None]) -> None:
    present = set()
    for index in reversed(range(len(array))):
        key = _key(str(array[index]))
        if key not in changes:
            continue
        present.add(key)
        value = changes[key]
        if value is None:
            del array[index]
        else:
            array[index] = _item(key, value)
    for key, value in changes.items():
        if value is not None and key not in present:
            array.append(_item(key, value))


def add_environment(
    text: str,
    path: Path,
    environment: str,
    *,
    stack_name: str,
    region: str,
    overrides: Sequence[str],
    confirm_changeset: bool,
    comment: str,
) -> str:
    """`text` with a new environment in the shape of the others: global (stack, region), build, deploy."""
    import tomlkit

    document = _parse(text, path) if text.strip() else tomlkit.document()
    if "version" not in document:
        document["version"] = 0.1
    if environment in document:
        raise CommandError(
            f"environment {environment!r} already exists in {path}: `forwarder adopt --config-env {environment}` "
            "updates it"
        )
    sections = tomlkit.table(is_super_table=True)
    global_ = tomlkit.table()
    global_["stack_name"] = stack_name
    global_["region"] = region
    sections.append("global", _parameters(global_))
    build = tomlkit.table()
    build["cached"] = False
    build["parallel"] = True
    sections.append("build", _parameters(build))
    deploy = tomlkit.table()
    deploy["capabilities"] = "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"
    deploy["resolve_s3"] = True
    deploy["s3_prefix"] = stack_name
    deploy["confirm_changeset"] = confirm_changeset
    deploy["fail_on_empty_changeset"] = False
    deploy["tags"] = f"Project=email-forwarder Environment={environment}"
    array = tomlkit.array()
    array.extend(overrides)
    array.multiline(True)
    deploy["parameter_overrides"] = array
    sections.append("deploy", _parameters(deploy))
    document.add(tomlkit.nl())
    document.add(tomlkit.comment(comment))
    document.append(environment, sections)
    result: str = tomlkit.dumps(document)
    return result


def _parameters(table: Any) -> Any:
    import tomlkit

    outer = tomlkit.table(is_super_table=True)
    outer.append("parameters", table)
    return outer


def diff(before: str, after: str, path: Path) -> str:
    """A unified diff of the file, for the operator to review before it is written."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"{path} (now)", f"{path} (new)"
    )
    return "".join(lines)


def write(path: Path, text: str) -> None:
    """Replace the file with `text` all at once: a failed write (a full disk, an interrupt) leaves it as it was.

    The text goes to a temporary file beside it, which then takes its place (a rename within the folder).
    """
    import os
    import shutil

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"cannot write {path} ({error.strerror or error}): it is unchanged") from None
