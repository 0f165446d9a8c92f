"""The MIME walk's reading of Content-Type and Content-Disposition fields."""

from __future__ import annotations

from forwarder.mail.message import HeaderField
from forwarder.mail.mime import content_type


def test_content_type_reads_a_huge_field_by_the_parameters_it_needs() -> None:
    # GIVEN a 2 MB Content-Type of 400,000 parameters before its boundary, and a Content-Disposition naming a file
    # after as many: the stdlib's parameter parser copies the rest of the value at each parameter, so read whole
    # each takes a minute, past Lambda's timeout on every retry (it reads every part's, and the top one's often)
    junk = b"; a=b" * 400_000
    name = b"; filename*=utf-8''%E5%A0%B1\r\n"
    fields = (
        HeaderField("Content-Type", b"Content-Type: multipart/mixed" + junk + b'; boundary="B;1"\r\n'),
        HeaderField("Content-Disposition", b"Content-Disposition: attachment" + junk + name),
    )
    # WHEN it is read
    kind = content_type(fields)
    # THEN the type, the boundary and the file name are read as written (quoted `;` included), and the stdlib is
    # handed only what is read of them
    assert (kind.get_content_type(), kind.get_boundary(), kind.get_filename()) == ("multipart/mixed", "B;1", "報")
    assert len(str(kind["Content-Type"])) + len(str(kind["Content-Disposition"])) < 1_000


def test_content_type_keeps_a_field_of_ordinary_length_as_it_is() -> None:
    # GIVEN a Content-Type with parameters the walk does not read
    value = b'text/plain; charset="utf-8"; format=flowed; delsp=yes'
    # WHEN it is read THEN the stdlib is handed the whole value
    kind = content_type((HeaderField("Content-Type", b"Content-Type: " + value + b"\r\n"),))
    assert kind["Content-Type"] == value.decode()
    assert kind.get_param("format") == "flowed"
