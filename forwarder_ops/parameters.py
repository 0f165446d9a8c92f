"""The template's constraints on its parameters (template.yaml, `Parameters`), as CloudFormation applies them.

CloudFormation refuses a value that breaks its parameter's AllowedPattern, AllowedValues or MinValue/MaxValue
when `sam deploy` makes the change set, and a parameter without a Default that has no value. The survey and
the checks read some values normalised (the domain in lower case, without a trailing dot), so without this
table preflight would call ready an environment the deploy refuses. The table is the template's own, copied
(preflight runs without a YAML parser); tests/template checks that the two are the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_ZONE_ID = r"^(?!.*(?:PLACEHOLDER|EXAMPLE|REPLACE|CHANGEME))(Z[A-Z0-9]{4,31})?$"
_MODES = ("create", "existing")


@dataclass(frozen=True, slots=True)
class Constraint:
    """What CloudFormation accepts for one parameter."""

    pattern: str | None = None
    values: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    required: bool = False  # no Default: the deploy needs a value

    def problem(self, value: str | None) -> str | None:
        """Why CloudFormation refuses `value` (None: not given, the default applies), or None when it takes it."""
        if value is None:
            return "has no value, and the template has no default for it" if self.required else None
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"does not match the template's AllowedPattern {self.pattern}"
        if self.values and value not in self.values:
            return f"is not one of {', '.join(self.values)}"
        if self.minimum is not None and self.maximum is not None:
            try:
                number = float(value)
            except ValueError:
                return "is not a number"
            if not self.minimum <= number <= self.maximum:
                return f"is not between {self.minimum} and {self.maximum}"
        return None


CONSTRAINTS: Mapping[str, Constraint] = {
    "EnvironmentName": Constraint(pattern=r"^[a-z][a-z0-9-]{1,19}$", required=True),
    "DomainName": Constraint(
        pattern=r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", required=True
    ),
    "HostedZoneId": Constraint(pattern=_ZONE_ID),
    "ParentHostedZoneId": Constraint(pattern=_ZONE_ID),
    "MailFromSubdomain": Constraint(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"),
    "ReceiptRuleSetName": Constraint(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$"),
    "ReceiptRuleSetMode": Constraint(values=("create-and-activate", "join-existing")),
    "EmailIdentityMode": Constraint(values=_MODES),
    "MxRecordMode": Constraint(values=_MODES),
    "MailFromRecordsMode": Constraint(values=_MODES),
    "DmarcRecordMode": Constraint(values=_MODES),
    "AliasPath": Constraint(pattern=r"^(/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.\-])?$"),
    "RetentionDays": Constraint(minimum=1, maximum=3650),
    "AlarmEmail": Constraint(pattern=r"^([^@\s]+@[^@\s]+\.[^@\s]+)?$"),
    "DmarcPolicy": Constraint(values=("none", "quarantine", "reject")),
    "DmarcReportAddress": Constraint(pattern=r"^([^@\s;,!]+@[^@\s;,!]+\.[^@\s;,!]+)?$"),
    "TlsPolicy": Constraint(values=("Optional", "Require")),
    "ReservedConcurrency": Constraint(minimum=0, maximum=1000),
    "DownloadConcurrency": Constraint(minimum=0, maximum=20),
    "Tracing": Constraint(values=("Disabled", "Active")),
    "SpamAction": Constraint(values=("tag", "drop")),
    "MaxMessageBytes": Constraint(minimum=1000000, maximum=40000000),
    "SubjectPrefix": Constraint(pattern=r"^[^\r\n]{0,32}$"),
    "TraceSubjects": Constraint(values=("true", "false")),
    "ReplyMode": Constraint(values=("team", "direct")),
}


def refused(given: Mapping[str, str]) -> dict[str, str]:
    """The parameters whose value (as `given` to the deploy) CloudFormation refuses, with why."""
    problems = {}
    for name, constraint in CONSTRAINTS.items():
        problem = constraint.problem(given.get(name))
        if problem is not None:
            problems[name] = problem
    return problems
