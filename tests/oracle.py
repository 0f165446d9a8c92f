"""An independent oracle for forwarded mail: two parsers that share no code with `forwarder.mail`.

`tests/mailcheck.py` checks a forward with the same `split_message` that produced it, so a mistake in
the splitter would pass unseen. Here the standard library's parser and mail-parser each read the input
and the output, and must find the same leaf parts with the same decoded content: the forwarder changes
header fields, never what a mail program shows or saves (a part re-encoded because of over-long lines
decodes to the same bytes).
"""

from __future__ import annotations

import email
import email.policy
import logging
import random
from typing import Any

import mailparser

# mail-parser logs every defect it meets at WARNING; the corpus is malformed on purpose.
logging.getLogger("mailparser").setLevel(logging.ERROR)

Part = tuple[str, bytes | None]


def stdlib_parts(raw: bytes) -> list[Part]:
    """Every leaf part as the standard library reads it: content type and transfer-decoded bytes."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [
        (part.get_content_type(), part.get_payload(decode=True)) for part in message.walk() if not part.is_multipart()
    ]


def mailparser_parts(raw: bytes) -> dict[str, Any]:
    """The texts and attachments as mail-parser reads them (what a reader of the mail is shown).

    mail-parser names an attachment that has no file name (`Content-Disposition: attachment` alone, or RTF)
    with random letters: the same seed for every reading gives such a part the same name in the input and the
    output (a part that loses its name still differs: the input's name is real), and the global random state
    is restored after.

    A mail that mail-parser cannot read (its own bugs, on some malformed MIME: a multipart nested in one with
    the same boundary) reads as how it fails: input and output must fail alike, and the stdlib still compares
    their content."""
    state = random.getstate()
    random.seed(0)
    try:
        message = mailparser.parse_from_bytes(raw)
    except Exception as error:
        return {"mail-parser failed": type(error).__name__}
    finally:
        random.setstate(state)
    attachments = [
        (a.get("mail_content_type"), a.get("filename"), a.get("binary"), a.get("payload")) for a in message.attachments
    ]
    return {
        "text/plain": message.text_plain,
        "text/html": message.text_html,
        "other text": message.text_not_managed,
        "attachments": attachments,
    }


def assert_same_parts(original: bytes, output: bytes) -> None:
    """`output` reads, with both parsers, as the same parts with the same decoded content as `original`."""
    assert stdlib_parts(output) == stdlib_parts(original)
    assert mailparser_parts(output) == mailparser_parts(original)
