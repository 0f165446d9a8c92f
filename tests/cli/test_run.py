"""`forwarder run` as an operator types it: bad input is one line on stderr and exit code 2, never a
traceback; alias files in any of the three formats; warnings where the run would mislead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_entrypoint import console
from tests.conftest import EVENTS

MAIL = EVENTS / "mail" / "booth.eml"
TEAM = "team@dev.aws-educate.tw"


@pytest.fixture
def events(workdir: Path) -> Path:
    """A working directory with the sample events' manifest and alias file, like the repository root."""
    (workdir / "events").mkdir()
    for name in ("manifest.toml", "aliases.toml"):
        shutil.copy(EVENTS / name, workdir / "events" / name)
    return workdir / "events"


def one_line_error(done: object, start: str) -> None:
    assert done.returncode == 2, done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in done.stderr  # type: ignore[attr-defined]
    assert done.stderr.count("\n") == 1, done.stderr  # type: ignore[attr-defined]
    assert done.stderr.startswith(f"forwarder: {start}"), done.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("arguments", "start"),
    [
        (["nowhere.eml", "--to", TEAM], "no such mail file: nowhere.eml"),
        ([".", "--to", TEAM], ". is a directory: give mail files"),
        ([str(MAIL), "--to", "team"], "--to team is not an address: give alias@domain"),
        ([str(MAIL), "--to", TEAM, "--to", "sales@example.org"], "the recipients are on 2 domains"),
        ([str(MAIL)], "give the recipients with --to"),
        ([str(MAIL), "--to", TEAM, "--aliases", "missing.toml"], "cannot read missing.toml"),
        ([str(MAIL), "--to", TEAM + "."], f"--to {TEAM}. is not an address"),
    ],
    ids=["missing-mail", "directory", "no-domain", "two-domains", "no-recipients", "missing-alias-file", "dot-ended"],
)
def test_run_bad_input_is_one_line_and_exit_2(events: Path, arguments: list[str], start: str) -> None:
    # GIVEN a mistake an operator makes WHEN `forwarder run` gets it THEN one line says what is wrong, exit 2
    one_line_error(console("run", *arguments), start)


@pytest.mark.parametrize(
    ("name", "text", "start"),
    [
        ("broken.toml", "[aliases\nteam = [", "broken.toml is not valid TOML"),
        ("broken.yaml", "aliases: {team: [a@x.org", "broken.yaml is not valid YAML"),
        ("broken.json", '{"aliases": ', "broken.json is not valid JSON"),
        ("empty.yaml", "aliases:\n  team: []\n", "alias team in empty.yaml has no members"),
    ],
)
def test_run_broken_or_empty_alias_file_is_one_line(events: Path, name: str, text: str, start: str) -> None:
    (events.parent / name).write_text(text)
    one_line_error(console("run", str(MAIL), "--to", TEAM, "--aliases", name), start)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("aliases.toml", '[aliases]\nteam = ["only.member@example.org"]\n'),
        ("aliases.yaml", "aliases:\n  team: [only.member@example.org]\n"),
        ("aliases.json", '{"aliases": {"team": ["only.member@example.org"]}}'),
    ],
)
def test_run_reads_toml_yaml_and_json_alias_files(events: Path, name: str, text: str) -> None:
    # GIVEN the same alias list in each format `smtp` and `aliases import` read
    (events.parent / name).write_text(text)
    # WHEN a mail is run with it THEN its one member receives
    done = console("run", str(MAIL), "--to", TEAM, "--aliases", name)
    assert done.returncode == 0, done.stderr
    assert "envelope from team@dev.aws-educate.tw to only.member@example.org" in done.stdout


def test_run_warns_of_skipped_members_and_a_foreign_domain(events: Path) -> None:
    # GIVEN an alias with an invalid member and one on the forwarding domain (a loop)
    (events.parent / "aliases.yaml").write_text(
        "aliases:\n  sales: [ok@example.org, not an address, loop@example.net]\n"
    )
    # WHEN a mail to sales@ on a domain other than the configured one (events/manifest.toml) is run
    done = console("run", str(MAIL), "--to", "sales@example.net", "--aliases", "aliases.yaml")
    # THEN it runs, and stderr warns of each skipped member and of the domain, without -v
    assert done.returncode == 0, done.stderr
    assert "to ok@example.org" in done.stdout
    warnings = done.stderr.splitlines()
    assert "forwarder: warning: --to is on example.net, not on dev.aws-educate.tw" in warnings[0]
    assert any("sales: 'not an address' is not a valid address: the forwarder skips" in w for w in warnings)
    assert any("sales: loop@example.net is on example.net itself (a forwarding loop)" in w for w in warnings)


def test_run_outbox_holds_the_last_run_only(events: Path) -> None:
    # GIVEN an outbox with a file of our own
    outbox = events.parent / "outbox"
    outbox.mkdir()
    (outbox / "keep-me.eml").write_text("mine")
    # WHEN one mail is run, then another
    for mail in (MAIL, EVENTS / "mail" / "workshop.eml"):
        assert console("run", str(mail), "--to", TEAM).returncode == 0
    # THEN the outbox holds the last run's forward only (the earlier one removed), and our own file is kept
    first = [p for p in outbox.iterdir() if p.name != "keep-me.eml"]
    assert len(first) == 1
    assert b"Booth plan" not in first[0].read_bytes()
    assert (outbox / "keep-me.eml").read_text() == "mine"


def test_run_outbox_that_is_a_file_is_one_line(events: Path) -> None:
    (events.parent / "outbox.txt").write_text("not a folder")
    one_line_error(console("run", str(MAIL), "--to", TEAM, "--outbox", "outbox.txt"), "--outbox outbox.txt is a file")


def test_version_and_the_default_alias_file_in_help(workdir: Path) -> None:
    from importlib.metadata import version

    done = console("--version")
    assert (done.returncode, done.stdout) == (0, f"forwarder {version('ses-forwarder')}\n")
    help_text = " ".join(console("run", "--help").stdout.split())
    assert "(default: events/aliases.toml" in help_text


@pytest.mark.parametrize(
    ("arguments", "start"),
    [
        (["smtp", "--domain", "x.org", "--port", "99999"], "forwarder smtp: argument --port: 99999 is not a port"),
        (["run", "--spam", "MAYBE"], "forwarder run: argument --spam: invalid choice: 'MAYBE'"),
        (["nocommand"], "forwarder: argument COMMAND: invalid choice: 'nocommand'"),
        (["aliases"], "forwarder aliases: the following arguments are required: ACTION"),
        (["events", "build", "--source", "nowhere"], "forwarder: nowhere/manifest.toml: No such file or directory"),
        (["smtp", "--domain", "x.org", "--aliases", "none.yaml"], "forwarder: cannot read none.yaml"),
    ],
    ids=["smtp-port", "run-choice", "unknown-command", "missing-action", "events-source", "smtp-aliases"],
)
def test_other_commands_bad_input_is_one_line_and_exit_2(workdir: Path, arguments: list[str], start: str) -> None:
    # GIVEN bad arguments, for argparse or for the command itself THEN one line on stderr, exit 2
    done = console(*arguments)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(start), done.stderr


def test_run_shows_a_mails_control_characters_as_escapes(cli: Cli, tmp_path: Path) -> None:
    # GIVEN a mail whose subject holds a terminal escape sequence (clear the screen, set the window title)
    mail = tmp_path / "evil.eml"
    mail.write_bytes(
        b"From: eve@example.org\r\nTo: team@dev.aws-educate.tw\r\nSubject: hi\x1b[2J\x1b]0;owned\x07\r\n\r\nbody\r\n"
    )

    # WHEN it is run through the forwarder
    result = cli("run", str(mail), "--to", "team@dev.aws-educate.tw", "--outbox", str(tmp_path / "outbox"))

    # THEN the rewritten Subject is shown with the escapes spelled out, nothing reaches the terminal raw
    assert result.code == 0, result.err
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "hi\\x1b[2J" in result.out


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("{bad", "events/spam.json is not valid JSON"),
        ('{"Records": []}', "events/spam.json is not an SES event: event.Records: empty"),
    ],
    ids=["not-json", "not-an-event"],
)
def test_run_broken_sample_event_is_one_line(events: Path, text: str, start: str) -> None:
    # GIVEN the sample events, one of them broken (a bad merge, a hand edit)
    shutil.copytree(EVENTS / "mail", events / "mail")
    for path in EVENTS.glob("*.json"):
        shutil.copy(path, events / path.name)
    (events / "spam.json").write_text(text)
    # WHEN `forwarder run` replays them THEN one line names the file and what is wrong with it, exit 2
    one_line_error(console("run"), start)


def test_run_clear_outbox_keeps_the_operators_dated_mail_files(tmp_path: Path) -> None:
    from forwarder_ops.localrun import clear_outbox

    # GIVEN an outbox with a forward an earlier run wrote, and mail files of the operator's own named by date
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "03-team-1f2e3d4c.eml").write_text("an earlier run's forward")
    for name in ("2024-01-invoice.eml", "2025-11-notes.eml", "12-draft-v2.eml"):
        (outbox / name).write_text("mine")
    # WHEN the next run clears the outbox
    removed = clear_outbox(outbox)
    # THEN only the earlier run's forward is gone
    assert removed == 1
    assert sorted(p.name for p in outbox.iterdir()) == ["12-draft-v2.eml", "2024-01-invoice.eml", "2025-11-notes.eml"]


def test_run_the_same_mail_twice_is_forwarded_twice(events: Path) -> None:
    # GIVEN the same mail given twice (SES would give each delivery its own message id)
    copy = events.parent / "copy.eml"
    shutil.copy(MAIL, copy)
    # WHEN both are run
    done = console("run", str(MAIL), str(copy), "--to", TEAM)
    # THEN each is forwarded and written, not the second taken for a retry of the first (forwarded, and nothing sent)
    assert done.returncode == 0, done.stderr
    assert len(list((events.parent / "outbox").glob("*.eml"))) == 2
    assert "2 forwarded message(s) written to outbox/" in done.stdout
