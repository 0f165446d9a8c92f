"""The GitOps deploy workflow: valid, lint-clean, least-privilege, and wired to samconfig's environments."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.template.cloudformation import ROOT, Environment
from tests.template.conftest import find_tool, run_tool
from tests.template.test_ci import MAKEFILE, pip_installs, recipes, workflow_steps

WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as True (YAML 1.1)
    document["on"] = document.pop(True, document.get("on"))
    return document


@pytest.mark.tools
def test_workflow_matches_the_github_schema() -> None:
    result = run_tool([find_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools
def test_workflow_zizmor_finds_nothing_even_pedantic() -> None:
    # GIVEN zizmor's audits (template injection, unpinned actions, credentials, permissions) WHEN run offline and
    # pedantic THEN nothing is found
    result = run_tool([find_tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", str(WORKFLOW)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_deploys_each_environment_from_its_branch(
    workflow: dict[str, Any], environments: dict[str, Environment]
) -> None:
    # GIVEN one branch per environment THEN a push to env/<name> deploys <name>, and nothing else triggers a deploy
    assert set(workflow["on"]) == {"push", "workflow_dispatch"}
    assert sorted(workflow["on"]["push"]["branches"]) == sorted(f"env/{name}" for name in environments)
    script = workflow["jobs"]["target"]["steps"][-1]["run"]
    for name in environments:
        assert f"env/{name}" in script


def test_workflow_deploy_job_uses_oidc_with_least_privilege(workflow: dict[str, Any]) -> None:
    # GIVEN the deploy job THEN it gets AWS credentials through OIDC from the environment's role, may read the
    # repository and mint an id token, and nothing else
    assert workflow["permissions"] == {}
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    for name, job in workflow["jobs"].items():
        if name != "deploy":
            assert job["permissions"] == {"contents": "read"}, name
    credentials = next(
        s for s in deploy["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials")
    )
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert "aws-access-key-id" not in credentials["with"]


def test_workflow_deploy_job_per_environment_with_approval_and_concurrency(workflow: dict[str, Any]) -> None:
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == ["target", "test"]
    assert deploy["environment"]["name"] == "${{ needs.target.outputs.environment }}"
    assert deploy["concurrency"] == {
        "group": "deploy-${{ needs.target.outputs.environment }}",
        "cancel-in-progress": False,
    }
    commands = " ".join(step.get("run", "") for step in deploy["steps"])
    assert "make build" in commands
    assert 'sam deploy --config-env "$ENVIRONMENT" --no-confirm-changeset' in commands


def test_workflow_actions_pinned_to_commits(workflow: dict[str, Any]) -> None:
    # GIVEN third-party actions THEN each is pinned to a full commit SHA, with its version in a comment
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.match(r"\s+# v\d", comment), f"{action} lacks its version comment"
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False


def test_workflow_deploy_job_builds_before_it_assumes_the_role() -> None:
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


def test_workflow_deploy_job_installs_only_from_hash_locked_files() -> None:
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


def _step(steps: list[dict[str, Any]], predicate: Any) -> int:
    (index,) = [i for i, step in enumerate(steps) if predicate(step)]
    return index


def test_workflow_deploy_job_runs_preflight_with_the_role_before_sam_deploy(workflow: dict[str, Any]) -> None:
    # GIVEN the deploy job
    deploy = workflow["jobs"]["deploy"]
    steps = deploy["steps"]
    role = _step(steps, lambda s: s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    preflight = _step(steps, lambda s: "forwarder preflight" in s.get("run", ""))
    sam_deploy = _step(steps, lambda s: "sam deploy" in s.get("run", ""))

    # THEN preflight reads the account with the deploy role, for the branch's environment, before sam deploy
    assert role < preflight < sam_deploy
    step = steps[preflight]
    assert step["run"].strip() == '.tools/ops/bin/forwarder preflight --config-env "$ENVIRONMENT"'
    assert step["env"] == {"ENVIRONMENT": "${{ needs.target.outputs.environment }}"}
    # AND its exit code decides: a finding (1) or could-not-run (2) fails the step, and nothing lets sam deploy
    # run after a failed step or lets the job pass regardless
    assert "||" not in step["run"] and ";" not in step["run"]
    for later in (step, steps[sam_deploy]):
        assert "if" not in later and "continue-on-error" not in later and "shell" not in later, later
    assert "continue-on-error" not in deploy
    assert workflow.get("defaults", {}).get("run", {}).get("shell") is None


def _hash_locked(path: str) -> None:
    """Every requirement of `path` is pinned (==) and has at least one sha256 hash."""
    text = (ROOT / path).read_text()
    requirements = re.findall(
        r"^([A-Za-z0-9._-]+)==\S+(?: ;[^\\\n]*)? \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
    )
    listed = [line for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirements) == len(listed) > 5, path


def test_workflow_deploy_job_installs_preflight_from_a_hash_lock_before_the_role() -> None:
    # GIVEN the step of the deploy job that installs what preflight runs with
    steps = workflow_steps()["deploy"]
    role = _step(steps, lambda s: s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    install = _step(steps, lambda s: s.get("run", "").strip() == "make preflight-tools")
    assert install < role

    # THEN its recipe makes the environment the preflight step calls (.tools/ops), installs the locked set with
    # hashes and without resolving anything, and the package from the checkout without its dependencies, without
    # an index and without an isolated build (which would fetch setuptools unpinned)
    lines = [line.replace("$(TOOLS)", ".tools") for line in recipes()["preflight-tools"]]
    assert lines[0] == "$(PYTHON) -m venv .tools/ops"
    locked, package = pip_installs("\n".join(lines))
    assert locked.startswith(".tools/ops/bin/python -m pip install ")
    assert {"--require-hashes", "--no-deps"} <= set(locked.split())
    (path,) = re.findall(r"-r\s+(\S+)", locked)
    assert path == "deploy/ops-requirements.txt"
    _hash_locked(path)
    assert package.startswith(".tools/ops/bin/python -m pip install ")
    assert package.split()[-1] == "."
    assert {"--no-deps", "--no-index", "--no-build-isolation"} <= set(package.split())
    # AND the lock holds the build backend that --no-build-isolation builds the package with
    assert re.search(r"^setuptools==\S+ \\$", (ROOT / path).read_text(), re.M)
