"""The SES v2 sender, and what an SES refusal means for the forward."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from forwarder.ports import (
    MAX_RECIPIENTS,
    MessageRejectedError,
    RecipientNotAuthorizedError,
    RecipientNotVerifiedError,
    SenderNotReadyError,
    SendError,
    SendUnconfirmedError,
)

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

_SENDER_NOT_READY = {
    "MailFromDomainNotVerifiedException": "the custom MAIL FROM domain of {domain} is not verified in {region}: "
    "publish its MX and SPF records (see `forwarder doctor`) and wait for SES to verify them",
    "AccountSuspendedException": "sending is suspended for this account in {region}: see the SES console's "
    "account dashboard",
    "SendingPausedException": "sending is paused for this account or configuration set in {region}: resume it "
    "in the SES console",
    "NotFoundException": "the configuration set does not exist in {region}: deploy the stack or unset "
    "FORWARDER_CONFIGURATION_SET",
}


# IAM's refusal: SES v2 (a REST-JSON API) names it AccessDeniedException, the v1 Query API AccessDenied.
_ACCESS_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tag_text(text: str) -> str:
    """An SES message tag name or value: ASCII letters, digits, `_` and `-`, at most 256 characters.
    Any other character becomes `_`; an empty text becomes `-`."""
    return _TAG_UNSAFE.sub("_", text)[:256] or "-"


def _no_blind_resend(caught_exception: Exception | None = None, **_: Any) -> None:
    """botocore's `needs-retry` handler for `SendEmail`, called before its retry handler: an error after the
    request went out (`HTTPClientError`: a read timeout, a connection closed before the answer) ends the call
    instead of a retry. `SendEmail` has no idempotency token, so each attempt SES took is one more copy in the
    members' inboxes. Errors before the request went out (`ConnectionError`: refused, connect timeout) and
    SES's own answers (throttling, 5xx: nothing sent) are retried as before."""
    if isinstance(caught_exception, HTTPClientError):
        raise caught_exception


class SesSender:
    """Sends raw messages with SES v2 `SendEmail` from `<alias>@domain` to explicit envelope recipients."""

    def __init__(self, client: SESV2Client, domain: str, configuration_set: str | None = None) -> None:
        self._client = client
        self.domain = domain
        self.configuration_set = configuration_set
        self._sandbox: bool | None = None
        # More specific than botocore's `needs-retry.sesv2`, so called first; an exception ends the emit.
        client.meta.events.register(
            "needs-retry.sesv2.SendEmail", _no_blind_resend, unique_id="forwarder-no-blind-resend"
        )

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def send(
        self,
        raw: bytes | bytearray,
        from_address: str,
        recipients: Sequence[str],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Send `raw` to `recipients` (at most 50) with SES message `tags`; returns SES's message id.

        Raises a `SendError` subclass when SES refuses for a lasting reason, `SendUnconfirmedError` when the
        request went out and no answer came back (SES may have taken the mail); any other error (throttling
        after botocore's retries, 5xx, network) propagates so that the invocation is retried.
        """
        if not 0 < len(recipients) <= MAX_RECIPIENTS:
            raise ValueError(f"SES accepts 1 to {MAX_RECIPIENTS} recipients per send, not {len(recipients)}")
        request: dict[str, Any] = {
            "FromEmailAddress": from_address,
            "Destination": {"ToAddresses": list(recipients)},
            "Content": {"Raw": {"Data": raw}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        if tags:
            request["EmailTags"] = [{"Name": tag_text(k), "Value": tag_text(v)} for k, v in tags.items()]
        try:
            return str(self._client.send_email(**request)["MessageId"])
        except ClientError as error:
            raise self.classify(error, recipients) from error
        except HTTPClientError as error:
            raise SendUnconfirmedError(
                f"no answer from SES to the send ({type(error).__name__}): SES may have taken the mail"
            ) from error

    def classify(self, error: ClientError, recipients: Sequence[str]) -> Exception:
        """The lasting `SendError` this refusal stands for, or the error itself when it may pass."""
        code = error.response.get("Error", {}).get("Code", "")
        if code in _SENDER_NOT_READY:
            message = _SENDER_NOT_READY[code].format(domain=self.domain, region=self.region)
            return SenderNotReadyError(message, code=code, recipients=recipients)
        if code == "MessageRejected":
            return self._diagnose_rejection(code, recipients, str(error.response.get("Error", {}).get("Message", "")))
        if code in _ACCESS_DENIED:
            return self._diagnose_access_denied(code, recipients)
        if code in ("BadRequestException", "InvalidParameterValue"):
            return MessageRejectedError(f"SES refused the request: {code}", code=code, recipients=recipients)
        return error

    def _diagnose_rejection(self, code: str, recipients: Sequence[str], said: str = "") -> SendError:
        # SES answers MessageRejected both for an unverified sender identity and, in the sandbox, for an
        # unverified recipient; ask SES which one it is instead of reading the error text.
        if self.identity_verified is False:
            return SenderNotReadyError(
                f"the SES identity {self.domain} is not verified in {self.region}: publish its DKIM "
                "records (see `forwarder doctor`) and wait for verification",
                code=code,
                recipients=recipients,
            )
        # SES's words for an unverified identity: "Email address is not verified. The following identities
        # failed the check in region ...". In the sandbox any other words are about the message itself. When
        # GetAccount cannot tell, those words alone do: out of the sandbox SES says them of our identity only.
        sandbox = self.in_sandbox
        unverified = "not verified" in said.lower()
        if (sandbox and not said.strip()) or (sandbox is not False and unverified):
            return RecipientNotVerifiedError(
                f"{self.region} is in the SES sandbox, where only verified addresses receive mail: verify "
                f"{', '.join(recipients)} in SES or request production access for {self.region} "
                "(SES console > Account dashboard > Request production access)",
                code=code,
                recipients=recipients,
            )
        # SES's own words say why (e.g. an attachment type it does not send); the members' notice quotes them.
        reason = " ".join(said.split())[:200] or "MessageRejected"
        return MessageRejectedError(reason, code=code, recipients=recipients)

    def _diagnose_access_denied(self, code: str, recipients: Sequence[str]) -> SendError:
        # In the sandbox SES evaluates the caller's IAM policy against the recipients' identities as well as
        # the sender's: a policy that names only the domain and the configuration set is refused for every
        # recipient. Out of the sandbox the role itself may not send as the domain.
        if self.in_sandbox:
            identities = ", ".join(
                f"arn:aws:ses:{self.region}:<account>:identity/{recipient}" for recipient in recipients
            )
            return RecipientNotAuthorizedError(
                f"{self.region} is in the SES sandbox, where IAM also checks ses:SendEmail against each "
                f"recipient's identity and refused it for {', '.join(recipients)}: request production access "
                f"for {self.region} (SES console > Account dashboard > Request production access), or verify "
                f"the recipients and add their identities ({identities}) to the function's SendAsTheDomain "
                "policy statement",
                code=code,
                recipients=recipients,
            )
        return SenderNotReadyError(
            f"the function's role may not send as {self.domain} in {self.region} (IAM {code}): its policy must "
            "allow ses:SendEmail on the domain identity and the configuration set (the template's "
            "SendAsTheDomain statement); redeploy the stack or fix the role",
            code=code,
            recipients=recipients,
        )

    @property
    def in_sandbox(self) -> bool | None:
        """Whether this region's account lacks production access; None when SES cannot be asked. Only an answer
        is remembered: a throttled or failed GetAccount, kept for the warm function's lifetime, would turn every
        later unverified recipient into a refusal of the whole batch."""
        if self._sandbox is None:
            try:
                self._sandbox = not self._client.get_account().get("ProductionAccessEnabled", True)
            except (ClientError, BotoCoreError):
                return None
        return self._sandbox

    @property
    def identity_verified(self) -> bool | None:
        """Whether the domain identity may send; None when SES cannot be asked. Asked at each refusal (refusals are
        rare), never remembered: an identity verified an hour ago may have lost its verification since, and a
        refusal for that is an environment to fix (the event parked), not a message to give up on."""
        try:
            identity = self._client.get_email_identity(EmailIdentity=self.domain)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NotFoundException":
                return False
            return None
        except BotoCoreError:
            return None
        return bool(identity.get("VerifiedForSendingStatus"))
