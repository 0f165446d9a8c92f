"""`forwarder send-as ...` against moto's IAM, through the CLI's entry point."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.cli.conftest import ALIAS_PATH, DOMAIN, REGION, STACK, Cli, FakeResolver, FakeSesV2, client, deploy

PATH = "/email-forwarder/dev/send-as/"
ACCOUNT = "123456789012"  # moto's account
IDENTITY_ARN = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{DOMAIN}"
CONFIGURATION_SET_ARN = f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{STACK}"


def documented_password(secret: str, region: str) -> str:
    """The SES SMTP password (v4) computed independently: botocore's SigV4 signing-key chain.

    The documented derivation is SigV4's key chain ("AWS4" + secret over the date, the region, "ses",
    "aws4_request") with the date fixed at 11111111, signing "SendRawEmail", behind the byte 0x04.
    """
    request = AWSRequest()
    request.context["timestamp"] = "11111111T000000Z"
    signature = SigV4Auth(Credentials("AKIDEXAMPLE", secret), "ses", region).signature("SendRawEmail", request)
    return base64.b64encode(b"\x04" + bytes.fromhex(signature)).decode()


@dataclass
class IdentityWithConfigurationSet(FakeSesV2):
    """SES v2 as deployed: the identity carries the stack's configuration set as its default."""

    configuration_set: str | None = STACK


class RecordingIam:
    """moto's IAM, keeping the secrets it hands out (only a test can know them) and refusing on demand."""

    def __init__(self) -> None:
        self.real = client("iam")
        self.secrets: dict[str, str] = {}
        self.denied: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name in self.denied:

            def refuse(*_: Any, **__: Any) -> Any:
                raise ClientError(
                    {"Error": {"Code": "AccessDenied", "Message": "not authorized"}},
                    "".join(part.title() for part in name.split("_")),
                )

            return refuse
        return getattr(self.real, name)

    def create_access_key(self, **request: Any) -> Any:
        if "create_access_key" in self.denied:
            return self.__getattr__("create_access_key")(**request)
        answer = self.real.create_access_key(**request)
        self.secrets[answer["AccessKey"]["AccessKeyId"]] = answer["AccessKey"]["SecretAccessKey"]
        return answer

    def delete_user(self, **request: Any) -> Any:
        """IAM's DeleteUser as documented: refused while the user is in a group or has a console password
        (moto checks only the policies)."""
        if "delete_user" in self.denied:
            return self.__getattr__("delete_user")(**request)
        name = request["UserName"]
        try:
            self.real.get_login_profile(UserName=name)
            has_password = True
        except ClientError:
            has_password = False
        if has_password or self.real.list_groups_for_user(UserName=name)["Groups"]:
            raise ClientError(
                {"Error": {"Code": "DeleteConflict", "Message": "Cannot delete entity, must remove it first."}},
                "DeleteUser",
            )
        return self.real.delete_user(**request)


class Refusing:
    """A client whose every call AWS refuses, as for a profile without any right on the service."""

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized"}},
                "".join(part.title() for part in name.split("_")),
            )

        return refuse


@pytest.fixture
def ses(client_overrides: dict[str, Any], aws: None) -> IdentityWithConfigurationSet:
    fake = IdentityWithConfigurationSet()
    client_overrides["sesv2"] = fake
    return fake


@pytest.fixture
def iam(client_overrides: dict[str, Any], aws: None) -> RecordingIam:
    recording = RecordingIam()
    client_overrides["iam"] = recording
    return recording


@pytest.fixture
def team(aws: None, ses: IdentityWithConfigurationSet, iam: RecordingIam) -> None:
    """A deployed dev environment: alice is in team and tech, bob in team, carol in tech."""
    deploy({"team": "alice@gmail.com, bob@gmail.com", "tech": "alice@gmail.com, carol@example.org"})


def users() -> list[dict[str, Any]]:
    return list(client("iam").list_users(PathPrefix="/email-forwarder/")["Users"])


def keys_of(name: str) -> list[str]:
    return [k["AccessKeyId"] for k in client("iam").list_access_keys(UserName=name)["AccessKeyMetadata"]]


def policy_of(name: str) -> dict[str, Any]:
    document = client("iam").get_user_policy(UserName=name, PolicyName="send-as")["PolicyDocument"]
    return document if isinstance(document, dict) else json.loads(document)


def only_user() -> str:
    found = users()
    assert len(found) == 1, found
    return str(found[0]["UserName"])


def grant(cli: Cli, member: str, alias: str, *extra: str) -> dict[str, Any]:
    result = cli("send-as", "grant", member, "--alias", alias, "--config-env", "dev", "--json", *extra)
    assert result.code == 0, result.err
    answer: dict[str, Any] = json.loads(result.out)
    return answer


# grant -------------------------------------------------------------------------------------------


def test_send_as_grant_creates_a_user_whose_only_permission_is_sending_from_the_alias(cli: Cli, team: None) -> None:
    # WHEN alice is granted team in dev
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN one user under the environment's path, tagged with stack, environment, region and member
    assert result.code == 0, result.err
    [user] = users()
    assert user["Path"] == PATH
    assert len(user["UserName"]) <= 64
    tags = {t["Key"]: t["Value"] for t in client("iam").list_user_tags(UserName=user["UserName"])["Tags"]}
    assert tags == {
        "email-forwarder:member": "alice@gmail.com",
        "email-forwarder:environment": "dev",
        "email-forwarder:stack": STACK,
        "email-forwarder:region": REGION,
    }
    # AND its only permission is the inline policy: SendRawEmail on the identity and its configuration set,
    # From team@<domain> only
    iam = client("iam")
    assert iam.list_user_policies(UserName=user["UserName"])["PolicyNames"] == ["send-as"]
    assert iam.list_attached_user_policies(UserName=user["UserName"])["AttachedPolicies"] == []
    assert iam.list_groups_for_user(UserName=user["UserName"])["Groups"] == []
    assert policy_of(user["UserName"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendAsGrantedAliases",
                "Effect": "Allow",
                "Action": "ses:SendRawEmail",
                "Resource": [IDENTITY_ARN, CONFIGURATION_SET_ARN],
                "Condition": {"StringEquals": {"ses:FromAddress": [f"team@{DOMAIN}"]}},
            }
        ],
    }
    assert len(keys_of(user["UserName"])) == 1


def test_send_as_grant_prints_the_documented_smtp_password_once(cli: Cli, team: None, iam: RecordingIam) -> None:
    # WHEN alice is granted team
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN the printed password is the documented derivation of the key's secret for the dev region
    [(key_id, secret)] = iam.secrets.items()
    password = documented_password(secret, REGION)
    assert f"  SMTP Server  email-smtp.{REGION}.amazonaws.com\n" in result.out
    assert "  Port         587 (TLS, i.e. STARTTLS) or 465 (SSL)\n" in result.out
    assert f"  Username     {key_id}\n" in result.out
    assert f"  Password     {password}\n" in result.out
    # AND the secret itself is never shown
    assert secret not in result.out + result.err
    # AND the four Gmail steps, the last saying the confirmation comes back through the alias
    assert "  1. Settings (gear) > See all settings > Accounts and Import > Send mail as" in result.out
    assert f"  4. Gmail mails a confirmation to team@{DOMAIN}; the forwarder forwards it" in result.out


def test_send_as_grant_password_follows_the_environments_region(
    cli: Cli, aws: None, client_overrides: dict[str, Any], iam: RecordingIam
) -> None:
    # GIVEN the preview environment (eu-central-2 in the test samconfig) with its identity and aliases there
    preview, region = "preview.aws-educate.tw", "eu-central-2"
    ses = IdentityWithConfigurationSet(configuration_set=None, region=region)
    ses.create_email_identity(EmailIdentity=preview)
    client_overrides["sesv2"] = ses
    boto3.client("ssm", region_name=region).put_parameter(
        Name="/email-forwarder/preview/aliases/team", Value="alice@gmail.com", Type="StringList"
    )

    # WHEN alice is granted team there
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "preview", "--json")

    # THEN the server and the password are eu-central-2's, the policy names its identity, the user is preview's
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    [secret] = iam.secrets.values()
    assert answer["smtp"]["server"] == f"email-smtp.{region}.amazonaws.com"
    assert answer["smtp"]["password"] == documented_password(secret, region)
    assert answer["smtp"]["password"] != documented_password(secret, REGION)
    assert answer["path"] == "/email-forwarder/preview/send-as/"
    assert policy_of(answer["user"])["Statement"][0]["Resource"] == [
        f"arn:aws:ses:{region}:{ACCOUNT}:identity/{preview}"
    ]


def test_send_as_grant_of_a_second_alias_keeps_the_first_and_the_key(cli: Cli, team: None, iam: RecordingIam) -> None:
    # GIVEN alice may send as team
    first = grant(cli, "alice@gmail.com", "team")

    # WHEN she is granted tech too
    second = grant(cli, "alice@gmail.com", "tech@dev.aws-educate.tw")

    # THEN the policy lists both aliases, and her credentials stay the same (no new key, no password shown)
    name = only_user()
    assert policy_of(name)["Statement"][0]["Condition"] == {
        "StringEquals": {"ses:FromAddress": [f"team@{DOMAIN}", f"tech@{DOMAIN}"]}
    }
    assert second["smtp"] is None
    assert second["aliases"] == ["team", "tech"]
    assert keys_of(name) == [first["smtp"]["username"]]
    assert len(iam.secrets) == 1


def test_send_as_grant_drops_an_alias_the_member_has_left(cli: Cli, team: None) -> None:
    # GIVEN alice may send as team and tech, then was taken out of team in the console (no revocation followed)
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="bob@gmail.com", Type="StringList", Overwrite=True)
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/sales", Value="alice@gmail.com", Type="StringList", Overwrite=True)

    # WHEN she is granted sales
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "sales", "--config-env", "dev")

    # THEN the policy the grant writes no longer lets her send as team, and the output says so
    assert result.code == 0, result.err
    assert policy_of(only_user())["Statement"][0]["Condition"] == {
        "StringEquals": {"ses:FromAddress": [f"sales@{DOMAIN}", f"tech@{DOMAIN}"]}
    }
    assert "alice@gmail.com may send as sales, tech (dev" in result.out
    assert "alice@gmail.com is no longer a member of team: this grant drops it" in result.err


def test_send_as_grant_text_without_a_new_key_names_the_existing_username(cli: Cli, team: None) -> None:
    first = grant(cli, "alice@gmail.com", "team")

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "tech", "--config-env", "dev")

    assert result.code == 0
    assert f"No new key: the member's SMTP credentials (username {first['smtp']['username']})" in result.out
    assert "Password" not in result.out


def test_send_as_grant_repeated_says_nothing_changed(cli: Cli, team: None) -> None:
    # GIVEN alice may send as team
    first = grant(cli, "alice@gmail.com", "team")

    # WHEN the same grant is made again
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN it says she already may, not that her grant was "updated" and her credentials "now also" send as team
    assert result.code == 0, result.err
    assert "send-as unchanged, already granted: alice@gmail.com may send as team" in result.out
    assert (
        f"No new key: the member's SMTP credentials (username {first['smtp']['username']}) already send as "
        f"team@{DOMAIN}."
    ) in result.out
    assert "updated" not in result.out and "now also" not in result.out


def test_send_as_grant_to_a_member_whose_key_is_inactive_gives_a_working_key(
    cli: Cli, team: None, iam: RecordingIam
) -> None:
    # GIVEN alice may send as team, and her only key deactivated by hand (it authenticates nowhere)
    first = grant(cli, "alice@gmail.com", "team")
    name = only_user()
    client("iam").update_access_key(UserName=name, AccessKeyId=first["smtp"]["username"], Status="Inactive")

    # WHEN she is granted tech
    second = grant(cli, "alice@gmail.com", "tech")

    # THEN she gets a new key and its password, not "your existing credentials now also send as tech"
    assert second["smtp"] is not None
    assert second["existing_keys"] == []
    assert second["smtp"]["password"] == documented_password(iam.secrets[second["smtp"]["username"]], REGION)
    assert sorted(keys_of(name)) == sorted([first["smtp"]["username"], second["smtp"]["username"]])


def test_send_as_grant_with_two_inactive_keys_says_to_delete_one(cli: Cli, team: None) -> None:
    # GIVEN alice's two keys (a rotation) both deactivated by hand: IAM allows no third
    grant(cli, "alice@gmail.com", "team")
    assert cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev", "--json").code == 0
    name = only_user()
    for key_id in keys_of(name):
        client("iam").update_access_key(UserName=name, AccessKeyId=key_id, Status="Inactive")

    # WHEN she is granted tech
    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "tech", "--config-env", "dev")

    # THEN one line says why no key can be made and what to run, and nothing changed
    assert result.code == 2
    assert result.err.count("\n") == 1 and "are all inactive" in result.err
    assert "forwarder send-as rotate alice@gmail.com --finish --config-env dev" in result.err
    assert policy_of(name)["Statement"][0]["Condition"] == {"StringEquals": {"ses:FromAddress": [f"team@{DOMAIN}"]}}


def test_send_as_grant_per_member_users_do_not_share(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "bob@gmail.com", "team")

    names = {u["UserName"] for u in users()}
    assert len(names) == 2
    for name in names:
        assert policy_of(name)["Statement"][0]["Condition"]["StringEquals"]["ses:FromAddress"] == [f"team@{DOMAIN}"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["carol@example.org", "--alias", "team"],
            "forwarder: carol@example.org is not a member of team: add them first "
            "(`forwarder aliases add team carol@example.org --config-env dev`), then grant\n",
        ),
        (["alice@gmail.com", "--alias", "sales"], f"forwarder: no alias sales under {ALIAS_PATH}"),
        (["not-an-address", "--alias", "team"], "forwarder: 'not-an-address' is not a valid address"),
        (["team@dev.aws-educate.tw", "--alias", "team"], "forwarder: team@dev.aws-educate.tw is on dev.aws-educate.tw"),
        (["alice@gmail.com", "--alias", "team@other.org"], "forwarder: team@other.org is not on dev.aws-educate.tw"),
        (["alice@gmail.com", "--alias", "Team Lead"], "is not an alias name"),
        (["alice@gmail.com", "--alias", "_catchall"], "forwarder: _catchall (the catch-all) has no address to send as"),
    ],
)
def test_send_as_grant_bad_input_is_one_line_and_exit_2(cli: Cli, team: None, argv: list[str], message: str) -> None:
    result = cli("send-as", "grant", *argv, "--config-env", "dev")

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert message in result.err
    assert users() == []


def test_send_as_grant_in_the_sandbox_is_refused_unless_allowed(
    cli: Cli, team: None, ses: IdentityWithConfigurationSet
) -> None:
    # GIVEN SES in the sandbox in dev's region
    ses.production = False

    # WHEN granting THEN one line saying why and what to do, and no user
    refused = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")
    assert refused.code == 2
    assert refused.err.count("\n") == 1
    assert "SES in us-east-1 is in the sandbox" in refused.err
    assert "request production access (SES console > Account dashboard) or pass --allow-sandbox" in refused.err
    assert users() == []

    # AND with --allow-sandbox the grant goes through
    assert grant(cli, "alice@gmail.com", "team", "--allow-sandbox")["created"] is True


def test_send_as_grant_without_permission_to_create_users(cli: Cli, team: None, iam: RecordingIam) -> None:
    iam.denied.add("create_user")

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert result.err.startswith("forwarder: no permission to create IAM users for send-as: use a profile")
    assert f"on arn:aws:iam::*:user{PATH}*" in result.err


@pytest.mark.parametrize("refused", ["put_user_policy", "create_access_key"])
def test_send_as_grant_failing_after_creating_the_user_leaves_no_user(
    cli: Cli, team: None, iam: RecordingIam, refused: str
) -> None:
    # GIVEN IAM refusing a step that comes after CreateUser
    iam.denied.add(refused)

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN one line naming the refusal, and the user the grant created is gone again
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "no permission to call IAM" in result.err
    assert users() == []


def test_send_as_grant_that_cannot_undo_its_user_says_it_is_left(cli: Cli, team: None, iam: RecordingIam) -> None:
    # GIVEN IAM refusing the policy, and then the undoing of the new user
    iam.denied.update({"put_user_policy", "delete_user"})

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN one line naming the user that is left, without a key, and the command that removes it
    assert result.code == 2
    assert result.err.count("\n") == 1
    name = only_user()
    assert keys_of(name) == []
    assert f"the IAM user {name} this grant created is left, without a key" in result.err
    assert "`forwarder send-as revoke alice@gmail.com --yes --config-env dev` removes it" in result.err


def test_send_as_grant_from_another_region_than_the_grants_is_refused(cli: Cli, team: None) -> None:
    # GIVEN alice's grant in dev (us-east-1), and dev's aliases in us-west-2 too (e.g. moved there)
    grant(cli, "alice@gmail.com", "team")
    name = only_user()
    before = policy_of(name)
    boto3.client("ssm", region_name="us-west-2").put_parameter(
        Name=f"{ALIAS_PATH}/tech", Value="alice@gmail.com", Type="StringList"
    )

    # WHEN granting her another alias with dev's region overridden
    result = cli(
        "send-as", "grant", "alice@gmail.com", "--alias", "tech", "--config-env", "dev", "--region", "us-west-2"
    )

    # THEN refused in one line: her policy (us-east-1's identity) and password (derived for us-east-1) stay
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert f"alice@gmail.com's send-as grant in dev is for {REGION}" in result.err
    assert policy_of(name) == before


def test_send_as_grant_without_the_right_to_read_the_stack_builds_the_arns(
    cli: Cli, team: None, client_overrides: dict[str, Any]
) -> None:
    # GIVEN a profile with send-as's permissions only (cloudformation:DescribeStacks is not among them)
    client_overrides["cloudformation"] = Refusing()

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    # THEN the grant goes through, with the ARNs built from the account
    assert result.code == 0, result.err
    assert policy_of(only_user())["Statement"][0]["Resource"] == [IDENTITY_ARN, CONFIGURATION_SET_ARN]


def test_send_as_grant_for_another_domain_than_the_stacks_names_that_domains_identity(
    cli: Cli, team: None, ses: IdentityWithConfigurationSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forwarder_ops.envconfig import Target

    # GIVEN dev's stack (its IdentityArn output is dev.aws-educate.tw's) and an identity of a new domain beside it
    monkeypatch.setattr(Target, "outputs", lambda self: {"IdentityArn": IDENTITY_ARN, "Domain": DOMAIN})
    ses.create_email_identity(EmailIdentity="new.example.org")

    # WHEN alice is granted team on the new domain
    result = cli(
        "send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev", "--domain", "new.example.org"
    )

    # THEN the policy names the identity of the domain she sends From, not the stack's other one (SES would refuse)
    assert result.code == 0, result.err
    statement = policy_of(only_user())["Statement"][0]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": ["team@new.example.org"]}}
    assert statement["Resource"][0] == f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/new.example.org"


def test_send_as_grant_for_an_undeployed_domain(cli: Cli, aws: None, iam: RecordingIam) -> None:
    # GIVEN aliases but no SES identity for the domain in the region (moto's own SES v2)
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com", Type="StringList")

    result = cli("send-as", "grant", "alice@gmail.com", "--alias", "team", "--config-env", "dev")

    assert result.code == 2
    assert result.err == (
        f"forwarder: {DOMAIN} is not an SES identity in {REGION}: deploy the stack (`sam deploy --config-env dev`); "
        "SMTP credentials send only in the identity's region\n"
    )


def test_send_as_without_an_environment_says_what_to_give(cli: Cli, aws: None) -> None:
    result = cli("send-as", "list", "--region", REGION)

    assert result.code == 2
    assert result.err == "forwarder: send-as grants are per environment: give --config-env ENV\n"


# list --------------------------------------------------------------------------------------------


def test_send_as_list_shows_members_aliases_and_keys(cli: Cli, team: None) -> None:
    # GIVEN alice with team and tech, bob with team
    alice = grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")
    bob = grant(cli, "bob@gmail.com", "team")

    # WHEN listing
    text = cli("send-as", "list", "--config-env", "dev")
    listed = json.loads(cli("send-as", "list", "--config-env", "dev", "--json").out)

    # THEN each member, their aliases, their key, its age and (never) last use
    assert text.code == 0
    assert f"2 send-as grant(s) (IAM users under {PATH})" in text.out
    assert f"alice@gmail.com  team, tech  {alice['smtp']['username']}  0 days  never" in text.out
    assert f"bob@gmail.com    team        {bob['smtp']['username']}  0 days  never" in text.out
    assert [(g["member"], g["aliases"], [k["id"] for k in g["keys"]]) for g in listed] == [
        ("alice@gmail.com", ["team", "tech"], [alice["smtp"]["username"]]),
        ("bob@gmail.com", ["team"], [bob["smtp"]["username"]]),
    ]
    assert listed[0]["keys"][0]["last_used"] is None
    assert listed[0]["region"] == REGION


def test_send_as_list_marks_an_inactive_key(cli: Cli, team: None) -> None:
    # GIVEN alice's key deactivated by hand (it no longer authenticates)
    key_id = grant(cli, "alice@gmail.com", "team")["smtp"]["username"]
    client("iam").update_access_key(UserName=only_user(), AccessKeyId=key_id, Status="Inactive")

    # WHEN the grants are listed
    result = cli("send-as", "list", "--config-env", "dev")

    # THEN the key is shown as inactive, not like a working SMTP username
    assert result.code == 0, result.err
    assert f"{key_id} (inactive)" in result.out


def test_send_as_list_is_per_environment(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")

    # the prod environment (same region in the test samconfig) has its own path: nothing there
    result = cli("send-as", "list", "--config-env", "prod", "--json")

    assert result.code == 0
    assert json.loads(result.out) == []


# alias changes follow ----------------------------------------------------------------------------


def test_send_as_alias_removal_revokes_the_alias_from_the_grant(cli: Cli, team: None) -> None:
    # GIVEN alice may send as team and tech
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")

    # WHEN she leaves team
    result = cli("aliases", "remove", "team", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN the diff showed the grant change, and her policy now allows tech only
    assert result.code == 0, result.err
    assert (
        f"send-as grants that follow (IAM users under {PATH}):\n"
        "  ~ alice@gmail.com  may no longer send as team (keeps tech)\n"
    ) in result.out
    assert policy_of(only_user())["Statement"][0]["Condition"] == {
        "StringEquals": {"ses:FromAddress": [f"tech@{DOMAIN}"]}
    }


def test_send_as_alias_removal_of_the_last_alias_deletes_the_user_and_keys(cli: Cli, team: None) -> None:
    # GIVEN bob may send as team, his only alias
    grant(cli, "bob@gmail.com", "team")
    name = only_user()

    # WHEN an import replaces team's members without him
    result = cli("aliases", "set", "team", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN his user and its key are gone
    assert result.code == 0, result.err
    assert "  - bob@gmail.com  may no longer send as team: no alias left, its IAM user and keys go" in result.out
    assert users() == []
    with pytest.raises(ClientError):
        keys_of(name)


def test_send_as_alias_removal_whose_alias_write_fails_says_the_revocation_stays(
    cli: Cli, team: None, client_overrides: dict[str, Any]
) -> None:
    from tests.cli.test_bad_input import RefusingSsm

    # GIVEN alice may send as team and tech, and SSM refusing the alias write
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")
    client_overrides["ssm"] = RefusingSsm("ThrottlingException", refused={1})

    # WHEN she leaves team
    result = cli("aliases", "remove", "team", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN one line says the alias is unchanged but her grant change stays (revoked first, on purpose: a member who
    # leaves must not keep sending as the alias), not that nothing was changed
    assert result.code == 2
    assert result.err.count("\n") == 1 and "ThrottlingException" in result.err
    assert "; alias lists: nothing was changed; the 1 send-as grant change(s) stay applied" in result.err
    assert policy_of(only_user())["Statement"][0]["Condition"] == {
        "StringEquals": {"ses:FromAddress": [f"tech@{DOMAIN}"]}
    }


def test_send_as_alias_removal_whose_revocation_is_refused_says_the_aliases_are_unchanged(
    cli: Cli, team: None, iam: RecordingIam
) -> None:
    # GIVEN alice may send as team and tech, and a profile that may not change IAM policies
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")
    iam.denied.add("put_user_policy")

    # WHEN she leaves team
    result = cli("aliases", "remove", "team", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN one line names the refusal and says that the alias lists are unchanged (she is still in team), so the
    # operator does not take the member for removed
    assert result.code == 2
    assert result.err.count("\n") == 1 and "PutUserPolicy" in result.err
    assert "alias lists: nothing was changed" in result.err
    assert "0 of 1 send-as grant change(s) applied" in result.err
    team_members = client("ssm").get_parameter(Name=f"{ALIAS_PATH}/team")["Parameter"]["Value"]
    assert "alice@gmail.com" in team_members


def test_send_as_alias_change_declined_keeps_the_grant(cli: Cli, team: None) -> None:
    grant(cli, "bob@gmail.com", "team")

    result = cli("aliases", "remove", "team", "bob@gmail.com", "--config-env", "dev", stdin="n\n", tty=True)

    assert result.code == 1
    assert "may no longer send as team" in result.out
    assert len(users()) == 1


def test_send_as_alias_changes_without_leavers_do_not_read_iam(cli: Cli, team: None, iam: RecordingIam) -> None:
    # GIVEN IAM refusing every read: an addition must not need it
    iam.denied.update({"get_paginator", "list_users"})

    result = cli("aliases", "add", "team", "dave@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert result.err == ""


def test_send_as_alias_removal_warns_when_grants_cannot_be_read(cli: Cli, team: None, iam: RecordingIam) -> None:
    iam.denied.add("list_users")
    iam.denied.add("get_paginator")

    result = cli("aliases", "remove", "team", "bob@gmail.com", "--config-env", "dev", "--yes")

    assert result.code == 0
    assert "warning: cannot read the send-as grants" in result.err
    assert "check them with `forwarder send-as list`" in result.err


def test_send_as_alias_removal_without_an_environment_warns_that_grants_stay(cli: Cli, team: None) -> None:
    # GIVEN bob may send as team
    grant(cli, "bob@gmail.com", "team")

    # WHEN he leaves team through options naming the alias path but no environment (so no send-as path)
    result = cli(
        "aliases", "remove", "team", "bob@gmail.com", "--alias-path", ALIAS_PATH, "--region", REGION, "--domain",
        DOMAIN, "--yes",
    )  # fmt: skip

    # THEN the alias changes, and a warning says his grant was not revoked, instead of silence
    assert result.code == 0, result.err
    assert "send-as grants of members who leave are not revoked" in result.err
    assert "forwarder send-as list --config-env ENV" in result.err
    assert len(users()) == 1


def test_send_as_alias_removal_in_another_region_keeps_that_regions_grants(cli: Cli, team: None) -> None:
    # GIVEN bob's grant of team made in dev's region, and a copy of team's list in us-west-2 (e.g. left behind by
    # a move of the environment)
    grant(cli, "bob@gmail.com", "team")
    boto3.client("ssm", region_name="us-west-2").put_parameter(
        Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com,bob@gmail.com", Type="StringList"
    )

    # WHEN bob leaves us-west-2's team (the region overridden)
    result = cli("aliases", "remove", "team", "bob@gmail.com", "--config-env", "dev", "--region", "us-west-2", "--yes")

    # THEN his grant stays: he is still in team in the region his policy and password are for
    assert result.code == 0, result.err
    assert "may no longer send as" not in result.out
    assert policy_of(only_user())["Statement"][0]["Condition"] == {
        "StringEquals": {"ses:FromAddress": [f"team@{DOMAIN}"]}
    }


# revoke ------------------------------------------------------------------------------------------


def test_send_as_revoke_one_alias_keeps_the_others(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")

    result = cli("send-as", "revoke", "alice@gmail.com", "--alias", "tech", "--config-env", "dev", "--yes")

    assert result.code == 0, result.err
    assert "  ~ alice@gmail.com  may no longer send as tech (keeps team)" in result.out
    name = only_user()
    assert policy_of(name)["Statement"][0]["Condition"]["StringEquals"]["ses:FromAddress"] == [f"team@{DOMAIN}"]
    assert len(keys_of(name)) == 1


def test_send_as_revoke_everything_leaves_no_user_and_no_key(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")
    grant(cli, "alice@gmail.com", "tech")
    grant(cli, "bob@gmail.com", "team")
    alice = next(u["UserName"] for u in users() if "alice" in u["UserName"])

    result = cli("send-as", "revoke", "alice@gmail.com", "--config-env", "dev", "--yes", "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "member": "alice@gmail.com",
        "user": alice,
        "revoked": ["team", "tech"],
        "remaining": [],
        "user_deleted": True,
    }
    assert [u["UserName"] for u in users()] != [alice]
    assert len(users()) == 1
    with pytest.raises(ClientError):
        keys_of(alice)


def test_send_as_revoke_removes_what_iam_requires_gone_before_the_user(cli: Cli, team: None) -> None:
    # GIVEN alice's grant, to whose user someone attached a managed policy, a group and a console password
    grant(cli, "alice@gmail.com", "team")
    name = only_user()
    iam = client("iam")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    arn = iam.create_policy(PolicyName="extra", PolicyDocument=json.dumps(document))
    iam.attach_user_policy(UserName=name, PolicyArn=arn["Policy"]["Arn"])
    iam.create_group(GroupName="everyone")
    iam.add_user_to_group(GroupName="everyone", UserName=name)
    iam.create_login_profile(UserName=name, Password="Not-a-real-password-1")

    result = cli("send-as", "revoke", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN the user is gone, and with it its group membership
    assert result.code == 0, result.err
    assert users() == []
    assert iam.get_group(GroupName="everyone")["Users"] == []


def test_send_as_revoke_that_cannot_delete_the_user_says_what_is_left(cli: Cli, team: None, iam: RecordingIam) -> None:
    # GIVEN alice's grant, and IAM refusing DeleteUser
    grant(cli, "alice@gmail.com", "team")
    name = only_user()
    iam.denied.add("delete_user")

    result = cli("send-as", "revoke", "alice@gmail.com", "--config-env", "dev", "--yes")

    # THEN one line saying the keys are gone (the password no longer works) but the user is left
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert f"the keys of IAM user {name} are deleted (its SMTP password no longer works), but the user is left" in (
        result.err
    )
    assert keys_of(name) == []


def test_send_as_revoke_of_an_alias_not_granted(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")

    result = cli("send-as", "revoke", "alice@gmail.com", "--alias", "tech", "--config-env", "dev", "--yes")

    assert result.code == 2
    assert result.err == "forwarder: alice@gmail.com may not send as tech (granted: team): nothing to revoke\n"


def test_send_as_revoke_of_a_member_without_a_grant(cli: Cli, team: None) -> None:
    result = cli("send-as", "revoke", "carol@example.org", "--config-env", "dev", "--yes")

    assert result.code == 2
    assert result.err == (
        "forwarder: carol@example.org has no send-as grant in dev: see `forwarder send-as list --config-env dev`\n"
    )


def test_send_as_revoke_asks_at_a_terminal(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")

    result = cli("send-as", "revoke", "alice@gmail.com", "--config-env", "dev", stdin="n\n", tty=True)

    assert result.code == 1
    assert "revoke? [y/N]" in result.out
    assert len(users()) == 1


def test_send_as_revoke_json_at_a_terminal_keeps_stdout_json(cli: Cli, team: None) -> None:
    # GIVEN alice's grant
    grant(cli, "alice@gmail.com", "team")

    # WHEN it is revoked with --json at a terminal, answering yes
    result = cli("send-as", "revoke", "alice@gmail.com", "--config-env", "dev", "--json", stdin="y\n", tty=True)

    # THEN the plan and the question went to stderr, and stdout parses as the JSON result
    assert result.code == 0, result.err
    assert "may no longer send as team" in result.err and "revoke? [y/N]" in result.err
    assert json.loads(result.out)["user_deleted"] is True
    assert users() == []


# rotate ------------------------------------------------------------------------------------------


def test_send_as_rotate_keeps_the_old_key_until_finish(cli: Cli, team: None, iam: RecordingIam) -> None:
    # GIVEN alice's grant and its key
    old = grant(cli, "alice@gmail.com", "team")["smtp"]["username"]
    name = only_user()

    # WHEN rotating from a script (nobody to confirm)
    rotated = cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev")

    # THEN a new key with its password, and the old key still works until --finish
    assert rotated.code == 0, rotated.err
    new = next(k for k in keys_of(name) if k != old)
    assert f"  Password     {documented_password(iam.secrets[new], REGION)}\n" in rotated.out
    assert sorted(keys_of(name)) == sorted([old, new])
    assert (
        f"the old key {old} keeps working until you run "
        "`forwarder send-as rotate alice@gmail.com --finish --config-env dev`"
    ) in rotated.out

    # WHEN the member has confirmed and the rotation is finished
    finished = cli("send-as", "rotate", "alice@gmail.com", "--finish", "--config-env", "dev")

    # THEN only the new key is left
    assert finished.code == 0
    assert finished.out == f"deleted 1 old key(s): {old}\n"
    assert keys_of(name) == [new]


def test_send_as_rotate_finish_of_two_keys_made_in_one_second_asks_which_to_keep(
    cli: Cli, team: None, iam: RecordingIam, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a grant rotated within the second it was made (IAM gives a key's creation time to the second)
    listed = iam.real.list_access_keys

    def whole_seconds(**request: Any) -> Any:
        answer = listed(**request)
        for key in answer["AccessKeyMetadata"]:
            key["CreateDate"] = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
        return answer

    monkeypatch.setattr(iam.real, "list_access_keys", whole_seconds)
    monkeypatch.setattr(iam.real, "get_paginator", lambda name: _Pages(whole_seconds))
    old = grant(cli, "alice@gmail.com", "team")["smtp"]["username"]
    rotated = cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev")
    assert rotated.code == 0, rotated.err
    name = only_user()
    [new] = [k for k in keys_of(name) if k != old]
    # WHEN the rotation is finished without saying which key works
    refused = cli("send-as", "rotate", "alice@gmail.com", "--finish", "--config-env", "dev")
    # THEN nothing is deleted: which key is new is unknown, and the error says how to choose
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert "created in the same second" in refused.err and "--keep" in refused.err
    assert sorted(keys_of(name)) == sorted([old, new])
    # WHEN the operator names the key that works (its id is the SMTP username)
    kept = cli("send-as", "rotate", "alice@gmail.com", "--finish", "--keep", new, "--config-env", "dev")
    # THEN only that key is left
    assert kept.code == 0, kept.err
    assert keys_of(name) == [new]


def test_send_as_rotate_keep_must_name_a_key_of_the_member(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")
    unknown = cli("send-as", "rotate", "alice@gmail.com", "--finish", "--keep", "AKIANOTHERS", "--config-env", "dev")
    assert unknown.code == 2 and "has no key AKIANOTHERS" in unknown.err
    alone = cli("send-as", "rotate", "alice@gmail.com", "--keep", "AKIANOTHERS", "--config-env", "dev")
    assert alone.code == 2 and "--keep goes with --finish" in alone.err
    assert len(keys_of(only_user())) == 1


class _Pages:
    """A paginator over one call that answers in a single page."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def paginate(self, **request: Any) -> Any:
        yield self._call(**request)


def test_send_as_rotate_at_a_terminal_deletes_the_old_key_on_yes(cli: Cli, team: None) -> None:
    old = grant(cli, "alice@gmail.com", "team")["smtp"]["username"]
    name = only_user()

    result = cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev", stdin="y\n", tty=True)

    assert result.code == 0, result.err
    assert f"Delete the old key {old} now? [y/N]" in result.out
    [new] = keys_of(name)
    assert new != old
    assert f"  Username     {new}\n" in result.out


def test_send_as_rotate_twice_without_finishing_is_refused(cli: Cli, team: None) -> None:
    grant(cli, "alice@gmail.com", "team")
    assert cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev").code == 0

    result = cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev")

    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "a rotation is unfinished" in result.err
    assert len(keys_of(only_user())) == 2


def test_send_as_rotate_of_a_member_who_left_the_alias_is_refused(cli: Cli, team: None) -> None:
    # GIVEN bob may send as team, then was taken out of team in the console (no revocation followed)
    grant(cli, "bob@gmail.com", "team")
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="alice@gmail.com", Type="StringList", Overwrite=True)

    # WHEN his key is rotated
    result = cli("send-as", "rotate", "bob@gmail.com", "--config-env", "dev")

    # THEN refused in one line naming the revoke to run: a former member gets no fresh password for the alias
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "bob@gmail.com is no longer a member of team" in result.err
    assert "forwarder send-as revoke bob@gmail.com --alias team --config-env dev" in result.err
    assert len(keys_of(only_user())) == 1


def test_send_as_rotate_from_another_region_than_the_grants_is_refused(cli: Cli, team: None) -> None:
    # GIVEN alice's grant in dev (us-east-1)
    old = grant(cli, "alice@gmail.com", "team")["smtp"]["username"]

    # WHEN rotating with dev's region overridden
    result = cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev", "--region", "us-west-2")

    # THEN refused in one line, and no key made (its password, derived for us-west-2, could not send)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert f"is for {REGION} (its policy and password work there only), not us-west-2" in result.err
    assert keys_of(only_user()) == [old]


# doctor ------------------------------------------------------------------------------------------


def test_doctor_reports_a_grant_of_an_address_no_longer_in_the_alias(
    cli: Cli, team: None, resolver: FakeResolver
) -> None:
    # GIVEN alice's grant of team, and team edited behind the CLI's back (console, another tool)
    grant(cli, "alice@gmail.com", "team")
    client("ssm").put_parameter(Name=f"{ALIAS_PATH}/team", Value="bob@gmail.com", Type="StringList", Overwrite=True)

    result = cli("doctor", "--config-env", "dev", "--json")

    # THEN the send-as row fails and names the revocation
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert result.code == 1
    assert checks["send-as"]["status"] == "fail"
    assert "alice@gmail.com as team" in checks["send-as"]["detail"]
    assert "forwarder send-as revoke alice@gmail.com --alias team --config-env dev" in checks["send-as"]["fix"]


def test_doctor_warns_about_keys_older_than_the_set_age(
    cli: Cli, team: None, resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a grant whose key is 100 days old by the time the doctor runs, with the limit at 90
    grant(cli, "alice@gmail.com", "team")
    monkeypatch.setattr("forwarder_ops.sendas._now", lambda: datetime.now(UTC) + timedelta(days=100))

    checks = {c["name"]: c for c in json.loads(cli("doctor", "--config-env", "dev", "--json").out)["checks"]}

    assert checks["send-as"]["status"] == "warn"
    assert "1 key(s) older than 90 days: alice@gmail.com (100 days)" in checks["send-as"]["detail"]
    assert checks["send-as"]["fix"] == "forwarder send-as rotate alice@gmail.com --config-env dev"

    # AND a longer limit set through the environment accepts it
    monkeypatch.setenv("FORWARDER_SEND_AS_MAX_KEY_AGE_DAYS", "365")
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--config-env", "dev", "--json").out)["checks"]}
    assert checks["send-as"]["status"] == "ok"


def test_doctor_old_keys_of_an_unfinished_rotation_name_finish_not_rotate(
    cli: Cli, team: None, resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN alice's rotation left unfinished (two keys), both 100 days old by the time the doctor runs
    grant(cli, "alice@gmail.com", "team")
    assert cli("send-as", "rotate", "alice@gmail.com", "--config-env", "dev", "--json").code == 0
    monkeypatch.setattr("forwarder_ops.sendas._now", lambda: datetime.now(UTC) + timedelta(days=100))

    checks = {c["name"]: c for c in json.loads(cli("doctor", "--config-env", "dev", "--json").out)["checks"]}

    # THEN the fix finishes the rotation first (`rotate` alone is refused while IAM holds two keys), then rotates the
    # key kept, once each, not `rotate` twice
    assert checks["send-as"]["status"] == "warn"
    assert checks["send-as"]["fix"] == (
        "forwarder send-as rotate alice@gmail.com --finish --config-env dev\n"
        "forwarder send-as rotate alice@gmail.com --config-env dev"
    )


def test_check_send_as_old_key_beside_a_young_one_names_only_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from forwarder_ops import sendas

    # GIVEN a grant whose rotation is unfinished: the old key 100 days old, the new one a day old
    now = datetime.now(UTC)
    keys = (
        sendas.AccessKey("AKIAOLD", "Active", now - timedelta(days=100)),
        sendas.AccessKey("AKIANEW", "Active", now - timedelta(days=1)),
    )
    grants = [sendas.Grant("alice@gmail.com", "sendas-dev-alice", (f"team@{DOMAIN}",), keys=keys)]
    monkeypatch.setattr(sendas.GrantStore, "list", lambda self, keys=True: grants)
    target = SimpleNamespace(environment_name="dev", name="dev", region=REGION, client=lambda service: None)

    # WHEN the doctor's row is computed
    check = sendas.check_send_as(target, {"team": ["alice@gmail.com"]})  # type: ignore[arg-type]

    # THEN finishing the rotation is the whole fix (the key it keeps is young)
    assert check.fix == "forwarder send-as rotate alice@gmail.com --finish --config-env dev"


def test_doctor_in_another_region_does_not_call_that_regions_grants_stale(
    cli: Cli, team: None, resolver: FakeResolver
) -> None:
    # GIVEN alice's grant of team made in dev's region, and no aliases in us-west-2
    grant(cli, "alice@gmail.com", "team")

    # WHEN the doctor runs for dev with the region overridden (its alias lists there are empty)
    result = cli("doctor", "--config-env", "dev", "--region", "us-west-2", "--json")

    # THEN the send-as row does not tell the operator to revoke her grant (us-west-2's aliases say nothing about a
    # grant whose policy and password are for us-east-1); it says that grant was not checked here
    send_as = {c["name"]: c for c in json.loads(result.out)["checks"]}["send-as"]
    assert send_as["status"] != "fail", send_as
    assert "revoke" not in send_as["fix"]
    assert f"1 grant(s) made for {REGION} not checked here" in send_as["detail"]
