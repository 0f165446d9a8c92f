"""The template passes cfn-lint, `sam validate --lint` and checkov, and `sam build` yields a working layout.

Each tool must be installed (`make tools venv`): a missing one fails these tests rather than skipping them.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.template.cloudformation import ENVIRONMENTS, ROOT, Environment, Stack
from tests.template.conftest import find_tool, run_tool

pytestmark = pytest.mark.tools


def checkov_findings(path: Path) -> dict[str, list[dict[str, str]]]:
    """checkov's verdicts on a CloudFormation file: {"failed"|"skipped"|"passed": [{id, resource, reason}]}.

    Read from its compact text report: its JSON report crashes on some transformed templates.
    """
    checkov = find_tool("checkov")
    result = run_tool([checkov, "--skip-download", "--compact", "--framework", "cloudformation", "-f", str(path)])
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    assert "scan results" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    findings: dict[str, list[dict[str, str]]] = {"failed": [], "skipped": [], "passed": []}
    check = ""
    for line in result.stdout.splitlines():
        if match := re.match(r"Check: (CKV\w+):", line):
            check = match.group(1)
        elif match := re.match(r"\s+(PASSED|FAILED|SKIPPED) for resource: \S+\.(\w+)$", line):
            findings[match.group(1).lower()].append({"id": check, "resource": match.group(2), "reason": ""})
        elif match := re.match(r"\s+Suppress comment: (.*)$", line):
            findings["skipped"][-1]["reason"] = match.group(1)
    return findings


def test_tools_cfn_lint_clean_in_every_region(environments: dict[str, Environment]) -> None:
    # GIVEN every environment's region WHEN cfn-lint checks the template there THEN it finds nothing
    regions = sorted({env.region for env in environments.values()})
    result = run_tool([find_tool("cfn-lint"), "--regions", *regions, "--", "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_tools_sam_validate_lint_per_environment(name: str) -> None:
    # GIVEN `[<env>.validate.parameters] lint = true` WHEN `sam validate --config-env <env>` runs (offline: lint
    # needs no credentials) THEN the template is valid in that environment's region
    result = run_tool([find_tool("sam"), "validate", "--config-env", name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_tools_checkov_template_clean_and_every_skip_justified() -> None:
    # GIVEN the SAM template WHEN checkov scans it THEN nothing fails, and every skip carries its reason
    results = checkov_findings(ROOT / "template.yaml")
    assert results["passed"], "checkov ran no check"
    assert results["failed"] == []
    for check in results["skipped"]:
        assert len(check["reason"]) > 40, f"{check['id']} on {check['resource']} is skipped without a real reason"


def test_tools_checkov_skips_are_all_needed(template: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN the template without its checkov skips WHEN checkov scans it THEN exactly the skipped checks fail: no
    # skip is stale, none hides more than it says
    declared = set()
    bare = copy.deepcopy(template)
    for logical_id, resource in bare["Resources"].items():
        for skip in resource.get("Metadata", {}).pop("checkov", {}).get("skip", []):
            declared.add((skip["id"], logical_id))
    assert declared, "no checkov skips found in template.yaml"
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(bare))
    failed = {(c["id"], c["resource"]) for c in checkov_findings(path)["failed"]}
    assert failed == declared


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_tools_checkov_transformed_template_clean(name: str, stacks: dict[str, Stack], tmp_path: Path) -> None:
    # GIVEN the CloudFormation the SAM transform makes (roles, permissions, invoke config) WHEN checkov scans it
    # THEN nothing fails there either
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(stacks[name].template, default=str))
    results = checkov_findings(path)
    assert results["passed"], "checkov ran no check"
    assert results["failed"] == []


def test_tools_layer_requirements_match_the_package() -> None:
    # GIVEN the layer installs the runtime's dependencies THEN it names the same packages as pyproject.toml
    def name(requirement: str) -> str:
        return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "layers/deps/requirements.txt").read_text().splitlines()
    layer = [line for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(map(name, layer)) == sorted(map(name, project))
    assert all("==" in line for line in layer), "pin every layer requirement"


@pytest.mark.slow
def test_tools_sam_build_without_docker(tmp_path: Path) -> None:
    # GIVEN no Docker and maybe no python3.13 WHEN `sam build` runs the makefile builds THEN the functions hold the
    # `forwarder` package at their top, the custom resource its module, and the layer arm64 wheels under python/
    build = tmp_path / "build"
    result = run_tool(
        [find_tool("sam"), "build", "--build-dir", str(build), "--cache-dir", str(tmp_path / "cache")],
        timeout=480,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for function in ("ForwarderFunction", "DownloadFunction"):
        assert (build / function / "forwarder" / "app.py").is_file(), function
        assert (build / function / "forwarder" / "download.py").is_file(), function
        # the operator package (CLI, local emulator) is not part of the functions
        assert not list((build / function).rglob("forwarder_ops")), function
        assert not list((build / function).rglob("cli.py")), function
        # bytecode for Lambda's CPython 3.13 only (the code directory is read-only there)
        compiled = {p.name.split(".")[1] for p in (build / function).rglob("*.pyc")}
        assert compiled == {"cpython-313"}, (function, compiled)
    assert (build / "RuleSetActivationFunction" / "rule_set_activation.py").is_file()
    layer = next(build.glob("DependenciesLayer*"))
    python = layer / "python"
    for package in ("aws_lambda_powertools", "boto3", "aws_xray_sdk"):
        assert (python / package).is_dir(), package
    assert not (python / "pydantic").exists(), "pydantic is not on the Lambda path any more"
    assert list(python.glob("wrapt/*.cpython-313-aarch64-linux-gnu.so")), "arm64 CPython 3.13 wheels"
    assert {p.name.split(".")[1] for p in python.rglob("*.pyc")} == {"cpython-313"}
    built = (build / "template.yaml").read_text()
    assert "forwarder.app.lambda_handler" in built
