"""`forwarder links rotate-key`: a new HMAC key for the download links and reply addresses.

The key is the stack's LinkSecret (output `LinkSecretArn`). Rotating is `PutSecretValue` with a new
random value: Secrets Manager moves `AWSCURRENT` to the new version and `AWSPREVIOUS` to the old
one, and the functions (forwarder.keyring) sign with the current key from their next refresh (at
most five minutes) while still accepting the previous one: for 30 days in download links, and in reply
addresses as long as their records live (FORWARDER_REPLY_EXPIRY_DAYS, 90 by default). A version older
than the previous one is accepted no longer: rotating again within 90 days ends the reply addresses (and
within 30 days the links) signed before the first rotation, so the command says so before it asks.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from forwarder.config import REPLY_EXPIRY_DAYS
from forwarder.keyring import GRACE_SECONDS, REFRESH_SECONDS, reply_grace_seconds

# As long as the key CloudFormation generates (PasswordLength 64): 48 random bytes, URL-safe base64.
KEY_BYTES = 48


def new_key() -> str:
    """A fresh random key (never printed nor logged)."""
    return secrets.token_urlsafe(KEY_BYTES)


def previous_key_age(client: Any, secret_id: str, now: float | None = None) -> float | None:
    """When a rotation would end a key that is still accepted: the current key's age in seconds, if the
    secret also has a previous version and the current one is younger than the longest grace period (that
    of reply addresses of the default expiry); else None."""
    versions = client.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=False)["Versions"]
    stages = {stage: version for version in versions for stage in version.get("VersionStages", [])}
    created = stages.get("AWSCURRENT", {}).get("CreatedDate")
    if "AWSPREVIOUS" not in stages or not isinstance(created, datetime):
        return None
    age = (time.time() if now is None else now) - created.timestamp()
    return age if age < reply_grace_seconds(REPLY_EXPIRY_DAYS) else None


def rotate_key(client: Any, secret_id: str) -> str:
    """Put a new random key as the secret's current version; the id of that version."""
    answer = client.put_secret_value(
        SecretId=secret_id, SecretString=new_key(), ClientRequestToken=secrets.token_hex(16)
    )
    return str(answer["VersionId"])


def cmd_rotate_key(args: argparse.Namespace, target: Any) -> int:
    from forwarder_ops.console import Declined, confirm

    secret_id = args.secret or target.output("LinkSecretArn")
    client = target.client("secretsmanager")
    days = GRACE_SECONDS // 86_400
    print(
        f"rotate the link key {secret_id} ({target.region}): new links and reply addresses are signed with a new "
        f"key within {REFRESH_SECONDS // 60} minutes; links signed with the current key keep working for {days} "
        "days, reply addresses as long as their records (FORWARDER_REPLY_EXPIRY_DAYS, "
        f"{REPLY_EXPIRY_DAYS} days by default)"
    )
    age = previous_key_age(client, secret_id)
    if age is not None:
        ended = "links and reply addresses" if age < GRACE_SECONDS else "reply addresses"
        print(
            f"warning: the current key is {age / 86_400:.0f} day(s) old: the key before it is still accepted, "
            f"and rotating now ends the {ended} signed with that one",
            file=sys.stderr,
        )
    try:
        confirm("rotate the key?", assume_yes=args.yes)
    except Declined:
        print("nothing changed")
        return 1
    version = rotate_key(client, secret_id)
    print(f"rotated: the current version of {secret_id} is now {version} (the key itself is not shown)")
    return 0


def add_parser(
    commands: Any, environment: argparse.ArgumentParser, target: Callable[[argparse.Namespace], Any]
) -> None:
    """`forwarder links ...`, with the environment options and the function that resolves the target."""
    links = commands.add_parser(
        "links",
        help="the key that signs download links and reply addresses",
        description="The HMAC key of the signed download links (and reply addresses), in Secrets Manager.",
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = links.add_parser(
        "rotate-key",
        parents=[environment],
        help="replace the key with a new random one (the previous one stays valid for 30 days in links, "
        "as long as their records in reply addresses)",
        description=__doc__.split("\n\n", 1)[1].replace("\n", " ") if __doc__ else None,
    )
    rotate.add_argument("--secret", metavar="ARN", help="the secret (default: the stack's LinkSecretArn output)")
    rotate.add_argument("-y", "--yes", action="store_true", help="rotate without asking")
    rotate.set_defaults(func=lambda args: cmd_rotate_key(args, target(args)))
