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
