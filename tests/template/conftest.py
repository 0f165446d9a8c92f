"""Fixtures of the template tests: samconfig's environments, the transformed template, the external tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.template.cloudformation import (
    ENVIRONMENTS,
    LOOKED_UP_ZONES,
    ROOT,
    Environment,
    Stack,
    load_environments,
    load_template,
    transform,
)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return load_environments()


@pytest.fixture(scope="session")
def stacks(template: dict[str, Any], environments: dict[str, Environment]) -> dict[str, Stack]:
    """Each samconfig environment's transformed template, with its parameters (and the zone ids `forwarder adopt`
    would write), region and stack name."""
    stacks = {}
    for name, env in environments.items():
        parameters = {**env.parameters, **LOOKED_UP_ZONES.get(name, {})}
        stacks[name] = Stack(transform(template, parameters, env.region), parameters, env.region, env.stack_name)
    return stacks


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest, environments: dict[str, Environment]) -> Environment:
    return environments[request.param]


@pytest.fixture
def stack(env: Environment, stacks: dict[str, Stack]) -> Stack:
    return stacks[env.name]


@pytest.fixture(scope="session")
def variant(template: dict[str, Any], environments: dict[str, Environment]) -> Any:
    """`variant("dev", ReservedConcurrency="3")`: an environment with some parameters changed."""

    def make(name: str, **changes: str) -> Stack:
        env = environments[name]
        parameters = {**env.parameters, **LOOKED_UP_ZONES.get(name, {}), **changes}
        return Stack(transform(template, parameters, env.region), parameters, env.region, env.stack_name)

    return make


def find_tool(name: str) -> str:
    """An external tool from PATH, the project's .tools/ or the test interpreter's bin, or a failure saying how
    to install it (a missing tool must fail the suite, not skip it)."""
    candidates = [
        shutil.which(name),
        str(ROOT / ".tools" / name / "bin" / name),
        str(Path(sys.executable).parent / name),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"{name} not found on PATH, in .tools/{name}/bin or next to {sys.executable}: run `make tools venv`")


def run_tool(arguments: list[str], *, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool offline and quietly; the caller asserts on the result."""
    environment = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "SAM_CLI_DISABLE_VERSION_CHECK": "1",
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
    return subprocess.run(  # fixed tool paths and arguments
        arguments, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )
