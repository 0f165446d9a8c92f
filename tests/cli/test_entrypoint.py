"""The console script itself: --help everywhere, and expected failures as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from forwarder_ops.cli import main
from tests.cli.conftest import Cli

FORWARDER = Path(sys.executable).parent / "forwarder"

COMMANDS = [
    [],
    ["run"],
    ["events"],
    ["events", "build"],
    ["aliases"],
    *[["aliases", action] for action in ("list", "show", "set", "add", "remove", "import", "export")],
    ["doctor"],
    ["smtp"],
    ["redrive"],
]


def no_aws_environment(tmp_path: Path) -> dict[str, str]:
    """An environment without any AWS credentials or configuration (and no instance metadata to ask)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    environment.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return environment


def console(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as an operator would."""
    return subprocess.run([str(FORWARDER), *argv], capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "forwarder")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])

    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: forwarder {' '.join(command)}".rstrip())


def test_console_script_help(workdir: Path) -> None:
    done = console("--help")

    assert done.returncode == 0
    for command in ("run", "events", "aliases", "doctor", "smtp", "redrive"):
        assert f"    {command} " in done.stdout


def test_missing_credentials_is_one_line_without_traceback(workdir: Path) -> None:
    # GIVEN no AWS credentials anywhere
    done = console("aliases", "list", "--config-env", "dev", env=no_aws_environment(workdir))

    # THEN one line says how to log in, exit code 2
    assert done.returncode == 2
    assert done.stderr.startswith("forwarder: no AWS credentials: run `aws configure` or `aws sso login")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_unknown_profile_is_one_line(workdir: Path) -> None:
    done = console("doctor", "--config-env", "dev", "--profile", "nobody", env=no_aws_environment(workdir))

    assert done.returncode == 2
    assert "The config profile (nobody) could not be found" in done.stderr
    assert done.stderr.count("\n") == 1


def test_unknown_environment_lists_the_known_ones(cli: Cli) -> None:
    result = cli("doctor", "--config-env", "staging")

    assert result.code == 2
    assert result.err == (
        "forwarder: no environment 'staging' in samconfig.toml (known: default, dev, local-dev, preview, prod)\n"
    )


def test_missing_samconfig_says_where_to_run(cli: Cli, workdir: Path) -> None:
    (workdir / "samconfig.toml").unlink()

    result = cli("redrive", "--config-env", "dev")

    assert result.code == 2
    assert result.err.startswith("forwarder: no samconfig.toml here: run the command in the repository root")


def test_config_file_flag_reads_another_samconfig(cli: Cli, workdir: Path, aws: None) -> None:
    (workdir / "samconfig.toml").rename(workdir / "other.toml")

    result = cli("aliases", "list", "--config-env", "dev", "--config-file", "other.toml", "--json")

    assert result.code == 0
    assert result.out.strip() == "{}"


def test_no_region_anywhere_says_what_to_give(cli: Cli, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(workdir / "no-config"))

    result = cli("aliases", "list", "--alias-path", "/email-forwarder/dev/aliases")

    assert result.code == 2
    assert result.err == "forwarder: no AWS region: give --config-env ENV (samconfig.toml) or --region REGION\n"


def test_smtp_without_a_domain_says_how_to_give_one(cli: Cli) -> None:
    result = cli("smtp", "--port", "0")

    assert result.code == 2
    assert result.err.startswith("forwarder: give the domain to accept mail for: --domain")
