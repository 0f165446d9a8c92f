"""Bad input to any command: one line on stderr naming what is wrong, exit code 2, never a traceback, nothing
half written, and no echoed text that can fake output lines or drive the terminal."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import ALIAS_PATH, DOMAIN, Cli, Result, client
from tests.cli.test_aliases import stored
from tests.conftest import EVENTS


@pytest.fixture
def seeded(aws: None) -> None:
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com,bob@gmail.com", Type="StringList")


def one_line(err: str) -> bool:
    return err.startswith("forwarder: ") and err.count("\n") == 1 and "\x1b" not in err


def assert_refused(result: Result, *words: str) -> None:
    """The command refused its input: exit code 2, and one line on stderr that holds each of `words`."""
    assert result.code == 2, result.err
    assert all(word in result.err for word in words), result.err
    assert one_line(result.err), result.err


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
    assert_refused(result)


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
    assert_refused(result, f"{binary} is not UTF-8 text")
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
    assert_refused(result, message)


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
    assert_refused(result, message)


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
    assert_refused(result, message, "manifest.toml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('recipients = ["team@dev.aws-educate.tw"]\n', 'recipients = "team@dev.aws-educate.tw"\n', "recipients"),
        ('spam = "FAIL"', 'spam = "fail"', "spamVerdict.status: 'fail' is not one of"),
        ('dmarc_policy = "reject"', 'dmarc_policy = "p=reject"', "dmarcPolicy: 'p=reject' is not one of"),
    ],
    ids=["recipients-as-a-string", "lowercase-verdict", "unknown-dmarc-policy"],
)
def test_bad_input_a_sample_that_makes_no_ses_event_is_one_line(
    cli: Cli, workdir: Path, old: str, new: str, message: str
) -> None:
    # GIVEN the sample manifest with one sample edited into something SES never sends (a string of
    # recipients would be split into letters, a verdict or policy SES does not use would be refused by the handler)
    (workdir / "ev").mkdir()
    (workdir / "ev" / "mail").symlink_to(EVENTS / "mail")
    text = (EVENTS / "manifest.toml").read_text()
    assert old in text
    (workdir / "ev" / "manifest.toml").write_text(text.replace(old, new, 1))

    # WHEN building the events
    result = cli("events", "build", "--source", "ev", "--out", "o")

    # THEN one line naming the manifest and what is wrong, exit code 2, and no event written
    assert_refused(result, message, "manifest.toml")
    assert not (workdir / "o").exists() or not any((workdir / "o").iterdir())


def hostile_mail() -> bytes:
    """A mail whose sender writes terminal control sequences and a line break into what the commands show."""

    def word(text: bytes) -> bytes:
        return b"=?utf-8?b?" + base64.b64encode(text) + b"?="

    return (
        b"From: " + word(b"Eve\x1b[8m") + b" <eve@example.org>\r\n"
        b"To: team@dev.aws-educate.tw\r\n"
        b"Subject: hi\x1b[2J\x1b]0;owned\x07 " + word(b"\x1b[2J\nforwarder: fake line") + b"\r\n"
        b"Authentication-Results: mx.example.org; spf=pass\x1b[2J\r\n"
        b"Message-ID: <a\x1b[2J@example.org>\r\n\r\nbody\r\n"
    )


def test_bad_input_inspect_shows_a_mails_control_characters_as_escapes(cli: Cli, workdir: Path) -> None:
    # GIVEN a received mail whose subject, sender and headers hold escape sequences
    (workdir / "evil.eml").write_bytes(hostile_mail())

    # WHEN the operator inspects it
    result = cli("inspect", "evil.eml", "--region", "us-east-1")

    # THEN nothing reaches the terminal as a control character; the escapes are shown
    assert result.code == 0
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "\\x1b[2J" in result.out


def test_bad_input_trace_shows_a_mails_control_characters_as_escapes(cli: Cli) -> None:
    from forwarder_ops.local import TRACE_TABLE, embedded_aws

    # GIVEN a forwarded mail with a hostile subject, traced with subjects on
    subjects = {"FORWARDER_TRACE_SUBJECTS": "true"}
    with embedded_aws(DOMAIN, {"team": ["alice@gmail.com"]}, trace=True, settings=subjects) as env:
        result, _ = env.deliver(hostile_mail(), [f"team@{DOMAIN}"], source="eve@example.org")
        message_id = result["outcomes"][0]["message_id"]

        # WHEN the operator traces it
        shown = cli("trace", message_id, "--config-env", "dev", "--table", TRACE_TABLE)

    # THEN the subject is on its line, its control characters shown as escapes
    assert "hi\\x1b[2J" in shown.out
    assert "\x1b" not in shown.out and "\x07" not in shown.out
    assert not any(line.startswith("forwarder: fake line") for line in shown.out.splitlines())


def test_bad_input_alias_members_stored_with_control_characters_are_shown_as_escapes(cli: Cli, aws: None) -> None:
    # GIVEN an alias edited in the SSM console, its member holding an escape sequence and a line break
    client("ssm").put_parameter(
        Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com,\x1b[2Jmallory@evil.example\nfake", Type="StringList"
    )

    # WHEN listing, showing and then replacing its members
    listing = cli("aliases", "list", "--config-env", "dev")
    shown = cli("aliases", "show", "team", "--config-env", "dev")
    edited = cli("aliases", "set", "team", "bob@gmail.com", "--config-env", "dev", "--yes")

    # THEN each shows the escapes, not the control characters, and no fake line
    for result in (listing, shown, edited):
        assert result.code == 0, result.err
        assert "\x1b" not in result.out, result.out
        assert "\\x1b[2Jmallory@evil.example\\nfake" in result.out


@pytest.mark.parametrize(
    "argv",
    [
        ("aliases", "set", "team", ""),
        ("aliases", "set", "team", " ", "carol@gmail.com"),
        ("aliases", "add", "team", ""),
        ("aliases", "remove", "team", ""),
    ],
)
def test_bad_input_an_empty_address_argument_changes_nothing(cli: Cli, seeded: None, argv: tuple[str, ...]) -> None:
    # GIVEN an alias with members, and an address argument that is empty (`set team "$MEMBERS"`, unset)
    # WHEN editing it with --yes
    result = cli(*argv, "--config-env", "dev", "--yes")

    # THEN refused in one line, exit code 2, and the alias keeps its members (set used to delete it)
    assert_refused(result, "ADDRESS argument is empty")
    assert (
        client("ssm").get_parameter(Name=f"{ALIAS_PATH}/team")["Parameter"]["Value"] == "alice@gmail.com,bob@gmail.com"
    )


class RefusingSsm:
    """moto's SSM, but AWS refuses the writes numbered in `refused` (throttling, a policy, a token that expires
    in the middle of an import)."""

    def __init__(self, code: str, refused: Container[int]) -> None:
        self._client = client("ssm")
        self.code = code
        self.refused = refused
        self.writes = 0

    def _write(self, operation: str, call: Any, **params: Any) -> Any:
        from botocore.exceptions import ClientError

        self.writes += 1
        if self.writes in self.refused:
            raise ClientError({"Error": {"Code": self.code, "Message": "Rate exceeded"}}, operation)
        return call(**params)

    def put_parameter(self, **params: Any) -> Any:
        return self._write("PutParameter", self._client.put_parameter, **params)

    def delete_parameter(self, **params: Any) -> Any:
        return self._write("DeleteParameter", self._client.delete_parameter, **params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_bad_input_an_import_refused_half_way_is_undone(
    cli: Cli, seeded: None, workdir: Path, client_overrides: dict[str, Any]
) -> None:
    # GIVEN an import of three changes (create a, update team, create z), and AWS throttling the second write
    (workdir / "aliases.toml").write_text(
        '[aliases]\na = ["a@gmail.com"]\nteam = ["carol@gmail.com"]\nz = ["z@gmail.com"]\n'
    )
    before = stored()
    client_overrides["ssm"] = RefusingSsm("ThrottlingException", refused={2})

    # WHEN importing
    result = cli("aliases", "import", "aliases.toml", "--config-env", "dev", "--yes")

    # THEN the first change is put back: nothing half applied, and one line says so
    assert_refused(result, "ThrottlingException", "nothing was changed")
    assert stored() == before


def test_bad_input_an_import_that_cannot_be_undone_says_what_stays(
    cli: Cli, seeded: None, workdir: Path, client_overrides: dict[str, Any]
) -> None:
    # GIVEN an import whose second write, and then every write, AWS refuses (the credentials expired)
    (workdir / "aliases.toml").write_text('[aliases]\na = ["a@gmail.com"]\nteam = ["carol@gmail.com"]\n')
    client_overrides["ssm"] = RefusingSsm("ExpiredToken", refused=range(2, 100))

    # WHEN importing
    result = cli("aliases", "import", "aliases.toml", "--config-env", "dev", "--yes")

    # THEN the one line names the change that stays applied
    assert_refused(result, "expired", "not undone: create a")


def test_bad_input_an_export_that_cannot_finish_leaves_the_file_as_it_was(
    cli: Cli, seeded: None, workdir: Path, fill_disk: Callable[[], None]
) -> None:
    # GIVEN the aliases file in git, and a disk that fills up half way through any file write
    (workdir / "aliases.toml").write_text('[aliases]\nteam = ["alice@gmail.com", "bob@gmail.com"]\n')
    before = (workdir / "aliases.toml").read_bytes()
    fill_disk()

    # WHEN exporting over it
    result = cli("aliases", "export", "aliases.toml", "--config-env", "dev")

    # THEN one line, exit code 2, and the file is whole (a truncated one, imported with --prune, deletes aliases)
    assert_refused(result)
    assert result.err.startswith("forwarder: cannot write aliases.toml")
    assert (workdir / "aliases.toml").read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == ["aliases.toml", "samconfig.toml"]


def test_bad_input_json_output_escapes_the_control_characters_json_keeps() -> None:
    from forwarder_ops.console import dump_json

    # GIVEN data holding what `json` writes as it is: a C1 CSI (some terminals take it for ESC [), DEL, a line
    # separator, a bidirectional override; and a C0 escape, which `json` escapes itself
    data = {"member": "a\x9b2J\x7fb\u2028c\u202ed\x1b[0m@example.org", "name": "陳大文"}

    # WHEN it is written as a command's --json output
    text = dump_json(data)

    # THEN none of them is written raw, non-ASCII text stays readable, and JSON reads back the same data
    assert not any(char in text for char in "\x9b\x7f\u2028\u202e\x1b")
    assert "陳大文" in text
    assert json.loads(text) == data
