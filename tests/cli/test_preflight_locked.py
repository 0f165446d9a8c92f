"""`forwarder preflight` runs with only deploy/ops-requirements.txt installed, as the deploy job installs it.

The deploy job installs the package without its `local` extra (moto, aiosmtpd, dnspython, mail-parser, tomlkit,
PyYAML ...): an import of anything else on the preflight path, even one deep in a module that `build_parser`
loads for another command, would fail the deploy. Each test runs Python in a subprocess in which the forwarder
packages are imported fresh under an import guard that refuses what the lock does not hold.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.team_account import PLACEHOLDER_SAMCONFIG

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "ops-requirements.txt"

# `strict`: every import is checked (nothing but the standard library, the lock and our packages may load);
# otherwise only the imports the forwarder packages make (the test's own moto is loaded before the guard).
GUARD = r"""
import builtins, functools, importlib.metadata, importlib.util, json, re, sys, sysconfig

OURS = {"forwarder", "forwarder_ops"}
LOCKED = set(json.loads(sys.argv[1]))
STRICT = sys.argv[2] == "strict"
OWNERS = importlib.metadata.packages_distributions()
STDLIB = tuple({sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")})
REFUSED = []
_import = builtins.__import__


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def _stdlib(top):
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(top)  # e.g. _sysconfigdata_*, private modules of the standard library
    origin = (spec.origin or "") if spec else ""
    return origin.startswith(STDLIB) and "site-packages" not in origin


def _guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    top = name.partition(".")[0]
    if level == 0 and (STRICT or importer.partition(".")[0] in OURS):
        known = top in OURS or _stdlib(top)
        if not known and not {_normal(d) for d in OWNERS.get(top, [])} & LOCKED:
            REFUSED.append(f"{importer} imports {name}")
            raise ModuleNotFoundError(f"No module named {name!r} (not in deploy/ops-requirements.txt)", name=name)
    return _import(name, globals, locals, fromlist, level)
"""

HELP = (
    GUARD
    + r"""
builtins.__import__ = _guarded
from forwarder_ops.cli import main

try:
    main(["preflight", "--help"])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "refused": REFUSED}))
"""
)

RUN = (
    GUARD
    + r"""
import os
import boto3
from moto import mock_aws
from tests.cli.team_account import BelowMoto, seed_team_account

assert not [m for m in sys.modules if m.partition(".")[0] in OURS], "the forwarder packages must load under the guard"
builtins.__import__ = _guarded
from forwarder_ops.cli import main
from forwarder_ops.envconfig import Target

answers, original = BelowMoto(), Target.client
Target.client = lambda self, service: answers.install(original(self, service))
os.chdir(sys.argv[3])
with mock_aws():
    seed_team_account()
    boto3.client("logs", region_name="us-east-1").create_log_group(logGroupName="/aws/lambda/email-forwarder-dev/x")
    code = main(["preflight", "--config-env", "dev", "--json"])
    main(["preflight", "--config-env", "dev"])
print(json.dumps({"code": code, "refused": REFUSED}))
"""
)


def locked_distributions() -> list[str]:
    names = re.findall(r"^([A-Za-z0-9._-]+)==", LOCK.read_text(), re.M)
    return sorted({re.sub(r"[-_.]+", "-", name).lower() for name in names})


def python(script: str, *argv: str) -> tuple[int, dict[str, object], str]:
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(locked_distributions()), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    return result.returncode, json.loads(last), result.stdout + result.stderr


def test_preflight_locked_help_needs_nothing_but_the_lock() -> None:
    # GIVEN a Python in which only the standard library, the lock's packages and ours can be imported
    # WHEN the console script's parser is built (every command's module) and `preflight --help` runs
    returncode, answer, output = python(HELP, "strict")

    # THEN it prints the preflight usage and exits 0, and nothing was refused
    assert returncode == 0, output
    assert answer == {"code": 0, "refused": []}, output
    assert "usage: forwarder preflight" in output


def test_preflight_locked_full_run_imports_nothing_outside_the_lock(tmp_path: Path) -> None:
    # GIVEN the team's hand-made account in moto and the forwarder packages behind the import guard
    (tmp_path / "samconfig.toml").write_text(PLACEHOLDER_SAMCONFIG)

    # WHEN preflight reads it and reports, as JSON and as the table
    returncode, answer, output = python(RUN, "forwarder-only", str(tmp_path))

    # THEN it finds the collisions (exit 1) and no module it imported is missing from the lock
    assert returncode == 0, output
    assert answer == {"code": 1, "refused": []}, output
    assert "not ready" in output


def test_preflight_locked_guard_refuses_what_the_lock_lacks() -> None:
    # GIVEN the guard, strict or for the forwarder packages only
    for mode in ("strict", "forwarder-only"):
        # WHEN a forwarder module imports moto (the local extra, not in the lock), and then boto3 (in it)
        script = GUARD + (
            "\nbuiltins.__import__ = _guarded\n"
            "exec('import boto3', {'__name__': 'forwarder_ops.example'})\n"
            "exec('import moto', {'__name__': 'forwarder_ops.example'})\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps(locked_distributions()), mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )

        # THEN moto fails as a missing module would (so the tests above can fail), boto3 loads
        assert result.returncode == 1, mode
        assert "No module named 'moto' (not in deploy/ops-requirements.txt)" in result.stderr, mode
        assert "boto3" not in result.stderr, mode
