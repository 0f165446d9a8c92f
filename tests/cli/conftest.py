"""CLI fixtures: a samconfig.toml in the working directory, moto with a deployed stack, fakes for the
calls moto cannot answer (SES v2 GetAccount, DKIM/MAIL FROM status: forwarder_ops.local.SesV2Answers; Lambda
Invoke) and for DNS."""

from __future__ import annotations

import errno
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from forwarder_ops.cli import main
from forwarder_ops.envconfig import Target
from forwarder_ops.local import SesV2Answers, SuppressionList

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
DOMAIN = "dev.aws-educate.tw"
STACK = "email-forwarder-dev"
ALIAS_PATH = "/email-forwarder/dev/aliases"
RULE_SET = "email-forwarder-dev-rules"
RULE = "email-forwarder-dev-forward"
FUNCTION = "email-forwarder-dev"

# What `sam deploy` leaves behind, reduced to what the CLI reads: the failure queue is a real
# resource, every other output is passed in (moto's CloudFormation cannot create SES receipt rules).
STACK_TEMPLATE = {
    "Parameters": {
        name: {"Type": "String"}
        for name in ("Domain", "HostedZoneId", "AliasPath", "RuleSetName", "RuleName", "FunctionName")
    },
    "Resources": {"FailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{STACK}-failures"}}},
    "Outputs": {
        "Domain": {"Value": {"Ref": "Domain"}},
        "HostedZoneId": {"Value": {"Ref": "HostedZoneId"}},
        "AliasPath": {"Value": {"Ref": "AliasPath"}},
        "ReceiptRuleSetName": {"Value": {"Ref": "RuleSetName"}},
        "ReceiptRuleName": {"Value": {"Ref": "RuleName"}},
        "FunctionName": {"Value": {"Ref": "FunctionName"}},
        "FunctionArn": {
            "Value": {"Fn::Sub": "arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:${FunctionName}"}
        },
        "FailureQueueUrl": {"Value": {"Ref": "FailureQueue"}},
        "FailureQueueArn": {"Value": {"Fn::GetAtt": ["FailureQueue", "Arn"]}},
    },
}


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs `forwarder_ops.cli.main` (the console script's function) and captures what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str | None = None, tty: bool = False) -> Result:
        self._capsys.readouterr()
        self._monkeypatch.setattr(sys, "stdin", Terminal(stdin or "") if tty else io.StringIO(stdin or ""))
        code = main(list(argv))
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


class Terminal(io.StringIO):
    """stdin as an operator at a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, monkeypatch)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in a directory holding the test samconfig.toml, like the repository root."""
    shutil.copy(HERE / "samconfig.toml", tmp_path / "samconfig.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fill_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to fill the disk: from then on, every `Path.write_text` writes half its text and fails (ENOSPC)."""

    def fill() -> None:
        write_text = Path.write_text

        def half(self: Path, text: str, *args: Any, **kwargs: Any) -> int:
            write_text(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, "write_text", half)

    return fill


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def client(service: str, region: str = REGION) -> Any:
    return boto3.client(service, region_name=region)


@dataclass
class Deployment:
    """The resources of a deployed environment in moto."""

    zone_id: str
    name_servers: list[str]
    queue_url: str
    outputs: dict[str, str]

    def park(self, body: str | dict[str, Any]) -> None:
        """Put a record in the failure queue, as Lambda's on-failure destination does."""
        text = body if isinstance(body, str) else json.dumps(body)
        client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=text)

    def waiting(self) -> int:
        attributes = client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


def deploy(aliases: dict[str, str] | None = None, *, rule_enabled: bool = True, zone_name: str = DOMAIN) -> Deployment:
    """Create what the stack creates (in moto): identity, hosted zone, active rule set, queue, aliases.

    `zone_name`: the zone the stack writes into; a parent domain's zone when it holds the domain's records."""
    client("ses").verify_domain_identity(Domain=DOMAIN)
    zone = client("route53").create_hosted_zone(Name=zone_name, CallerReference="cli-tests")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    ses = client("ses")
    ses.create_receipt_rule_set(RuleSetName=RULE_SET)
    ses.create_receipt_rule(
        RuleSetName=RULE_SET,
        Rule={"Name": RULE, "Enabled": rule_enabled, "Recipients": [DOMAIN], "ScanEnabled": True, "Actions": []},
    )
    ses.set_active_receipt_rule_set(RuleSetName=RULE_SET)
    for name, value in (aliases or {}).items():
        client("ssm").put_parameter(Name=f"{ALIAS_PATH}/{name}", Value=value, Type="StringList")
    parameters = {
        "Domain": DOMAIN,
        "HostedZoneId": zone_id,
        "AliasPath": ALIAS_PATH,
        "RuleSetName": RULE_SET,
        "RuleName": RULE,
        "FunctionName": FUNCTION,
    }
    cloudformation = client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(STACK_TEMPLATE),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    return Deployment(zone_id, list(zone["DelegationSet"]["NameServers"]), outputs["FailureQueueUrl"], outputs)


@pytest.fixture
def deployed(aws: None) -> Deployment:
    return deploy({"team": "alice@gmail.com, bob@gmail.com", "tech": "carol@example.org"})


@pytest.fixture
def client_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Clients to use instead of the boto3 ones, by service name, for the calls moto lacks."""
    overrides: dict[str, Any] = {}
    original = Target.client

    def make(self: Target, service: str) -> Any:
        return overrides[service] if service in overrides else original(self, service)

    monkeypatch.setattr(Target, "client", make)
    return overrides


@dataclass
class FakeSesV2(SesV2Answers):
    """The SES v2 client of a deployed environment: moto, with the local emulator's answers for the calls
    moto lacks or gets wrong (GetAccount; GetEmailIdentity's verification, DKIM and MAIL FROM); the other
    calls (ListEmailIdentities) go to moto as they are. The fields change the answers."""

    quota: tuple[float, float, float] | None = (50_000.0, 14.0, 120.0)

    # moto has no account-level suppression list: the emulator's answers it, below moto.
    suppressed: SuppressionList = field(default_factory=SuppressionList)

    def __post_init__(self) -> None:
        self._client = boto3.client("sesv2", region_name=self.region)
        self.install(self._client.meta.events)
        self.suppressed.install(self._client.meta.events)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._client, name)


@dataclass
class FakeResolver:
    """DNS answers for the doctor: the delegation at the parent and the MX records."""

    delegations: dict[str, list[str]] = field(default_factory=dict)
    mx_records: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def delegation(self, name: str) -> list[str]:
        return sorted(self.delegations.get(name, []))

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted(self.mx_records.get(name, []))


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """The doctor's DNS, answered here (no network in tests)."""
    fake = FakeResolver()
    monkeypatch.setattr("forwarder_ops.doctor.system_resolver", lambda: fake)
    return fake


class InProcessLambda:
    """Lambda's Invoke, answered by running the real handler in this process.

    moto's Lambda runs function code in Docker, which the tests do not have; the handler here runs
    against the embedded AWS emulator, so a replay really reads S3, SSM and DynamoDB and sends.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self.calls: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        self.calls.append({"FunctionName": FunctionName, "InvocationType": InvocationType})
        event = json.loads(Payload)
        try:
            with redirect_stdout(io.StringIO()):  # the handler's metrics line
                result = self.env.invoke(event)
        except Exception as error:
            body = {"errorType": type(error).__name__, "errorMessage": str(error)}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}
