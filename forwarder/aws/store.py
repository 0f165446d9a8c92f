"""The mail store: the raw messages SES's S3 action wrote, read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from forwarder.ports import MessageBuffer, StoredMailError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_ABSENT = _MISSING | {"403", "AccessDenied"}
# Free bytes before (and capacity after) a large message: more than any rewrite adds to a header block (a
# few hundred bytes to a few KB), and nothing beside a message of megabytes. A small message gets less: a
# copy of it costs less than allocating and clearing the room.
HEADROOM = 64 * 1024
SMALL_ROOM = 4 * 1024


def room_for(length: int) -> int:
    """The free bytes to leave before a message of `length` bytes."""
    return min(HEADROOM, max(SMALL_ROOM, length // 16))


def _read_exactly(body: Any, length: int) -> MessageBuffer:
    room = room_for(length)
    buffer = MessageBuffer(length, room)
    with memoryview(buffer) as view:
        filled = 0
        while filled < length:
            read = body.readinto(view[room + filled :])
            if not read:
                break
            filled += read
    # One more read at the end lets botocore check the length and the response checksum.
    body.readinto(bytearray(1))
    return buffer


class S3MailStore:
    """Reads `s3://bucket/prefix<messageId>`; never writes or deletes."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    def key_for(self, message_id: str) -> str:
        return f"{self.prefix}{message_id}"

    def read(self, message_id: str) -> MessageBuffer:
        """The raw message after some free room (`room_for`), or `StoredMailError` naming where it should have been.

        Read into one buffer: the service then writes each forwarded header block into it in place,
        so a 40 MB message is held once, not twice.
        """
        key = self.key_for(message_id)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return _read_exactly(response["Body"], int(response["ContentLength"]))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            what = "is missing" if code in _MISSING else f"cannot be read ({code})"
            raise StoredMailError(f"stored mail s3://{self.bucket}/{key} {what}") from error

    def size(self, message_id: str) -> int:
        """Size in bytes of the stored message (a HEAD request); `StoredMailError` when it is not stored.

        A role without s3:ListBucket (the download function's) gets 403 for a key that does not exist. Any other
        failure (S3 throttling or failing, after botocore's retries) is raised as is: it says nothing about
        the message, which a member told "no longer stored" would give up on."""
        key = self.key_for(message_id)
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code not in _ABSENT:
                raise
            raise StoredMailError(f"stored mail s3://{self.bucket}/{key} cannot be read ({code})") from error

    def download_link(self, message_id: str, expires_seconds: int) -> str:
        """A presigned GET link to the stored `.eml`, served as an attachment that no cache keeps (private mail:
        S3's answer has a Last-Modified and no Cache-Control of its own, which a shared cache may keep by heuristic
        freshness)."""
        key = self.key_for(message_id)
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": "message/rfc822",
                "ResponseCacheControl": "private, no-store",
                "ResponseContentDisposition": f'attachment; filename="{message_id}.eml"',
            },
            ExpiresIn=expires_seconds,
        )
