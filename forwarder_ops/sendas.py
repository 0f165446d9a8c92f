"""`forwarder send-as ...`: members send as an alias from Gmail, through SES SMTP, with their own key.

Gmail's "Send mail as" takes any SMTP server; SES has one per region. Each member gets one IAM user per
environment (path `/email-forwarder/<env>/send-as/`, tagged with the stack, environment, region and
member), whose only permission is an inline policy: `ses:SendRawEmail` (what SES authorises an SMTP
send as) on this environment's domain identity and its default configuration set, on condition that
`ses:FromAddress` is one of the aliases granted. The policy is the record of the grant: nothing else
is stored, and the secret access key only lives long enough to derive the SMTP password.

Alias edits follow: `forwarder aliases set/remove/import` revokes an alias from the grant of a member
who leaves it (`follow_alias_changes`), and `forwarder doctor` flags grants that outlived membership
and keys older than `FORWARDER_SEND_AS_MAX_KEY_AGE_DAYS` (90 by default) (`check_send_as`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from forwarder.mail.routing import NOT_AN_ADDRESS, skip_reason
from forwarder_ops.aliases import AliasStore, Change, alias_name
from forwarder_ops.console import print_json
from forwarder_ops.errors import CommandError, aws_code, describe_aws_error
from forwarder_ops.smtp_password import STARTTLS_PORT, TLS_PORT, smtp_password, smtp_server

if TYPE_CHECKING:
    from forwarder_ops.doctor import Check
    from forwarder_ops.envconfig import Target

POLICY_NAME = "send-as"
TAG_MEMBER = "email-forwarder:member"
TAG_ENVIRONMENT = "email-forwarder:environment"
TAG_STACK = "email-forwarder:stack"
TAG_REGION = "email-forwarder:region"
MAX_KEY_AGE_DAYS = 90
MAX_KEY_AGE_VARIABLE = "FORWARDER_SEND_AS_MAX_KEY_AGE_DAYS"
CATCH_ALL = "_catchall"  # forwarder.config's catch-all alias: mail for unknown addresses, not an address

# IAM user names: at most 64 of [A-Za-z0-9+=,.@_-], unique in the account (the path does not scope them).
_NAME_LIMIT = 64
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9+=,.@_-]")
# IAM tag values: letters, digits, spaces and _ . : / = + - @ (an address may hold others, e.g. ' or !).
_TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{1,256}$")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
# What an operator's profile needs for every send-as command, on the users under the send-as path.
_IAM_ACTIONS = (
    "iam:CreateUser, iam:TagUser, iam:GetUser, iam:ListUsers, iam:ListUserTags, iam:PutUserPolicy, "
    "iam:GetUserPolicy, iam:ListUserPolicies, iam:DeleteUserPolicy, iam:CreateAccessKey, iam:ListAccessKeys, "
    "iam:GetAccessKeyLastUsed, iam:DeleteAccessKey, iam:ListAttachedUserPolicies, iam:DetachUserPolicy, "
    "iam:ListGroupsForUser, iam:RemoveUserFromGroup, iam:DeleteLoginProfile, iam:DeleteUser"
)


# pure: names, policies, plans ---------------------------------------------------------------------


def user_path(environment: str) -> str:
    """The IAM path of an environment's send-as users."""
    return f"/email-forwarder/{environment}/send-as/"


def user_name(environment: str, member: str) -> str:
    """The IAM user of `member` in `environment`: readable, valid, and unique per member and environment.

    The readable part is cut to fit 64 characters; the hash of both keeps two long addresses (or an
    address and its look-alike after sanitising) apart.
    """
    digest = hashlib.sha256(f"{environment}\n{member.lower()}".encode()).hexdigest()[:10]
    readable = _NOT_IN_NAME.sub("-", f"sendas-{environment}-{member.lower()}")
    return f"{readable[: _NAME_LIMIT - len(digest) - 1]}-{digest}"


def from_address(alias: str, domain: str) -> str:
    return f"{alias}@{domain}"


def policy_document(resources: Sequence[str], addresses: Sequence[str]) -> dict[str, Any]:
    """The grant's only permission: send raw mail as the identity, From one of `addresses`.

    `ses:FromAddress` holds one address per message (a single-valued key), so `StringEquals` with a
    list matches any listed address; `ForAnyValue:` is for multivalued keys such as `ses:Recipients`.
    The SES documentation's "Restricting the From address" example uses the same operator.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendAsGrantedAliases",
                "Effect": "Allow",
                "Action": "ses:SendRawEmail",
                "Resource": list(resources),
                "Condition": {"StringEquals": {"ses:FromAddress": sorted(addresses)}},
            }
        ],
    }


def read_policy(document: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(resources, From addresses) of a grant's policy, as `policy_document` writes it."""
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))  # IAM returns the document URL-encoded
    resources: list[str] = []
    addresses: list[str] = []
    for statement in document.get("Statement", []):
        found = statement.get("Resource", [])
        resources += [found] if isinstance(found, str) else list(found)
        values = statement.get("Condition", {}).get("StringEquals", {}).get("ses:FromAddress", [])
        addresses += [values] if isinstance(values, str) else list(values)
    return tuple(dict.fromkeys(resources)), tuple(sorted({a.lower() for a in addresses}))


def alias_of_address(address: str) -> str:
    return address.partition("@")[0].lower()


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One access key of a send-as user (the SMTP username is its id)."""

    key_id: str
    status: str
    created: datetime
    last_used: datetime | None = None
    last_region: str | None = None

    def age_days(self, now: datetime) -> int:
        return (now - self.created).days

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "status": self.status,
            "created": self.created.isoformat(),
            "age_days": self.age_days(now),
            "last_used": self.last_used.isoformat() if self.last_used else None,
            "last_used_region": self.last_region,
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """A member's send-as grant in one environment: the IAM user and what its policy allows."""

    member: str
    user: str
    addresses: tuple[str, ...]
    resources: tuple[str, ...] = ()
    keys: tuple[AccessKey, ...] = ()
    region: str = ""

    @property
    def aliases(self) -> list[str]:
        return [alias_of_address(a) for a in self.addresses]

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "member": self.member,
            "user": self.user,
            "region": self.region,
            "aliases": self.aliases,
            "from_addresses": list(self.addresses),
            "keys": [key.as_dict(now) for key in self.keys],
        }


@dataclass(frozen=True, slots=True)
class GrantChange:
    """Aliases to take from a grant; with none left, the user and its keys go."""

    grant: Grant
    revoked: tuple[str, ...]

    @property
    def remaining(self) -> tuple[str, ...]:
        return tuple(a for a in self.grant.addresses if alias_of_address(a) not in self.revoked)

    @property
    def deletes_user(self) -> bool:
        return not self.remaining

    def line(self) -> str:
        if not self.revoked:  # a user left without a policy (a grant or revoke that failed half-way)
            return f"  - {self.grant.member}  has no alias granted: its IAM user and keys go"
        gone = ", ".join(self.revoked)
        if self.deletes_user:
            return f"  - {self.grant.member}  may no longer send as {gone}: no alias left, its IAM user and keys go"
        kept = ", ".join(alias_of_address(a) for a in self.remaining)
        return f"  ~ {self.grant.member}  may no longer send as {gone} (keeps {kept})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "member": self.grant.member,
            "user": self.grant.user,
            "revoked": list(self.revoked),
            "remaining": [alias_of_address(a) for a in self.remaining],
            "user_deleted": self.deletes_user,
        }


def plan_revocations(grants: Sequence[Grant], changes: Sequence[Change]) -> list[GrantChange]:
    """The grant changes that alias changes call for: a member who leaves an alias may no longer send as it."""
    planned = []
    for grant in grants:
        leaves = {change.alias for change in changes if grant.member.lower() in {m.lower() for m in change.removed}}
        revoked = tuple(alias for alias in grant.aliases if alias in leaves)
        if revoked:
            planned.append(GrantChange(grant, revoked))
    return planned


def made_for(grants: Sequence[Grant], region: str) -> list[Grant]:
    """The grants made for `region` (or before grants were tagged with theirs).

    IAM is global but the alias lists are per region: a grant follows the alias lists of the region its policy and
    password are for, not those of another region the command was pointed at (--region).
    """
    return [grant for grant in grants if not grant.region or grant.region == region]


def _is_member(member: str, members: Sequence[str]) -> bool:
    return member.lower() in {m.lower() for m in members}


def stale_grants(grants: Sequence[Grant], aliases: Mapping[str, Sequence[str]]) -> list[tuple[Grant, list[str]]]:
    """Each grant naming an alias its member no longer belongs to, with those aliases."""
    found = []
    for grant in grants:
        outlived = [
            alias for alias in grant.aliases if grant.member.lower() not in {m.lower() for m in aliases.get(alias, ())}
        ]
        if outlived:
            found.append((grant, outlived))
    return found


# IAM ---------------------------------------------------------------------------------------------


class GrantStore:
    """The send-as users of one environment in IAM."""

    def __init__(self, iam: Any, environment: str) -> None:
        self._iam = iam
        self.environment = environment
        self.path = user_path(environment)

    @contextmanager
    def _allowed(self) -> Iterator[None]:
        """IAM's refusal as one line naming the permissions to ask for."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as error:
            if aws_code(error) not in _DENIED:
                raise
            what = "create IAM users" if error.operation_name == "CreateUser" else f"call IAM {error.operation_name}"
            raise CommandError(
                f"no permission to {what} for send-as: use a profile with IAM rights (--profile NAME), "
                f"or ask for {_IAM_ACTIONS} on arn:aws:iam::*:user{self.path}*"
            ) from None

    def get(self, member: str, *, keys: bool = True) -> Grant | None:
        """The member's grant, or None when they have none in this environment."""
        name = user_name(self.environment, member)
        with self._allowed():
            try:
                user = self._iam.get_user(UserName=name)["User"]
            except Exception as error:
                if aws_code(error) == "NoSuchEntity":
                    return None
                raise
            return self._grant(user, keys)

    def list(self, *, keys: bool = True) -> list[Grant]:
        """Every grant of the environment, by member."""
        with self._allowed():
            users = [
                user
                for page in self._iam.get_paginator("list_users").paginate(PathPrefix=self.path)
                for user in page["Users"]
                if user.get("Path") == self.path
            ]
            return sorted((self._grant(user, keys) for user in users), key=lambda g: g.member.lower())

    def _grant(self, user: Mapping[str, Any], keys: bool) -> Grant:
        name = user["UserName"]
        tags = {t["Key"]: t["Value"] for t in self._iam.list_user_tags(UserName=name).get("Tags", [])}
        try:
            document = self._iam.get_user_policy(UserName=name, PolicyName=POLICY_NAME)["PolicyDocument"]
            resources, addresses = read_policy(document)
        except Exception as error:
            if aws_code(error) != "NoSuchEntity":
                raise
            resources, addresses = (), ()
        return Grant(
            member=tags.get(TAG_MEMBER, name),
            user=name,
            addresses=addresses,
            resources=resources,
            keys=self._keys(name) if keys else (),
            region=tags.get(TAG_REGION, ""),
        )

    def _keys(self, name: str) -> tuple[AccessKey, ...]:
        found = []
        for page in self._iam.get_paginator("list_access_keys").paginate(UserName=name):
            for key in page["AccessKeyMetadata"]:
                used = self._iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"]).get("AccessKeyLastUsed", {})
                region = used.get("Region")
                found.append(
                    AccessKey(
                        key_id=key["AccessKeyId"],
                        status=key.get("Status", "Active"),
                        created=key["CreateDate"],
                        last_used=used.get("LastUsedDate"),
                        last_region=region if region and region != "N/A" else None,
                    )
                )
        return tuple(sorted(found, key=lambda k: k.created))

    def create_user(self, member: str, tags: Mapping[str, str]) -> str:
        name = user_name(self.environment, member)
        with self._allowed():
            self._iam.create_user(
                Path=self.path, UserName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items() if v]
            )
        return name

    def put_policy(self, name: str, document: Mapping[str, Any]) -> None:
        with self._allowed():
            self._iam.put_user_policy(UserName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(document))

    def create_key(self, name: str) -> tuple[str, str]:
        """A new access key: (id, secret). The secret is returned once and must not be kept."""
        with self._allowed():
            key = self._iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def delete_key(self, name: str, key_id: str) -> None:
        with self._allowed():
            self._iam.delete_access_key(UserName=name, AccessKeyId=key_id)

    def delete_user(self, name: str) -> None:
        """The user, after what IAM's DeleteUser requires gone first (it refuses otherwise): its keys, inline
        and attached policies, group memberships and console password (none of them ours but the first two).

        The keys go first: without them the member can no longer send, whatever fails after; a failure
        after them says so, and that the user is left.
        """
        from botocore.exceptions import ClientError

        with self._allowed():
            for page in self._iam.get_paginator("list_access_keys").paginate(UserName=name):
                for key in page["AccessKeyMetadata"]:
                    self._iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
        try:
            with self._allowed():
                for page in self._iam.get_paginator("list_user_policies").paginate(UserName=name):
                    for policy in page["PolicyNames"]:
                        self._iam.delete_user_policy(UserName=name, PolicyName=policy)
                for page in self._iam.get_paginator("list_attached_user_policies").paginate(UserName=name):
                    for attached in page["AttachedPolicies"]:
                        self._iam.detach_user_policy(UserName=name, PolicyArn=attached["PolicyArn"])
                for page in self._iam.get_paginator("list_groups_for_user").paginate(UserName=name):
                    for group in page["Groups"]:
                        self._iam.remove_user_from_group(UserName=name, GroupName=group["GroupName"])
                try:
                    self._iam.delete_login_profile(UserName=name)
                except ClientError as error:
                    if aws_code(error) != "NoSuchEntity":
                        raise
                self._iam.delete_user(UserName=name)
        except (ClientError, CommandError) as error:
            reason = describe_aws_error(error) or str(error)
            raise CommandError(
                f"the keys of IAM user {name} are deleted (its SMTP password no longer works), but the user is "
                f"left: {reason}"
            ) from None

    def apply(self, change: GrantChange) -> None:
        if change.deletes_user:
            self.delete_user(change.grant.user)
        else:
            self.put_policy(change.grant.user, policy_document(change.grant.resources, change.remaining))


# the commands ------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """What a member types into Gmail; shown once."""

    server: str
    username: str
    password: str = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "port_starttls": STARTTLS_PORT,
            "port_tls": TLS_PORT,
            "username": self.username,
            "password": self.password,
        }


def _now() -> datetime:
    return datetime.now(UTC)


class SendAs:
    """What `forwarder send-as <action>` does for one environment; warnings go to `err`."""

    def __init__(self, target: Target, err: TextIO) -> None:
        self.target = target
        self.err = err
        environment = target.environment_name
        if not environment:
            raise CommandError("send-as grants are per environment: give --config-env ENV")
        self.environment = environment
        self.store = GrantStore(target.client("iam"), environment)

    @property
    def env_flag(self) -> str:
        """The flags of the environment in the commands an advice suggests: --config-env, else the region and
        stack this command acted on (not the shell's default region)."""
        return self.target.command_flags

    @property
    def domain(self) -> str:
        domain = self.target.domain
        if not domain:
            raise CommandError("the domain is unknown: give --config-env ENV or --domain DOMAIN")
        return domain

    def member(self, text: str) -> str:
        member = text.strip()
        reason = skip_reason(member, self.domain)
        if reason == NOT_AN_ADDRESS:
            raise CommandError(f"{text!r} is not a valid address: give the member's own mailbox, e.g. alice@gmail.com")
        if reason:
            raise CommandError(f"{member} is on {self.domain} itself: give the member's own mailbox (their Gmail)")
        if not _TAG_VALUE.match(member):
            raise CommandError(
                f"{member} holds characters IAM tags refuse: grant send-as to another of their addresses"
            )
        return member

    def existing_grant(self, member: str) -> Grant:
        grant = self.store.get(member)
        if grant is None:
            raise CommandError(
                f"{member} has no send-as grant in {self.environment}: see `forwarder send-as list{self.env_flag}`"
            )
        return grant

    def credentials(self, key_id: str, secret: str) -> Credentials:
        region = self.target.region
        return Credentials(smtp_server(region), key_id, smtp_password(secret, region))

    # grant ---------------------------------------------------------------------------------------

    def grant(self, member_text: str, alias_text: str, *, allow_sandbox: bool) -> dict[str, Any]:
        """Let the member send as the alias; a new user gets a key (its password is in the result, once)."""
        from botocore.exceptions import ClientError

        member = self.member(member_text)
        alias = alias_name(alias_text, self.domain)
        if alias == CATCH_ALL:
            raise CommandError(f"{CATCH_ALL} (the catch-all) has no address to send as: grant a named alias")
        aliases = self._require_membership(member, alias)
        existing = self.store.get(member)
        if existing is not None:
            self._require_region(existing)
        resources = self._resources()
        self._refuse_sandbox(alias, allow_sandbox)
        # The policy is written whole: an alias the member has left since (an alias list edited in the console, which
        # no revocation followed) must not be written back into it along with the new one.
        left = sorted({a for a in existing.aliases if not _is_member(member, aliases.get(a, ()))}) if existing else []
        kept = [a for a in existing.addresses if alias_of_address(a) not in left] if existing else []
        addresses = sorted({*kept, from_address(alias, self.domain)})
        # An inactive key (deactivated by hand) authenticates nowhere: a member with no active key needs a new one.
        active = [key.key_id for key in existing.keys if key.status == "Active"] if existing else []
        if existing is not None and not active and len(existing.keys) >= 2:
            raise CommandError(
                f"{member}'s keys {', '.join(k.key_id for k in existing.keys)} are all inactive and IAM allows two: "
                f"delete one (`forwarder send-as rotate {member} --finish{self.env_flag}`), then grant"
            )
        name = self.store.create_user(member, self._tags(member)) if existing is None else existing.user
        credentials = None
        changed = existing is None or tuple(addresses) != existing.addresses or tuple(resources) != existing.resources
        try:
            if changed:
                self.store.put_policy(name, policy_document(resources, addresses))
            if existing is None or not active:
                credentials = self.credentials(*self.store.create_key(name))
        except (ClientError, CommandError) as error:
            if existing is None:
                self._remove_new_user(name, member, error)
            raise
        for gone in left:
            self.err.write(f"forwarder: warning: {member} is no longer a member of {gone}: this grant drops it\n")
        return {
            "member": member,
            "environment": self.environment,
            "region": self.target.region,
            "user": name,
            "path": self.store.path,
            "alias": alias,
            "from_address": from_address(alias, self.domain),
            "aliases": [alias_of_address(a) for a in addresses],
            "created": existing is None,
            "changed": changed or credentials is not None,
            "existing_keys": active,
            "smtp": credentials.as_dict() if credentials else None,
        }

    def _remove_new_user(self, name: str, member: str, error: Exception) -> None:
        """Undo the user a failed grant created; when that fails too, say that it is left and how to remove it."""
        from botocore.exceptions import ClientError

        try:
            self.store.delete_user(name)
        except (ClientError, CommandError):
            reason = describe_aws_error(error) or str(error)
            raise CommandError(
                f"{reason}; the IAM user {name} this grant created is left, without a key: "
                f"`forwarder send-as revoke {member} --yes{self.env_flag}` removes it"
            ) from None

    def _require_region(self, grant: Grant) -> None:
        """A grant's policy names the identity of its region, and its passwords are derived for that region:
        extending or rotating it from another region would leave the member a password that cannot send."""
        if grant.region and grant.region != self.target.region:
            raise CommandError(
                f"{grant.member}'s send-as grant in {self.environment} is for {grant.region} (its policy and password "
                f"work there only), not {self.target.region}: drop --region (or FORWARDER_OPS_REGION), or revoke "
                "the grant and grant again"
            )

    def _require_membership(self, member: str, alias: str) -> dict[str, list[str]]:
        """The alias lists, once `member` is known to be in `alias`."""
        path = self.target.alias_path
        aliases = AliasStore(self.target.client("ssm"), path).read()
        if alias not in aliases:
            raise CommandError(f"no alias {alias} under {path}: see `forwarder aliases list{self.env_flag}`")
        if not _is_member(member, aliases[alias]):
            raise CommandError(
                f"{member} is not a member of {alias}: add them first "
                f"(`forwarder aliases add {alias} {member}{self.env_flag}`), then grant"
            )
        return aliases

    def _tags(self, member: str) -> dict[str, str]:
        return {
            TAG_MEMBER: member,
            TAG_ENVIRONMENT: self.environment,
            TAG_STACK: self.target.stack_name or "",
            TAG_REGION: self.target.region,
        }

    def _resources(self) -> list[str]:
        """The identity's ARN, and its default configuration set's: SES authorises a send against both."""
        from botocore.exceptions import ClientError

        try:
            identity = self.target.client("sesv2").get_email_identity(EmailIdentity=self.domain)
        except Exception as error:
            if aws_code(error) != "NotFoundException":
                raise
            deploy = f"sam deploy --config-env {self.target.name}" if self.target.name else "sam deploy"
            raise CommandError(
                f"{self.domain} is not an SES identity in {self.target.region}: deploy the stack (`{deploy}`); "
                "SMTP credentials send only in the identity's region"
            ) from None
        if not identity.get("VerifiedForSendingStatus", False):
            raise CommandError(
                f"{self.domain} is not verified for sending in {self.target.region} yet: "
                f"see `forwarder doctor{self.env_flag}` (DKIM), then grant"
            )
        try:
            outputs = self.target.outputs()
        except CommandError:  # no stack name, or not deployed under it: build the ARNs from the account
            outputs = {}
        except ClientError as error:  # no right to read the stack (not among send-as's permissions): the same
            if aws_code(error) not in _DENIED:
                raise
            outputs = {}
        identity_arn = outputs.get("IdentityArn")
        if identity_arn and not identity_arn.endswith(f":identity/{self.domain}"):
            identity_arn = None  # the stack's identity is another domain's (--domain, or DomainName changed since)
        caller = None
        if not identity_arn:
            caller = self.target.client("sts").get_caller_identity()
            partition = str(caller["Arn"]).split(":")[1]
            identity_arn = f"arn:{partition}:ses:{self.target.region}:{caller['Account']}:identity/{self.domain}"
        resources = [identity_arn]
        configuration_set = identity.get("ConfigurationSetName") or outputs.get("ConfigurationSetName")
        if configuration_set:
            prefix = identity_arn.rsplit(":identity/", 1)[0]
            resources.append(f"{prefix}:configuration-set/{configuration_set}")
        return resources

    def _refuse_sandbox(self, alias: str, allow_sandbox: bool) -> None:
        try:
            account = self.target.client("sesv2").get_account()
        except Exception as error:
            if aws_code(error) not in _DENIED:
                raise
            self.err.write("forwarder: warning: cannot read the SES account (ses:GetAccount): sandbox not checked\n")
            return
        if not account.get("ProductionAccessEnabled", False) and not allow_sandbox:
            raise CommandError(
                f"SES in {self.target.region} is in the sandbox: mail sent as {from_address(alias, self.domain)} "
                "would reach verified addresses only; request production access (SES console > Account dashboard) "
                "or pass --allow-sandbox"
            )

    # revoke --------------------------------------------------------------------------------------

    def plan_revoke(self, member_text: str, alias_text: str | None) -> GrantChange:
        grant = self.existing_grant(member_text.strip())
        if alias_text is None:
            return GrantChange(grant, tuple(grant.aliases))
        alias = alias_name(alias_text, self.domain)
        if alias not in grant.aliases:
            granted = ", ".join(grant.aliases) or "nothing"
            raise CommandError(f"{grant.member} may not send as {alias} (granted: {granted}): nothing to revoke")
        return GrantChange(grant, (alias,))

    # rotate --------------------------------------------------------------------------------------

    def rotate(self, member_text: str) -> tuple[Grant, Credentials]:
        """A new key for the member; the old one stays until `finish` (IAM holds two keys at most)."""
        grant = self.existing_grant(member_text.strip())
        self._require_region(grant)
        # A grant that outlived membership (an alias list edited in the console) is the doctor's ✗: revoked, not
        # renewed with a fresh password.
        aliases = AliasStore(self.target.client("ssm"), self.target.alias_path).read()
        stale = stale_grants([grant], aliases)
        if stale:
            left = stale[0][1]
            raise CommandError(
                f"{grant.member} is no longer a member of {', '.join(left)}: revoke it first "
                f"(`forwarder send-as revoke {grant.member} --alias {left[0]}{self.env_flag}`), then rotate"
            )
        if len(grant.keys) >= 2:
            raise CommandError(
                f"{grant.member} has two keys, so a rotation is unfinished: once the newest password works in "
                f"Gmail, run `forwarder send-as rotate {grant.member} --finish{self.env_flag}`"
            )
        return grant, self.credentials(*self.store.create_key(grant.user))

    def finish(self, grant: Grant, keep: str | None = None) -> list[str]:
        """Delete every key of the grant but `keep` (default: the newest); the ids deleted."""
        if not grant.keys:
            return []
        if keep is None:
            # IAM gives a key's creation time to the second: two keys of one second have no newest.
            newest = [key.key_id for key in grant.keys if key.created == grant.keys[-1].created]
            if len(newest) > 1:
                raise CommandError(
                    f"the keys {' and '.join(newest)} of {grant.member} were created in the same second, so which "
                    "is new is unknown: add --keep <the SMTP username that works in Gmail>"
                )
            keep = newest[0]
        old = [key.key_id for key in grant.keys if key.key_id != keep]
        for key_id in old:
            self.store.delete_key(grant.user, key_id)
        return old


# alias changes follow ----------------------------------------------------------------------------


@dataclass
class GrantFollowUp:
    """The grant changes that go with a set of alias changes: shown in the diff, applied with them."""

    out: TextIO = field(repr=False)
    store: GrantStore | None = None
    changes: list[GrantChange] = field(default_factory=list)

    def render(self) -> list[str]:
        if not self.changes or self.store is None:
            return []
        return [f"send-as grants that follow (IAM users under {self.store.path}):"] + [c.line() for c in self.changes]

    def apply(self) -> None:
        """Revoke before the alias lists are written; a failure says that the alias lists are unchanged."""
        from botocore.exceptions import ClientError

        if self.store is None:
            return
        for done, change in enumerate(self.changes):
            try:
                self.store.apply(change)
            except (ClientError, CommandError) as error:
                reason = describe_aws_error(error) or str(error)
                raise CommandError(
                    f"{reason}; alias lists: nothing was changed (the send-as revocations go first); "
                    f"{done} of {len(self.changes)} send-as grant change(s) applied"
                ) from None
        if self.changes:
            self.out.write(
                f"send-as: {len(self.changes)} grant(s) changed, members who left an alias no longer send as it\n"
            )


def follow_alias_changes(target: Target, changes: Sequence[Change], out: TextIO, err: TextIO) -> GrantFollowUp:
    """Plan the grant revocations for alias changes; IAM is read only when a member leaves an alias."""
    from botocore.exceptions import ClientError

    environment = target.environment_name
    if not any(change.removed for change in changes):
        return GrantFollowUp(out=out)
    if not environment:
        # The grants live under the environment's path: without its name they cannot be found, and a member who
        # leaves would silently keep sending as the alias.
        err.write(
            "forwarder: warning: the environment is unknown (give --config-env ENV), so the send-as grants of "
            "members who leave are not revoked; check them with `forwarder send-as list --config-env ENV`\n"
        )
        return GrantFollowUp(out=out)
    store = GrantStore(target.client("iam"), environment)
    try:
        grants = store.list(keys=False)
    except (ClientError, CommandError) as error:
        err.write(
            f"forwarder: warning: cannot read the send-as grants ({str(error).splitlines()[0]}); "
            "check them with `forwarder send-as list` after this change\n"
        )
        return GrantFollowUp(out=out)
    return GrantFollowUp(out, store, plan_revocations(made_for(grants, target.region), changes))


# doctor ------------------------------------------------------------------------------------------


def max_key_age_days() -> int:
    try:
        return max(1, int(os.environ.get(MAX_KEY_AGE_VARIABLE, MAX_KEY_AGE_DAYS)))
    except ValueError:
        return MAX_KEY_AGE_DAYS


def check_send_as(target: Target, aliases: Mapping[str, Sequence[str]]) -> Check:
    """The doctor's row: grants of former members (✗) and keys older than the set age (!)."""
    from forwarder_ops.doctor import Check, Status

    environment = target.environment_name
    if not environment:
        return Check("send-as", Status.SKIP, "no environment name: give --config-env ENV")
    found = GrantStore(target.client("iam"), environment).list()
    if not found:
        return Check("send-as", Status.OK, "no send-as grants")
    # A grant made for another region (the doctor run with --region) is judged against that region's aliases, not
    # these, or every member would look like a leaver.
    grants = made_for(found, target.region)
    elsewhere = sorted({g.region for g in found if g not in grants})
    note = (
        f"; {len(found) - len(grants)} grant(s) made for {', '.join(elsewhere)} not checked here" if elsewhere else ""
    )
    flag = f" --config-env {target.name}" if target.name else ""
    stale = stale_grants(grants, aliases)
    if stale:
        shown = "; ".join(f"{g.member} as {', '.join(a)}" for g, a in stale)
        fixes = [f"forwarder send-as revoke {g.member} --alias {a}{flag}" for g, outlived in stale for a in outlived]
        return Check(
            "send-as",
            Status.FAIL,
            f"{len(stale)} grant(s) for addresses no longer in the alias: {shown}{note}",
            "revoke them:\n" + "\n".join(fixes),
        )
    limit = max_key_age_days()
    now = _now()
    old = [(g, k) for g in grants for k in g.keys if k.age_days(now) > limit]
    if old:
        shown = ", ".join(f"{g.member} ({k.age_days(now)} days)" for g, k in old)
        fixes = []
        for grant in dict.fromkeys(g for g, _ in old):
            if len(grant.keys) > 1:  # a rotation left unfinished: IAM holds two keys, so `rotate` would be refused
                fixes.append(f"forwarder send-as rotate {grant.member} --finish{flag}")
                if grant.keys[-1].age_days(now) <= limit:  # the key --finish keeps is young: nothing more to do
                    continue
            fixes.append(f"forwarder send-as rotate {grant.member}{flag}")
        return Check(
            "send-as", Status.WARN, f"{len(old)} key(s) older than {limit} days: {shown}{note}", "\n".join(fixes)
        )
    return Check("send-as", Status.OK, f"{len(grants)} grant(s), all members, keys younger than {limit} days{note}")


# output ------------------------------------------------------------------------------------------


def render_credentials(credentials: Credentials) -> list[str]:
    return [
        "SMTP settings, shown once (the password cannot be shown again; `forwarder send-as rotate` makes a new one):",
        f"  SMTP Server  {credentials.server}",
        f"  Port         {STARTTLS_PORT} (TLS, i.e. STARTTLS) or {TLS_PORT} (SSL)",
        f"  Username     {credentials.username}",
        f"  Password     {credentials.password}",
    ]


def gmail_steps(address: str, server: str, *, new_password: bool) -> list[str]:
    """The four steps a member takes in Gmail (on a computer: the app cannot add a "Send mail as")."""
    login = "the username and password above" if new_password else "the username and password you already use"
    return [
        "In Gmail on a computer (the member does this; it cannot be done from the phone app):",
        "  1. Settings (gear) > See all settings > Accounts and Import > Send mail as > Add another email address.",
        f"  2. Name: how recipients see it, e.g. the team's name; Email address: {address}; Next Step.",
        f"  3. SMTP Server {server}, Port {STARTTLS_PORT}, {login}, 'Secured connection using TLS'; Add Account.",
        f"  4. Gmail mails a confirmation to {address}; the forwarder forwards it to every member of the alias,",
        "     this member included: click its link (or enter its code). From then on, pick the address in From.",
    ]


def describe_grant(result: Mapping[str, Any], env_flag: str = "") -> list[str]:
    # A grant repeated as it stands changes nothing: saying "updated" or "now also" would suggest it did.
    repeated = not result.get("changed", True)
    verb = "granted" if result["created"] else "unchanged, already granted" if repeated else "updated"
    lines = [
        f"send-as {verb}: {result['member']} may send as {', '.join(result['aliases'])} "
        f"({result['environment']}, {result['region']})",
        f"IAM user {result['user']} under {result['path']}",
        "",
    ]
    smtp = result["smtp"]
    credentials = Credentials(smtp["server"], smtp["username"], smtp["password"]) if smtp else None
    if credentials:
        lines += [*render_credentials(credentials), ""]
    else:
        keys = ", ".join(result["existing_keys"])
        lines += [
            f"No new key: the member's SMTP credentials (username {keys}) {'already' if repeated else 'now also'} "
            f"send as {result['from_address']}.",
            f"Lost them? `forwarder send-as rotate {result['member']}{env_flag}` makes a new password.",
            "",
        ]
    return lines + gmail_steps(result["from_address"], smtp_server(result["region"]), new_password=bool(smtp))


def render_list(grants: Sequence[Grant], path: str, now: datetime) -> list[str]:
    from forwarder_ops.console import table

    rows = []
    for grant in grants:
        keys = grant.keys or (None,)
        for index, key in enumerate(keys):
            first = index == 0
            rows.append(
                (
                    grant.member if first else "",
                    ", ".join(grant.aliases) if first else "",
                    # An inactive key (deactivated by hand) authenticates nowhere: not to be taken for a working one.
                    (key.key_id + (f" ({key.status.lower()})" if key.status != "Active" else ""))
                    if key
                    else "(no key)",
                    f"{key.age_days(now)} days" if key else "",
                    (key.last_used.strftime("%Y-%m-%d") + (f" {key.last_region}" if key.last_region else ""))
                    if key and key.last_used
                    else ("never" if key else ""),
                )
            )
    header = f"{len(grants)} send-as grant(s) (IAM users under {path})"
    return [header, *table(rows, ("member", "aliases", "key (SMTP username)", "age", "last used"), "  ")]


# the CLI -----------------------------------------------------------------------------------------


def add_parser(commands: Any, environment: argparse.ArgumentParser, target: Callable[[Any], Target]) -> None:
    """`forwarder send-as grant|list|revoke|rotate`, with the shared environment options."""
    send_as = commands.add_parser(
        "send-as",
        help="SES SMTP credentials per member, to send as an alias from Gmail",
        description="Let a member send as an alias from Gmail's 'Send mail as' through SES SMTP: one IAM user "
        "per member and environment, allowed ses:SendRawEmail From the granted aliases only.",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")

    def run(handler: Callable[[SendAs, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: handler(SendAs(target(args), sys.stderr), args)

    grant = send_as.add_parser(
        "grant",
        parents=[environment],
        help="let a member send as an alias; prints the SMTP settings once",
        description="Create (or extend) the member's IAM user for the environment, allow it to send From the "
        "alias, and print the SMTP settings and the Gmail steps. A new user gets an access key; the SMTP "
        "password derived from it is printed once and never stored.",
    )
    grant.add_argument("member", help="the member's own address, e.g. alice@gmail.com")
    grant.add_argument("--alias", required=True, help="alias to send as, e.g. team (or team@<domain>)")
    grant.add_argument("--allow-sandbox", action="store_true", help="grant even while SES is in the sandbox")
    grant.add_argument("--json", action="store_true", help="machine-readable output (holds the password)")
    grant.set_defaults(func=run(_cmd_grant))

    listing = send_as.add_parser("list", parents=[environment], help="members, their aliases, key age, last use")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run(_cmd_list))

    revoke = send_as.add_parser(
        "revoke",
        parents=[environment],
        help="take an alias from a member's grant, or the whole grant (user and keys)",
    )
    revoke.add_argument("member", help="the member's address")
    revoke.add_argument("--alias", help="only this alias (default: every alias, deleting the user and its keys)")
    revoke.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    revoke.add_argument("--json", action="store_true", help="machine-readable output")
    revoke.set_defaults(func=run(_cmd_revoke))

    rotate = send_as.add_parser(
        "rotate",
        parents=[environment],
        help="a new key and password for a member; the old key goes once the member confirms",
        description="Create a new key and print its SMTP settings. At a terminal, the old key is deleted when "
        "you answer yes (once the member has saved the new password in Gmail); otherwise it stays until "
        "`rotate MEMBER --finish`.",
    )
    rotate.add_argument("member", help="the member's address")
    rotate.add_argument("--finish", action="store_true", help="delete every key but the newest")
    rotate.add_argument(
        "--keep", metavar="KEY_ID", help="with --finish: the key to keep (its id is the SMTP username), not the newest"
    )
    rotate.add_argument("--json", action="store_true", help="machine-readable output (holds the password)")
    rotate.set_defaults(func=run(_cmd_rotate))


def _cmd_grant(send_as: SendAs, args: argparse.Namespace) -> int:
    result = send_as.grant(args.member, args.alias, allow_sandbox=args.allow_sandbox)
    if args.json:
        print_json(result)
    else:
        print("\n".join(describe_grant(result, send_as.env_flag)))
    return 0


def _cmd_list(send_as: SendAs, args: argparse.Namespace) -> int:
    grants = send_as.store.list()
    now = _now()
    if args.json:
        print_json([grant.as_dict(now) for grant in grants])
    else:
        print("\n".join(render_list(grants, send_as.store.path, now)))
    return 0


def _cmd_revoke(send_as: SendAs, args: argparse.Namespace) -> int:
    from forwarder_ops.console import Declined, confirm

    change = send_as.plan_revoke(args.member, args.alias)
    # With --json, stdout holds the JSON alone: the plan, the question and the answer go to stderr.
    info = sys.stderr if args.json else sys.stdout
    if not args.json or not args.yes:
        info.write(f"send-as grants under {send_as.store.path}:\n{change.line()}\n")
    try:
        confirm("revoke?", assume_yes=args.yes, out=info)
    except Declined:
        info.write("nothing changed\n")
        return 1
    send_as.store.apply(change)
    if args.json:
        print_json(change.as_dict())
    else:
        print("revoked: Gmail's 'Send mail as' for it now fails to send (the member may delete it there)")
    return 0


def _cmd_rotate(send_as: SendAs, args: argparse.Namespace) -> int:
    if args.keep is not None and not args.finish:
        raise CommandError("--keep goes with --finish: `forwarder send-as rotate MEMBER --finish --keep KEY_ID`")
    if args.finish:
        grant = send_as.existing_grant(args.member.strip())
        keep = args.keep.strip() if args.keep is not None else None
        ids = [key.key_id for key in grant.keys]
        if keep is not None and keep not in ids:
            raise CommandError(f"{grant.member} has no key {keep}: its keys are {', '.join(ids)}")
        deleted = send_as.finish(grant, keep=keep)
        if args.json:
            print_json({"member": grant.member, "user": grant.user, "deleted_keys": deleted})
        else:
            print(
                f"deleted {len(deleted)} old key(s): {', '.join(deleted)}" if deleted else "nothing to finish: one key"
            )
        return 0
    grant, credentials = send_as.rotate(args.member)
    old = [key.key_id for key in grant.keys]
    if args.json:
        print_json({"member": grant.member, "user": grant.user, "old_keys": old, "smtp": credentials.as_dict()})
        return 0
    address = from_address(grant.aliases[0], send_as.domain) if grant.aliases else "the alias"
    print(f"new key for {grant.member} ({send_as.environment}, {send_as.target.region})\n")
    print("\n".join(render_credentials(credentials)))
    print(
        f"\nIn Gmail: Settings > Accounts and Import > Send mail as > 'edit info' next to {address} > "
        "Next Step > enter the new username and password > Save Changes (for each alias address listed there)."
    )
    if not old:
        return 0
    finish = f"forwarder send-as rotate {grant.member} --finish{send_as.env_flag}"
    if sys.stdin.isatty():
        sys.stdout.write(f"Has {grant.member} saved the new password? Delete the old key {', '.join(old)} now? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() in {"y", "yes"}:
            deleted = send_as.finish(grant, keep=credentials.username)
            print(f"deleted the old key(s): {', '.join(deleted)}")
            return 0
    print(f"the old key {', '.join(old)} keeps working until you run `{finish}`")
    return 0
