"""Bad input to any command: one line on stderr naming what is wrong, exit code 2, never a traceback, nothing
half written, and no echoed text that can fake output lines or drive the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import ALIAS_PATH, Cli, client


@pytest.fixture
def seeded(aws: None) -> None:
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com,bob@gmail.com", Type="StringList")


def one_line(err: str) -> bool:
    return err.startswith("forwarder: ") and err.count("\n") == 1 and "\x1b" not in err


@pytest.mark.parametrize(
    "argv",
    [
        # a member to remove that holds a newline and a terminal escape
        ("aliases", "remove", "team", "nobody\n\x1b[2Jforwarder: applied", "--config-env", "dev", "--yes"),
        # an alias on the domain, then a fake second line
        ("aliases", "show", "team@dev.aws-educate.tw\nfake line", "--config-env", "dev"),
        # a --profile name with a newline (botocore's message echoes it)
        ("aliases", "list", "--config-env", "dev", "--profile", "no\nsuch"),
        # a --to address with a newline
        ("run", "mail.eml", "--to", "nobody\nfake line"),
    ],
)
def test_bad_input_error_is_one_line_without_control_characters(cli: Cli, seeded: None, argv: tuple[str, ...]) -> None:
    # GIVEN an argument holding a newline or an escape sequence
    # WHEN the command refuses it
    result = cli(*argv)

    # THEN the error is one line, the control characters shown as escapes, exit code 2
    assert result.code == 2
    assert one_line(result.err), result.err


def test_bad_input_parser_error_is_one_line_without_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    from forwarder_ops.cli import main

    # GIVEN a port holding a newline, which the argument parser itself refuses
    # WHEN the command runs
    with pytest.raises(SystemExit) as exited:
        main(["smtp", "--port", "1\nforwarder smtp: listening"])

    # THEN one line, exit code 2
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("forwarder smtp: ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("binary", "argv"),
    [
        ("aliases.yaml", ("aliases", "import", "aliases.yaml", "--config-env", "dev", "--yes")),
        ("other.toml", ("aliases", "list", "--config-env", "dev", "--config-file", "other.toml")),
        ("aliases.toml", ("run", "mail.eml", "--to", "team@dev.aws-educate.tw", "--aliases", "aliases.toml")),
        ("aliases.toml", ("smtp", "--domain", "dev.aws-educate.tw", "--aliases", "aliases.toml")),
        ("samconfig.toml", ("init", "--config-env", "new", "--domain", "new.example.org", "--region", "us-east-1")),
    ],
)
def test_bad_input_a_file_that_is_not_text_is_one_line(
    cli: Cli, seeded: None, workdir: Path, binary: str, argv: tuple[str, ...]
) -> None:
    # GIVEN an alias or samconfig file that holds binary data (a wrong file named, a UTF-16 export)
    (workdir / binary).write_bytes(b"\xff\xfe[\x00d\x00e\x00v\x00]\x00")
    (workdir / "mail.eml").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")

    # WHEN a command reads it
    result = cli(*argv)

    # THEN it says which file is not text, in one line, exit code 2, and nothing is written
    assert result.code == 2
    assert f"{binary} is not UTF-8 text" in result.err
    assert one_line(result.err), result.err
    assert (
        client("ssm").get_parameter(Name=f"{ALIAS_PATH}/team")["Parameter"]["Value"] == "alice@gmail.com,bob@gmail.com"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[dev]\ndeploy = "x"\n', "[dev.deploy.parameters] must be a table"),
        ('[dev.global]\nparameters = ["region=us-east-1"]\n', "[dev.global.parameters] must be a table"),
        (
            '[dev.deploy.parameters]\nregion = "us-east-1"\nparameter_overrides = "SubjectPrefix=\\"[dev"\n',
            "No closing quotation",
        ),
    ],
)
def test_bad_input_a_samconfig_of_the_wrong_shape_is_one_line(
    cli: Cli, seeded: None, workdir: Path, text: str, message: str
) -> None:
    # GIVEN a samconfig.toml that is TOML but not what SAM reads: a section that is a string, parameters
    # that are a list, an override with an unclosed quote
    (workdir / "samconfig.toml").write_text(text)

    # WHEN a command reads the environment
    result = cli("aliases", "list", "--config-env", "dev")

    # THEN one line saying what is wrong, exit code 2
    assert result.code == 2
    assert message in result.err
    assert one_line(result.err), result.err


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("99999999999999999999d", "at most 3650 days"),
        ("999999999w", "at most 3650 days"),
        ("9999-12-31T23:59:59-12:00", "between the years 1 and 9999"),
        ("0001-01-01T00:00+14:00", "between the years 1 and 9999"),
    ],
)
def test_bad_input_trace_since_beyond_the_calendar_is_one_line(cli: Cli, aws: None, since: str, message: str) -> None:
    # GIVEN a --since too far back for a timedelta, or a date whose UTC time falls off the calendar
    # WHEN tracing
    result = cli("trace", "--since", since, "--config-env", "dev", "--table", "trace")

    # THEN one line naming the option, exit code 2
    assert result.code == 2
    assert message in result.err
    assert one_line(result.err), result.err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[[", "is not valid TOML"),
        ('domain = "dev.aws-educate.tw"\n', "'event' is missing"),
        ('domain = 5\nregion = "us-east-1"\naccount = "1"\nfunction = "f"\ntimestamp = 7\nevent = []\n', "manifest"),
        ('event = "x"\n', "manifest"),
    ],
)
@pytest.mark.parametrize("command", [("run", "--events", "ev"), ("events", "build", "--source", "ev", "--out", "o")])
def test_bad_input_a_broken_sample_manifest_is_one_line(
    cli: Cli, workdir: Path, text: str, message: str, command: tuple[str, ...]
) -> None:
    # GIVEN an events directory whose manifest.toml is not TOML, lacks a key or holds the wrong types
    (workdir / "ev").mkdir()
    (workdir / "ev" / "manifest.toml").write_text(text)

    # WHEN running the samples or building their events
    result = cli(*command)

    # THEN one line naming the manifest, exit code 2
    assert result.code == 2
    assert message in result.err and "manifest.toml" in result.err
    assert one_line(result.err), result.err
