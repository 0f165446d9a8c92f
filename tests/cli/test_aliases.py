"""`forwarder aliases ...` against SSM in moto, through the CLI's entry point."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from forwarder_ops.aliases import read_file
from tests.cli.conftest import ALIAS_PATH, Cli, client
from tests.conftest import EVENTS


def parameter(name: str, path: str = ALIAS_PATH) -> dict[str, str] | None:
    found = client("ssm").get_parameters(Names=[f"{path}/{name}"])["Parameters"]
    return found[0] if found else None


def stored() -> dict[str, str]:
    """Every alias parameter's name below ALIAS_PATH and its value."""
    found = client("ssm").get_parameters_by_path(Path=ALIAS_PATH, Recursive=True)["Parameters"]
    return {p["Name"]: p["Value"] for p in found}


def members(name: str, path: str = ALIAS_PATH) -> list[str] | None:
    found = parameter(name, path)
    return found["Value"].split(",") if found else None


@pytest.fixture
def seeded(aws: None) -> None:
    ssm = client("ssm")
    ssm.put_parameter(Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com, bob@gmail.com", Type="StringList")
    ssm.put_parameter(Name=f"{ALIAS_PATH}/tech", Value="carol@example.org", Type="StringList")
    ssm.put_parameter(Name=f"{ALIAS_PATH}/nested/deeper", Value="x@example.org", Type="StringList")
    ssm.put_parameter(Name="/email-forwarder/prod/aliases/team", Value="prod@example.org", Type="StringList")


def test_aliases_list_shows_each_alias_of_the_environment(cli: Cli, seeded: None) -> None:
    # WHEN listing the dev aliases (alias path and region from samconfig.toml)
    result = cli("aliases", "list", "--config-env", "dev")

    # THEN both aliases directly under the path are shown, nothing from elsewhere
    assert result.code == 0
    assert f"2 alias(es) under {ALIAS_PATH} (us-east-1)" in result.out
    assert "team   alice@gmail.com, bob@gmail.com" in result.out
    assert "deeper" not in result.out
    assert "prod@example.org" not in result.out


def test_aliases_list_json_is_a_mapping_of_members(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "list", "--config-env", "dev", "--json")

    assert json.loads(result.out) == {"team": ["alice@gmail.com", "bob@gmail.com"], "tech": ["carol@example.org"]}


def test_aliases_show_prints_one_member_per_line(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "show", "team@dev.aws-educate.tw", "--config-env", "dev")

    assert result.code == 0
    assert result.out.splitlines() == ["alice@gmail.com", "bob@gmail.com"]


def test_aliases_show_json(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "show", "Team", "--config-env", "dev", "--json")

    assert json.loads(result.out) == {"alias": "team", "members": ["alice@gmail.com", "bob@gmail.com"]}


def test_aliases_show_unknown_alias_is_one_line_and_exit_2(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "show", "nobody", "--config-env", "dev")

    assert result.code == 2
    assert result.err == f"forwarder: no alias nobody under {ALIAS_PATH} (us-east-1): see `forwarder aliases list`\n"


def test_aliases_set_shows_the_diff_and_writes_a_string_list(cli: Cli, seeded: None) -> None:
    # WHEN replacing team's members without asking
    result = cli("aliases", "set", "team", "alice@gmail.com", "dave@gmail.com", "--config-env", "dev", "--yes")

    # THEN the diff names who joins and who leaves, and SSM holds the new list as a StringList
    assert result.code == 0
    assert "  ~ team\n      + dave@gmail.com\n      - bob@gmail.com\n" in result.out
    assert "applied: 0 created, 1 updated, 0 deleted" in result.out
    stored = parameter("team")
    assert stored is not None
    assert stored["Type"] == "StringList"
    assert stored["Value"] == "alice@gmail.com,dave@gmail.com"


def test_aliases_set_refuses_an_invalid_address(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "set", "team", "alice@gmail.com", "not-an-address", "--config-env", "dev", "--yes")

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "'not-an-address' is not a valid address" in result.err
    assert members("team") == ["alice@gmail.com", " bob@gmail.com"]


@pytest.mark.parametrize("name", [".team", "team.", "dev..team", ".."])
def test_aliases_set_refuses_a_name_that_is_no_mailbox(cli: Cli, seeded: None, name: str) -> None:
    # GIVEN a name with a dot first, last or doubled: no address can have it as its local part (RFC 5322 dot-atom),
    # so SES would refuse every forward sent from it
    before = stored()

    # WHEN setting it
    result = cli("aliases", "set", name, "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN one line refuses it, and nothing is written
    assert result.code == 2
    assert result.err.count("\n") == 1 and "is not an alias name" in result.err
    assert stored() == before


def test_aliases_add_refuses_a_member_on_the_forwarding_domain(cli: Cli, seeded: None) -> None:
    # GIVEN the dev domain from samconfig.toml; WHEN adding an address on it (it would loop)
    result = cli("aliases", "add", "team", "tech@dev.aws-educate.tw", "--config-env", "dev", "--yes")

    # THEN nothing is written
    assert result.code == 2
    assert "tech@dev.aws-educate.tw is on dev.aws-educate.tw itself (a forwarding loop)" in result.err
    assert members("team") == ["alice@gmail.com", " bob@gmail.com"]


def test_aliases_add_creates_a_new_alias(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "add", "events", "erin@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert "  + events  (new alias)\n      + erin@gmail.com\n" in result.out
    assert members("events") == ["erin@gmail.com"]


def test_aliases_add_of_an_existing_member_changes_nothing(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "add", "team", "Alice@Gmail.com", "--config-env", "dev")

    assert result.code == 0
    assert result.out.startswith("nothing to change")
    assert stored_version("team") == 1


def stored_version(name: str) -> int:
    found = parameter(name)
    assert found is not None
    return int(found["Version"])


def test_aliases_remove_a_member(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "remove", "team", "bob@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert "      - bob@gmail.com" in result.out
    assert members("team") == ["alice@gmail.com"]


def test_aliases_remove_the_last_member_deletes_the_alias(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "remove", "tech", "carol@example.org", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert "  - tech  (delete alias)" in result.out
    assert parameter("tech") is None


def test_aliases_remove_without_members_deletes_the_alias(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "remove", "team", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert parameter("team") is None
    assert parameter("tech") is not None


def test_aliases_remove_of_a_non_member_is_refused(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "remove", "team", "zoe@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 2
    assert result.err == "forwarder: not a member of team: zoe@gmail.com\n"


def test_aliases_edit_without_a_terminal_needs_yes(cli: Cli, seeded: None) -> None:
    # GIVEN a script (stdin is not a terminal) and no --yes
    result = cli("aliases", "add", "team", "dave@gmail.com", "--config-env", "dev")

    # THEN the diff is shown but nothing is written
    assert result.code == 2
    assert "+ dave@gmail.com" in result.out
    assert "re-run with --yes" in result.err
    assert members("team") == ["alice@gmail.com", " bob@gmail.com"]


def test_aliases_edit_asks_at_a_terminal_and_applies_on_yes(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "add", "team", "dave@gmail.com", "--config-env", "dev", stdin="y\n", tty=True)

    assert result.code == 0
    assert "apply 1 change(s)? [y/N]" in result.out
    assert members("team") == ["alice@gmail.com", "bob@gmail.com", "dave@gmail.com"]


def test_aliases_edit_declined_at_the_terminal_changes_nothing(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "add", "team", "dave@gmail.com", "--config-env", "dev", stdin="n\n", tty=True)

    assert result.code == 1
    assert result.out.endswith("nothing changed\n")
    assert stored_version("team") == 1


def test_aliases_import_toml_with_prune_syncs_the_path(cli: Cli, seeded: None) -> None:
    # GIVEN the demo alias file (events/aliases.toml): team changes, tech changes, mkt and event are new
    # WHEN importing it with --prune
    result = cli("aliases", "import", str(EVENTS / "aliases.toml"), "--prune", "--config-env", "dev", "--yes")

    # THEN SSM holds exactly the file's aliases
    assert result.code == 0
    assert "applied: 2 created, 2 updated, 0 deleted" in result.out
    listed = json.loads(cli("aliases", "list", "--config-env", "dev", "--json").out)
    assert listed == read_file(EVENTS / "aliases.toml")


def test_aliases_import_prune_deletes_aliases_missing_from_the_file(cli: Cli, seeded: None, workdir: Path) -> None:
    path = workdir / "aliases.yaml"
    path.write_text("aliases:\n  team:\n    - alice@gmail.com\n    - bob@gmail.com\n")

    result = cli("aliases", "import", str(path), "--prune", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert "  - tech  (delete alias)\n      - carol@example.org" in result.out
    assert parameter("tech") is None
    assert stored_version("team") == 1


def test_aliases_import_without_prune_keeps_other_aliases(cli: Cli, seeded: None, workdir: Path) -> None:
    path = workdir / "aliases.toml"
    path.write_text('[aliases]\nnews = ["dan@gmail.com"]\n')

    result = cli("aliases", "import", str(path), "--config-env", "dev", "--yes")

    assert result.code == 0
    assert members("news") == ["dan@gmail.com"]
    assert parameter("tech") is not None


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "[aliases\nteam = 1", "is not valid TOML"),
        ("bad.yaml", "aliases: [unclosed", "is not valid YAML"),
        ("empty.toml", "[aliases]\nteam = []\n", "team: no members"),
        ("shape.yaml", "aliases:\n  team: {a: 1}\n", "alias team must be a list of addresses"),
        ("name.toml", '[aliases]\n"Team Lead" = ["a@gmail.com"]\n', "is not an alias name"),
        ("aliases.txt", "team = a@gmail.com", "use a .toml, .yaml/.yml or .json file"),
        # files the parsers would change silently: a YAML name read as true or null, an alias listed twice (the
        # parsers keep the last list)
        ("yes.yaml", "aliases:\n  yes: [a@gmail.com]\n", "reads as True"),
        ("null.yaml", "aliases:\n  null: [a@gmail.com]\n", "reads as None"),
        ("twice.yaml", "aliases:\n  team: [a@gmail.com]\n  team: [b@gmail.com]\n", "team listed twice"),
        ("twice.json", '{"aliases": {"team": ["a@gmail.com"], "team": ["b@gmail.com"]}}', "team listed twice"),
    ],
)
def test_aliases_import_refuses_a_bad_file(
    cli: Cli, seeded: None, workdir: Path, name: str, text: str, message: str
) -> None:
    path = workdir / name
    path.write_text(text)
    before = stored()

    result = cli("aliases", "import", str(path), "--config-env", "dev", "--yes")

    assert result.code == 2
    assert message in result.err
    assert result.err.startswith("forwarder: ") and result.err.count("\n") == 1
    assert members("team") == ["alice@gmail.com", " bob@gmail.com"]
    assert stored() == before


def test_aliases_import_of_a_missing_file(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "import", "nowhere.toml", "--config-env", "dev", "--yes")

    assert result.code == 2
    assert result.err.startswith("forwarder: cannot read nowhere.toml")


def test_aliases_export_to_stdout_reads_back_with_read_file(cli: Cli, seeded: None, workdir: Path) -> None:
    from forwarder_ops.aliases import read_file

    # WHEN exporting to stdout (TOML), THEN the same file format as events/aliases.toml comes out
    result = cli("aliases", "export", "--config-env", "dev")

    assert result.code == 0
    assert tomllib.loads(result.out) == {
        "aliases": {"team": ["alice@gmail.com", "bob@gmail.com"], "tech": ["carol@example.org"]}
    }
    (workdir / "exported.toml").write_text(result.out)
    assert read_file(workdir / "exported.toml") == {
        "team": ["alice@gmail.com", "bob@gmail.com"],
        "tech": ["carol@example.org"],
    }


def test_aliases_export_to_a_yaml_file_and_import_it_back(cli: Cli, seeded: None, workdir: Path) -> None:
    # GIVEN an export to YAML
    assert cli("aliases", "export", "aliases.yml", "--config-env", "dev").code == 0
    exported = yaml.safe_load((workdir / "aliases.yml").read_text())
    assert exported == {"aliases": {"team": ["alice@gmail.com", "bob@gmail.com"], "tech": ["carol@example.org"]}}

    # WHEN importing it back with --prune THEN nothing changes
    result = cli("aliases", "import", "aliases.yml", "--prune", "--config-env", "dev")
    assert result.code == 0
    assert result.out.startswith("nothing to change")


def test_aliases_export_json_to_stdout(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "export", "--config-env", "dev", "--json")

    assert json.loads(result.out)["aliases"]["tech"] == ["carol@example.org"]


def test_aliases_alias_path_from_a_list_of_overrides(cli: Cli, seeded: None) -> None:
    # GIVEN prod's parameter_overrides as a list with AliasPath=/email-forwarder/prod/team-aliases
    result = cli("aliases", "set", "team", "lead@gmail.com", "--config-env", "prod", "--yes")

    assert result.code == 0
    assert members("team", "/email-forwarder/prod/team-aliases") == ["lead@gmail.com"]
    assert members("team", "/email-forwarder/prod/aliases") == ["prod@example.org"]


def test_aliases_explicit_alias_path_wins_over_samconfig(cli: Cli, seeded: None) -> None:
    result = cli("aliases", "list", "--config-env", "prod", "--alias-path", "/email-forwarder/prod/aliases", "--json")

    assert json.loads(result.out) == {"team": ["prod@example.org"]}


def test_aliases_without_an_environment_says_what_to_give(cli: Cli, aws: None) -> None:
    result = cli("aliases", "list", "--region", "us-east-1")

    assert result.code == 2
    assert result.err == "forwarder: no alias path: give --config-env ENV or --alias-path PATH\n"


def test_aliases_with_flags_only_and_no_samconfig(cli: Cli, seeded: None, workdir: Path) -> None:
    (workdir / "samconfig.toml").unlink()

    result = cli("aliases", "list", "--region", "us-east-1", "--alias-path", ALIAS_PATH, "--json")

    assert result.code == 0
    assert set(json.loads(result.out)) == {"team", "tech"}


def test_aliases_list_reads_every_page(cli: Cli, aws: None, workdir: Path) -> None:
    # GIVEN more aliases than SSM returns in one page (10)
    path = workdir / "many.toml"
    path.write_text("[aliases]\n" + "".join(f'a{n:02d} = ["member{n}@gmail.com"]\n' for n in range(25)))
    assert cli("aliases", "import", str(path), "--config-env", "dev", "--yes").code == 0

    listed = json.loads(cli("aliases", "list", "--config-env", "dev", "--json").out)

    assert len(listed) == 25


def test_aliases_set_the_catch_all_alias(cli: Cli, seeded: None) -> None:
    # the parameter `_catchall` receives mail for every unknown address of the domain
    result = cli("aliases", "set", "_catchall", "office@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert members("_catchall") == ["office@gmail.com"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bom.toml", '\ufeff[aliases]\r\nteam = ["alice@gmail.com", "dave@gmail.com"]\r\n'),
        ("bom.json", '\ufeff{"aliases": {"team": ["alice@gmail.com", "dave@gmail.com"]}}\r\n'),
        ("bom.yaml", "\ufeffaliases:\r\n  team: [alice@gmail.com, dave@gmail.com]\r\n"),
    ],
)
def test_aliases_import_reads_a_file_saved_with_a_bom_and_crlf(
    cli: Cli, seeded: None, workdir: Path, name: str, text: str
) -> None:
    # GIVEN a file saved by a Windows editor: a UTF-8 byte order mark and CRLF line ends (TOML and JSON parsers
    # refuse the mark, which used to read as "is not valid TOML: Invalid statement (at line 1, column 1)")
    path = workdir / name
    path.write_bytes(text.encode())

    # WHEN importing it
    result = cli("aliases", "import", str(path), "--config-env", "dev", "--yes")

    # THEN it is read like the same file without the mark
    assert result.code == 0, result.err
    assert members("team") == ["alice@gmail.com", "dave@gmail.com"]


@pytest.mark.parametrize(
    "command",
    [
        ("add", "sec", "dave@gmail.com"),
        ("remove", "sec", "alice@gmail.com"),
        ("set", "sec", "dave@gmail.com"),
    ],
)
def test_aliases_edit_of_a_secure_string_alias_is_refused(cli: Cli, seeded: None, command: tuple[str, ...]) -> None:
    # GIVEN an alias stored by hand as a SecureString: read without decryption its value is ciphertext
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/sec", Value="alice@gmail.com,bob@gmail.com", Type="SecureString")
    before = stored()

    # WHEN editing it
    result = cli("aliases", *command, "--config-env", "dev", "--yes")

    # THEN nothing is written (`add` wrote the ciphertext back as a member of a StringList) and the error says how
    assert result.code == 2, result.out
    assert "sec is a SecureString parameter" in result.err
    assert "forwarder aliases remove sec" in result.err
    assert stored() == before


def test_aliases_remove_deletes_a_secure_string_alias(cli: Cli, seeded: None) -> None:
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/sec", Value="alice@gmail.com", Type="SecureString")

    result = cli("aliases", "remove", "sec", "--config-env", "dev", "--yes")

    assert result.code == 0, result.err
    assert parameter("sec") is None


@pytest.mark.parametrize(
    "command",
    [
        ("add", "Team", "erin@gmail.com"),
        ("set", "team", "dave@gmail.com"),
        ("remove", "team"),
    ],
)
def test_aliases_edit_of_an_alias_stored_under_two_cases_is_refused(
    cli: Cli, seeded: None, command: tuple[str, ...]
) -> None:
    # GIVEN `Team` made in the console beside `team`: the forwarder sends to the members of both
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/Team", Value="dave@gmail.com", Type="String")
    before = stored()

    # WHEN editing the alias
    result = cli("aliases", *command, "--config-env", "dev", "--yes")

    # THEN nothing is written (an edit of one parameter left the other receiving) and the error names both
    assert result.code == 2, result.out
    assert f"team is stored as 2 parameters whose names differ only in case ({ALIAS_PATH}/Team, {ALIAS_PATH}/team)" in (
        result.err
    )
    assert stored() == before


def test_aliases_list_shows_every_member_of_an_alias_stored_under_two_cases(cli: Cli, seeded: None) -> None:
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/Team", Value="dave@gmail.com", Type="String")

    result = cli("aliases", "list", "--config-env", "dev", "--json")

    assert result.code == 0
    assert sorted(json.loads(result.out)["team"]) == ["alice@gmail.com", "bob@gmail.com", "dave@gmail.com"]


def test_aliases_edit_refuses_to_overwrite_an_edit_made_while_it_asked(
    cli: Cli, seeded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forwarder_ops.console

    # GIVEN another operator who adds carol to team while this one reads the diff (SSM PutParameter has no
    # condition: the write below used to put back the list as read, and carol was gone without a word)
    answer = forwarder_ops.console.confirm

    def meanwhile(*args: object, **kwargs: object) -> None:
        client("ssm").put_parameter(
            Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com,bob@gmail.com,carol@gmail.com", Overwrite=True
        )
        answer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(forwarder_ops.console, "confirm", meanwhile)

    # WHEN this operator answers yes to adding dave
    result = cli("aliases", "add", "team", "dave@gmail.com", "--config-env", "dev", stdin="y\n", tty=True)

    # THEN nothing is written, and the error says why and what to do
    assert result.code == 2
    assert "team changed since it was read" in result.err
    assert members("team") == ["alice@gmail.com", "bob@gmail.com", "carol@gmail.com"]


def many(count: int, start: int = 0) -> list[str]:
    """`count` distinct member addresses of 29 characters each."""
    return [f"member.number{i:04d}@example.org" for i in range(start, start + count)]


def test_aliases_add_says_when_a_list_outgrows_the_standard_tier(cli: Cli, seeded: None) -> None:
    # GIVEN team, and 140 more members of 29 characters: 4,229 bytes once joined, over SSM's 4 KB standard tier
    # WHEN adding them
    result = cli("aliases", "add", "team", *many(140), "--config-env", "dev", "--yes")

    # THEN it is written (Intelligent-Tiering stores it as an advanced parameter), and the diff said it costs
    assert result.code == 0, result.err
    assert "team: 142 members, 4,229 bytes: over SSM's 4 KB standard tier" in result.out
    assert "advanced parameter" in result.out
    assert len(members("team") or []) == 142


def test_aliases_add_refuses_a_list_over_the_advanced_tier(cli: Cli, seeded: None) -> None:
    # GIVEN 280 members of 29 characters: over 8 KB joined, more than SSM stores in one parameter
    before = stored()

    # WHEN adding them
    result = cli("aliases", "add", "team", *many(280), "--config-env", "dev", "--yes")

    # THEN nothing is written (AWS would refuse the write only after the question, moto never) and the error
    # says how to go on
    assert result.code == 2
    assert "team: 282 members, 8,429 bytes: SSM stores at most 8 KB in one parameter" in result.err
    assert stored() == before


def test_aliases_import_refuses_an_alias_of_another_domain(cli: Cli, seeded: None, workdir: Path) -> None:
    # GIVEN a file that names an alias with a domain that is not this environment's (copied from prod's file?)
    path = workdir / "other.toml"
    path.write_text('[aliases]\n"team@example.com" = ["dave@gmail.com"]\n')
    before = stored()

    # WHEN importing it
    result = cli("aliases", "import", str(path), "--config-env", "dev", "--yes")

    # THEN it is refused as `aliases set team@example.com` is (the file's domain was dropped: dev's team was written)
    assert result.code == 2
    assert "team@example.com is not on dev.aws-educate.tw" in result.err
    assert stored() == before


def test_aliases_list_and_export_warn_of_a_secure_string_alias(cli: Cli, seeded: None, workdir: Path) -> None:
    # GIVEN an alias stored as a SecureString: what the CLI reads of it is ciphertext, and its members get no mail
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/sec", Value="alice@gmail.com", Type="SecureString")

    # WHEN listing and exporting the aliases
    listed = cli("aliases", "list", "--config-env", "dev")
    exported = cli("aliases", "export", str(workdir / "out.toml"), "--config-env", "dev")

    # THEN both still work and say, once each, that sec is not what it seems (they showed the ciphertext as a member)
    for result in (listed, exported):
        assert result.code == 0, result.err
        assert result.err.count("forwarder: warning: sec is a SecureString parameter") == 1, result.err
