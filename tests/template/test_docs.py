"""The documentation works as written: its links lead somewhere, its commands run on a fresh checkout, and
what it says of the template and the Makefile is what they do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.template.cloudformation import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, re.M)}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_docs_relative_links_and_anchors_resolve(document: Path) -> None:
    # GIVEN every relative link of the document THEN its file exists and its #anchor is a heading there
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def shell_lines(path: Path) -> list[str]:
    blocks = re.findall(r"```(?:sh|bash|shell)\n(.*?)```", path.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_docs_commands_run_as_written(document: Path) -> None:
    # GIVEN the shell commands the document shows THEN none needs `sam` on PATH (it lives in .tools/sam/bin:
    # the Makefile's targets call it there), and each make target it names exists
    makefile = (ROOT / "Makefile").read_text()
    for line in shell_lines(document):
        for command in re.split(r"&&|;|\|", line.split("#")[0]):
            words = command.split()
            assert not words or words[0] != "sam", f"{document.name}: {line}"
            if words[:1] == ["make"]:
                for target in (w for w in words[1:] if "=" not in w and not w.startswith("-")):
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"


def test_docs_make_lint_row_names_every_tool_of_the_recipe() -> None:
    # GIVEN the tools `make lint` runs THEN the README's row for it names each of them
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `make lint`"))
    for tool, called in (
        ("ruff", "ruff"),
        ("mypy", "mypy"),
        ("cfn-lint", "cfn-lint"),
        ("sam validate", "$(SAM) validate"),
        ("checkov", "$(CHECKOV)"),
        ("check-jsonschema", "check-jsonschema"),
        ("zizmor", "zizmor"),
    ):
        assert called in recipe.group(1), tool
        assert tool in row, tool


def test_docs_say_x_ray_is_opt_in_as_the_template_does() -> None:
    # GIVEN the template traces only when asked (Tracing defaults to Disabled)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    assert template["Parameters"]["Tracing"]["Default"] == "Disabled"
    # THEN no document says tracing is active, and where the X-Ray policy is named, so is the parameter
    for document in DOCUMENTS:
        text = " ".join(document.read_text().split())
        assert "tracing is active" not in text.lower(), document.name
        if "AWSXrayWriteOnlyAccess" in text:
            assert "`Tracing` parameter is `Active`" in text, document.name


def readme_section(title: str) -> str:
    """One `## title` section of the README, up to the next `## ` heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_docs_settings_table_lists_every_setting_with_its_default() -> None:
    # GIVEN the settings of the three functions (the forwarder's default where two share a variable)
    from dataclasses import MISSING, fields

    from forwarder.config import DeliverySettings, DownloadSettings, Settings

    expected: dict[str, object] = {}
    for kind in (Settings, DownloadSettings, DeliverySettings):
        for setting in fields(kind):
            expected.setdefault(f"FORWARDER_{setting.name.upper()}", setting.default)
    rows = {m[1]: m[0] for m in re.finditer(r"^\| `(FORWARDER_[A-Z_]+)` \|.*$", readme_section("Settings"), re.M)}

    # THEN the table has a row for each and no other, and each row's last column gives the default
    assert set(rows) == set(expected)
    for name, default in expected.items():
        shown = rows[name].rstrip(" |").rsplit("|", 1)[1]
        if default is MISSING:
            assert "required" in shown, name
        elif default is None:
            assert "unset" in shown, name
        elif isinstance(default, bool):
            assert f"`{str(default).lower()}`" in shown, name
        else:
            assert f"`{default}`" in shown or (default == "" and '`""`' in shown), name


def test_docs_command_table_names_every_command() -> None:
    # GIVEN the commands `forwarder --help` lists THEN the README's command table has a row for each
    import argparse

    from forwarder_ops.cli import build_parser

    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    table = [line for line in readme_section("Operating: the `forwarder` command").splitlines() if line[:3] == "| `"]
    for command in commands.choices:
        assert any(line.startswith(f"| `forwarder {command}") for line in table), command


def test_docs_name_every_drop_reason_and_metric() -> None:
    # GIVEN the policy's drop reasons and the metrics both functions emit
    from forwarder.mail.policy import DropReason
    from forwarder.trace import PROBLEMS

    section = readme_section("What is not forwarded")
    emitted = re.findall(r'name="([A-Z]\w+)"', (ROOT / "forwarder" / "observability.py").read_text())
    emitted += ["MemberEvents", *(f"Member{state.capitalize()}" for state in PROBLEMS)]
    # THEN each reason has a row and each metric is named as emitted
    for reason in DropReason:
        assert f"| `{reason}` |" in section, reason
    for metric in emitted:
        assert f"`{metric}`" in section, metric


def test_docs_architecture_names_resources_as_the_template_does() -> None:
    # GIVEN the template's resources and the names in the README's diagram
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=yaml.BaseLoader)
    resources: dict[str, dict[str, object]] = template["Resources"]
    diagram = re.search(r"```mermaid\n(.*?)```", readme_section("Architecture"), re.S)
    assert diagram is not None
    names = set(re.findall(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b", diagram.group(1)))
    kinds = ("Function", "Table", "Topic", "Queue", "Bucket", "Alarm", "RuleSet", "Rule", "Identity", "Layer")
    verbs = ("Get", "Set", "Put", "Batch", "Send", "Update", "Delete")
    claimed = {n for n in names if n.endswith(kinds) and not n.startswith(verbs)}
    # THEN every resource-like name in it is a resource, and every function, table, topic, queue and bucket is in it
    assert claimed - set(resources) == set()
    shown = {
        "AWS::Serverless::Function",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
    }
    missing = {name for name, resource in resources.items() if resource["Type"] in shown and name not in names}
    assert missing == set()
