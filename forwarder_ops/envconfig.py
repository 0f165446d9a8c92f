"""Which deployed environment a command targets: samconfig.toml, the stack's outputs, explicit flags.

`--config-env dev` reads `[dev.deploy.parameters]` (over `[dev.global.parameters]`) of samconfig.toml,
the file `sam deploy --config-env dev` reads; explicit flags (`--region`, `--stack-name`,
`--alias-path`, `--domain`, `--profile`) win over it.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder.clients import client_config
from forwarder_ops.errors import CommandError

DEFAULT_CONFIG_FILE = Path("samconfig.toml")
_SECTIONS = ("global", "deploy")


class StackNotFoundError(CommandError):
    """The stack does not exist in the region (not deployed, or the wrong region or name)."""


@dataclass(frozen=True, slots=True)
class SamConfig:
    """One environment of samconfig.toml, as `sam deploy --config-env <name>` sees it."""

    name: str
    path: Path
    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)


def parse_overrides(value: str | list[str] | None) -> dict[str, str]:
    """SAM's `parameter_overrides`: one space-separated string or a list, of `Key=Value` items.

    Values may be quoted (`Key="a b"`); the CloudFormation CLI form
    `ParameterKey=Key,ParameterValue=Value` is accepted too, as SAM does.
    """
    if not value:
        return {}
    items = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    parameters: dict[str, str] = {}
    for item in items:
        if item.startswith("ParameterKey="):
            key_part, _, value_part = item.partition(",ParameterValue=")
            key, text = key_part.removeprefix("ParameterKey="), value_part
        else:
            key, sep, text = item.partition("=")
            if not sep:
                raise CommandError(f"parameter_overrides item {item!r} is not Key=Value")
        parameters[key.strip()] = text.strip().strip('"').strip("'")
    return parameters


def load_samconfig(path: Path, name: str) -> SamConfig:
    """The environment `name` of the samconfig file at `path`, or a `CommandError` saying what is wrong."""
    if not path.is_file():
        raise CommandError(
            f"no {path} here: run the command in the repository root or give --config-file PATH "
            "(or give --region/--stack-name/--alias-path instead of --config-env)"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None
    environment = data.get(name)
    if not isinstance(environment, dict):
        known = sorted(k for k, v in data.items() if isinstance(v, dict))
        raise CommandError(f"no environment {name!r} in {path} (known: {', '.join(known) or 'none'})")
    merged: dict[str, Any] = {}
    for section in _SECTIONS:
        merged.update(environment.get(section, {}).get("parameters", {}))
    return SamConfig(
        name=name,
        path=path,
        stack_name=merged.get("stack_name"),
        region=merged.get("region"),
        profile=merged.get("profile"),
        parameters=parse_overrides(merged.get("parameter_overrides")),
    )


@dataclass
class Target:
    """A deployed (or to-be-deployed) environment: its region, stack, domain and alias path."""

    name: str
    region: str
    stack_name: str | None = None
    profile: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    explicit_alias_path: str | None = None
    explicit_domain: str | None = None
    _outputs: dict[str, str] | None = field(default=None, repr=False)
    _session: Any = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client for `service` in this environment's region (tests swap this method)."""
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
        return self._session.client(service, region_name=self.region, config=client_config(service))

    # the stack -----------------------------------------------------------------------------------

    def stack(self) -> dict[str, Any]:
        """The CloudFormation stack (DescribeStacks), or a `CommandError` when it does not exist."""
        from botocore.exceptions import ClientError

        if not self.stack_name:
            raise CommandError("no stack name: give --config-env ENV (samconfig.toml) or --stack-name NAME")
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationError":
                raise StackNotFoundError(
                    f"stack {self.stack_name} not found in {self.region}: deploy it with "
                    f"`sam deploy --config-env {self.name}` or check --region/--stack-name"
                ) from None
            raise
        stack: dict[str, Any] = stacks[0]
        self._outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
        return stack

    def outputs(self) -> dict[str, str]:
        """The stack's outputs (Domain, FailureQueueUrl, FunctionName, ...), read once."""
        if self._outputs is None:
            self.stack()
        return dict(self._outputs or {})

    def output(self, key: str) -> str:
        """One stack output, or a `CommandError` naming it."""
        value = self.outputs().get(key)
        if not value:
            raise CommandError(f"stack {self.stack_name} has no output {key}: redeploy it with the current template")
        return value

    # what the commands need ----------------------------------------------------------------------

    @property
    def environment_name(self) -> str:
        return self.parameters.get("EnvironmentName") or self.name

    @property
    def alias_path(self) -> str:
        """--alias-path, else the AliasPath parameter, else the template's default for the environment."""
        path = self.explicit_alias_path or self.parameters.get("AliasPath")
        if not path:
            if not self.name:
                raise CommandError("no alias path: give --config-env ENV or --alias-path PATH")
            path = f"/email-forwarder/{self.environment_name}/aliases"
        return path.rstrip("/")

    @property
    def domain(self) -> str | None:
        """--domain, else the DomainName parameter, else the stack's Domain output; None when unknown."""
        domain = self.explicit_domain or self.parameters.get("DomainName")
        if not domain and self.stack_name:
            from botocore.exceptions import ClientError

            try:
                domain = self.outputs().get("Domain")
            except (CommandError, ClientError):  # no stack, or no right to read it: the domain stays unknown
                domain = None
        return domain.strip().lower().rstrip(".") if domain else None


def resolve_target(
    config_env: str | None = None,
    config_file: Path | None = None,
    *,
    region: str | None = None,
    stack_name: str | None = None,
    alias_path: str | None = None,
    domain: str | None = None,
    profile: str | None = None,
) -> Target:
    """The environment named by --config-env and the explicit flags (which win)."""
    config = load_samconfig(config_file or DEFAULT_CONFIG_FILE, config_env) if config_env else None
    profile = profile or (config.profile if config else None)
    region = region or (config.region if config else None) or _ambient_region(profile)
    if not region:
        raise CommandError("no AWS region: give --config-env ENV (samconfig.toml) or --region REGION")
    return Target(
        name=config_env or "",
        region=region,
        stack_name=stack_name or (config.stack_name if config else None),
        profile=profile,
        parameters=dict(config.parameters) if config else {},
        explicit_alias_path=alias_path,
        explicit_domain=domain,
    )


def _ambient_region(profile: str | None) -> str | None:
    """The region the AWS CLI would use: AWS_REGION, AWS_DEFAULT_REGION, the profile's region."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import boto3

    return boto3.session.Session(profile_name=profile).region_name
