"""What CI and the deploy job run: deterministic (no pipe that can kill its writer with SIGPIPE) and, in the
deploy job, installed only from hash-locked files before any AWS credentials exist."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.template.cloudformation import ROOT

MAKEFILE = ROOT / "Makefile"
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
# A reader that stops before its input ends: under `set -o pipefail` the writer's SIGPIPE fails the pipeline
# at random (make 4.3 writes each --version line with its own write()).
EARLY_EXIT = re.compile(
    r"\|\s*(head\b|grep\s+(-[A-Za-z]*[qm]|--quiet|--silent|--max-count)|sed\s+(-n\s+)?['\"]?[0-9]*q|awk\b.*\bexit\b)"
)


def workflow_steps() -> dict[str, list[dict[str, Any]]]:
    document = yaml.safe_load(WORKFLOW.read_text())
    return {name: job["steps"] for name, job in document["jobs"].items()}


def recipes() -> dict[str, list[str]]:
    """The Makefile's recipe lines by target (variables unexpanded)."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in MAKEFILE.read_text().splitlines():
        if line.startswith("\t"):
            current.append(line.strip())
        elif match := re.match(r"^([^\s:=#][^:=]*):(?!=)", line):
            current = []
            for target in match.group(1).split():
                found[target] = current
    return found


def ci_scripts() -> dict[str, str]:
    scripts = {".ci/run": (ROOT / ".ci" / "run").read_text()}
    for target, lines in recipes().items():
        scripts[f"Makefile {target}"] = "\n".join(lines)
    for job, steps in workflow_steps().items():
        for number, step in enumerate(steps):
            if "run" in step:
                scripts[f"deploy.yml {job} step {number}"] = step["run"]
    return scripts


def test_ci_scripts_pipe_into_no_reader_that_stops_early() -> None:
    # GIVEN every script CI runs (.ci/run, the Makefile's recipes, the workflow's run steps)
    # THEN none pipes into head, grep -q/-m or the like (the writer may die of SIGPIPE under pipefail)
    scripts = ci_scripts()
    assert ".ci/run" in scripts and "Makefile build" in scripts
    offending = {name: line for name, text in scripts.items() for line in text.splitlines() if EARLY_EXIT.search(line)}
    assert offending == {}


@pytest.mark.parametrize("line", ["make --version | head -n 1", "x | grep -q y", "x |grep -m1 y", "x | sed q"])
def test_ci_early_exit_pattern_finds_the_known_forms(line: str) -> None:
    assert EARLY_EXIT.search(line)


def pip_installs(text: str) -> list[str]:
    return [line for line in text.replace("\\\n", " ").splitlines() if re.search(r"\bpip\b.*\binstall\b", line)]


def test_ci_deploy_lock_pins_the_makefile_sam_version() -> None:
    version = re.search(r"^SAM_VERSION := (\S+)$", MAKEFILE.read_text(), re.M)
    assert version is not None
    text = (ROOT / "deploy" / "requirements.txt").read_text()
    assert re.search(rf"^aws-sam-cli=={re.escape(version.group(1))} \\", text, re.M)
    assert f"aws-sam-cli=={version.group(1)}" in (ROOT / "deploy" / "requirements.in").read_text()


def test_ci_layer_lock_pins_the_layer_requirements() -> None:
    # GIVEN the layer's pins (requirements.txt) THEN its hash lock pins the same versions
    pins = [
        line.split("[")[0].split("==")[0] + "==" + line.split("==")[1]
        for line in (ROOT / "layers/deps/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lock = (ROOT / "layers/deps/requirements.lock").read_text()
    for pin in pins:
        assert re.search(rf"^{re.escape(pin)} \\", lock, re.M), pin


def test_ci_ops_lock_pins_what_pyproject_asks_for_preflight() -> None:
    # GIVEN what the deploy job installs for `forwarder preflight` (deploy/ops-requirements.in)
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {
        Requirement(r).name: Requirement(r)
        for r in [
            *project["project"]["dependencies"],
            *project["project"]["optional-dependencies"]["local"],
            *project["build-system"]["requires"],
        ]
    }
    wanted = [
        Requirement(line)
        for line in (ROOT / "deploy" / "ops-requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lock = (ROOT / "deploy" / "ops-requirements.txt").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", lock, re.M))
    assert {r.name for r in wanted} == {"boto3", "pydantic-settings", "setuptools"}
    for requirement in wanted:
        # THEN each has pyproject.toml's specifier (a dependency, the local extra or the build backend) and its
        # pinned version satisfies it
        assert requirement.specifier == declared[requirement.name].specifier, requirement
        assert requirement.specifier.contains(pinned[requirement.name]), requirement


def prerequisites() -> dict[str, list[str]]:
    """The Makefile's prerequisites by target (normal and order-only, variables unexpanded)."""
    found: dict[str, list[str]] = {}
    for line in MAKEFILE.read_text().splitlines():
        if match := re.match(r"^([^\s:=#][^:=]*):(?!=)(.*)$", line):
            names = [name for name in match.group(2).split("##")[0].split() if name != "|"]
            for target in match.group(1).split():
                found.setdefault(target, []).extend(names)
    return found


def test_ci_make_deploy_installs_nothing_unpinned() -> None:
    # GIVEN `make deploy` and `make preflight`, run from a laptop that holds the operator's AWS credentials
    needs = prerequisites()
    for goal in ("deploy", "preflight"):
        # WHEN their prerequisites are followed to the end
        seen: set[str] = set()
        todo = [goal]
        while todo:
            target = todo.pop()
            if target not in seen:
                seen.add(target)
                todo.extend(needs.get(target, []))
        # THEN none installs from the index without hashes (the .venv's `pip install -e ".[local]"`)
        unpinned = seen & {"venv", "venv-local", "$(BIN)/.installed", "$(BIN)/.installed-local", "$(BIN)/python"}
        assert not unpinned, (goal, sorted(unpinned))
        assert "preflight-tools" in seen, goal
    # AND the preflight they run is the hash-locked one in .tools/ops, as in the deploy job
    assert recipes()["preflight"] == ["$(TOOLS)/ops/bin/forwarder preflight --config-env $(ENV)"]
