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


def test_ci_deploy_job_builds_before_it_assumes_the_role() -> None:
    # GIVEN the deploy job THEN it builds (installing what it needs) before the step that assumes the AWS role,
    # and deploys after it
    steps = workflow_steps()["deploy"]
    names = [s.get("uses", "").split("@")[0] or s.get("run", "") for s in steps]
    role = names.index("aws-actions/configure-aws-credentials")
    build = next(i for i, s in enumerate(steps) if s.get("run", "").strip() == "make build")
    deploy = next(i for i, s in enumerate(steps) if "sam deploy" in s.get("run", ""))
    assert build < role < deploy
    # AND nothing installs anything after the credentials exist
    for step in steps[role:]:
        assert not pip_installs(step.get("run", "")), step
        assert "make " not in step.get("run", ""), step


def test_ci_deploy_job_installs_only_from_hash_locked_files() -> None:
    # GIVEN what `make build` runs: the SAM CLI's install and sam build's makefile recipes
    made = recipes()
    assert made["build"] == ["$(SAM) build"]
    build_line = next(line for line in MAKEFILE.read_text().splitlines() if line.startswith("build:"))
    assert "tools" not in build_line.split("##")[0], "make build installs no checkov"
    lines = [
        line for target in ("$(SAM)", "build", *[t for t in made if t.startswith("build-")]) for line in made[target]
    ]
    installs = pip_installs("\n".join(lines)) + [
        line for step in workflow_steps()["deploy"] for line in pip_installs(step.get("run", ""))
    ]
    assert len(installs) == 2  # the SAM CLI and the layer
    for install in installs:
        # THEN each pip install is hash-checked and reads a file in which every requirement has a hash
        assert "--require-hashes" in install, install
        (path,) = re.findall(r"-r\s+(\S+)", install)
        locked = ROOT / path if (ROOT / path).exists() else ROOT / "layers" / "deps" / path
        text = locked.read_text()
        requirements = re.findall(
            r"^([A-Za-z0-9._-]+)==\S+(?: ;[^\\\n]*)? \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
        )
        listed = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
        assert len(requirements) == len(listed) > 5, path


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
