"""The SES SMTP password of an IAM access key: AWS's documented derivation, version 4.

SES does not take the secret access key itself over SMTP: it takes a password derived from it with
the SigV4 signing-key chain ("Obtaining Amazon SES SMTP credentials", "Use your own script to convert
existing credentials", https://docs.aws.amazon.com/ses/latest/dg/smtp-credentials.html): HMAC-SHA256
over the fixed date 11111111, the region, "ses", "aws4_request" and the message "SendRawEmail", keyed
first with "AWS4" + secret; the version byte 0x04 before the signature; base64. The region is part of
the chain, so a password works in one region only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

# Fixed by the documented algorithm; changing any of them yields a password SES refuses.
_DATE = "11111111"
_SERVICE = "ses"
_TERMINAL = "aws4_request"
_MESSAGE = "SendRawEmail"
_VERSION = 0x04

STARTTLS_PORT = 587
TLS_PORT = 465


def _sign(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def smtp_password(secret_access_key: str, region: str) -> str:
    """The SES SMTP password (version 4) for `secret_access_key` in `region`."""
    key = ("AWS4" + secret_access_key).encode("utf-8")
    for part in (_DATE, region, _SERVICE, _TERMINAL, _MESSAGE):
        key = _sign(key, part)
    return base64.b64encode(bytes([_VERSION]) + key).decode("ascii")


def smtp_server(region: str) -> str:
    """The SES SMTP endpoint of `region` (one per region, like the credentials)."""
    return f"email-smtp.{region}.amazonaws.com"
