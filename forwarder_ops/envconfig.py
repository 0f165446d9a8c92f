"""Which deployed environment a command targets: samconfig.toml, the environment, explicit flags.

`--config-env dev` reads `[dev.deploy.parameters]` (over `[dev.global.parameters]`) of samconfig.toml,
the file `sam deploy --config-env dev` reads. Each setting of the target (`region`, `stack_name`,
`profile`, `alias_path`, `domain`) comes from, in order: its flag (`--region` ...), its environment
variable (`FORWARDER_OPS_REGION` ...), the samconfig section (`region`, `stack_name`, `profile`, the
`AliasPath` and `DomainName` parameter overrides); a region may also come from the AWS CLI's own
(`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's). pydantic-settings layers them (`TargetSettings`);
a bad value is one line naming the setting and where it came from.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from forwarder.clients import client_config
from forwarder.config import ALIAS_PATH, DOMAIN_NAME
from forwarder_ops.errors import CommandError, read_text

DEFAULT_CONFIG_FILE = Path("samconfig.toml")
ENV_PREFIX = "FORWARDER_OPS_"
_SECTIONS = ("global", "deploy")
# What a setting must look like (after `_NORMAL`), and what to say when it does not; the alias path and
# the domain as the function itself checks them.
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    "region": (re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"), "is not an AWS region such as us-east-1"),
    "stack_name": (
        STACK_NAME,
        "is not a CloudFormation stack name (a letter, then letters, digits, '-')",
    ),
    "alias_path": (ALIAS_PATH, "is not an SSM path such as /email-forwarder/dev/aliases"),
    "domain": (DOMAIN_NAME, "is not a domain name such as dev.example.org"),
}
_NORMAL: dict[str, Callable[[str], str]] = {
    "alias_path": lambda path: path.rstrip("/"),
    "domain": lambda name: name.lower().rstrip("."),
}


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
    if not isinstance(value, str | list):
        raise CommandError("parameter_overrides is neither a string nor a list of Key=Value items")
    try:
        items = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    except ValueError as error:  # an unclosed quote
        raise CommandError(f"parameter_overrides {value!r} is not Key=Value items: {error}") from None
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
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"{path} is not valid TOML: {error}") from None
    environment = data.get(name)
    if not isinstance(environment, dict):
        known = sorted(k for k, v in data.items() if isinstance(v, dict))
        raise CommandError(f"no environment {name!r} in {path} (known: {', '.join(known) or 'none'})")
    merged: dict[str, Any] = {}
    for section in _SECTIONS:
        table = environment.get(section, {})
        parameters = table.get("parameters", {}) if isinstance(table, dict) else None
        if not isinstance(parameters, dict):
            raise CommandError(
                f"{path}: [{name}.{section}.parameters] must be a table of settings such as region = ..."
            )
        merged.update(parameters)
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
    # With --config-env: the region and stack given (flag or FORWARDER_OPS_*) over the section's, as flags.
    overrides: str = ""
    _outputs: dict[str, str] | None = field(default=None, repr=False)
    _status: str = field(default="", repr=False)
    _session: Any = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        """A boto3 client for `service` in this environment's region (tests swap this method)."""
        return self._boto_session().client(service, region_name=self.region, config=client_config(service))

    def probe_client(self, service: str, region: str) -> Any:
        """A client for a look into another region with the same credentials: two attempts, short timeouts (a
        region the account has not opted into, or cannot reach, must not hold up the command)."""
        from botocore.config import Config

        quick = Config(retries={"total_max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=5)
        return self._boto_session().client(service, region_name=region, config=client_config(service).merge(quick))

    def _boto_session(self) -> Any:
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
        return self._session

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
        self._status = str(stack.get("StackStatus", ""))
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
        if value:
            return value
        from forwarder_ops.stackstate import stack_state

        deploy = f"sam deploy --config-env {self.name}" if self.name else "sam deploy"
        state = stack_state(str(self.stack_name), self.region, self._status, deploy)
        if state.severity == "fail":  # a failed or half-deleted stack: redeploying alone would not work
            raise CommandError(
                f"stack {self.stack_name} has no output {key}: it is {self._status} ({state.meaning}): {state.fix}"
            )
        raise CommandError(f"stack {self.stack_name} has no output {key}: redeploy it with the current template")

    # what the commands need ----------------------------------------------------------------------

    @property
    def command_flags(self) -> str:
        """The flags that name this environment in the commands an advice suggests (with a leading space):
        --config-env, else the region and stack given, so that the advice acts where the command looked."""
        if self.name:
            return f" --config-env {self.name}{self.overrides}"
        return f" --region {self.region}" + (f" --stack-name {self.stack_name}" if self.stack_name else "")

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


# the settings, layered -----------------------------------------------------------------------------

# The samconfig section of the current `resolve_target` call, for the settings source below.
_SAMCONFIG: ContextVar[SamConfig | None] = ContextVar("samconfig", default=None)


class _SamConfigSource(PydanticBaseSettingsSource):
    """The lowest layer: what `sam deploy --config-env ENV` would use."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        config = _SAMCONFIG.get()
        if config is None:
            return {}
        values = {
            "region": config.region,
            "stack_name": config.stack_name,
            "profile": config.profile,
            "alias_path": config.parameters.get("AliasPath"),
            "domain": config.parameters.get("DomainName"),
        }
        return {name: value for name, value in values.items() if value}


class TargetSettings(BaseSettings):
    """The target's settings: flags (init arguments) over `FORWARDER_OPS_*` over the samconfig section."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    region: str | None = None
    stack_name: str | None = None
    profile: str | None = None
    alias_path: str | None = None
    domain: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SamConfigSource(settings_cls)

    @field_validator("region", "stack_name", "profile", "alias_path", "domain", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator(*_SHAPES)
    @classmethod
    def _shape(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = str(info.field_name)
        pattern, why = _SHAPES[name]
        normal: Callable[[str], str] = _NORMAL.get(name, str)
        if value is not None and not pattern.match(normal(value)):
            raise ValueError(f"{value!r} {why}")
        return value


_FLAGS = {"stack_name": "--stack-name", "alias_path": "--alias-path"}


def _where(name: str, flags: Mapping[str, Any], config: SamConfig | None) -> str:
    """Which layer gave setting `name` its value, for an error message."""
    if flags.get(name) is not None:
        return _FLAGS.get(name, f"--{name}")
    variable = ENV_PREFIX + name.upper()
    if any(key.upper() == variable for key in os.environ):
        return variable
    key = {"alias_path": "AliasPath", "domain": "DomainName"}.get(name, name)
    return f"{key} in [{config.name}] of {config.path}" if config else name


def _settings(flags: Mapping[str, Any], config: SamConfig | None) -> TargetSettings:
    """The layered settings, or a one-line `CommandError` naming the bad setting and where it was given."""
    token = _SAMCONFIG.set(config)
    try:
        return TargetSettings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "setting"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CommandError(f"{_where(name, flags, config)}: {message}") from None
    finally:
        _SAMCONFIG.reset(token)


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
    """The environment named by --config-env, the `FORWARDER_OPS_*` variables and the explicit flags (which win)."""
    config = load_samconfig(config_file or DEFAULT_CONFIG_FILE, config_env) if config_env else None
    flags = {"region": region, "stack_name": stack_name, "profile": profile, "alias_path": alias_path, "domain": domain}
    settings = _settings(flags, config)
    resolved_region = settings.region or _ambient_region(settings.profile)
    if not resolved_region:
        raise CommandError("no AWS region: give --config-env ENV (samconfig.toml) or --region REGION")
    # An advice must act where this command looked: the region or stack given over the section's goes with it.
    overrides = (
        ""
        if config is None
        else "".join(
            f" {flag} {value}"
            for flag, value, configured in (
                ("--region", resolved_region, config.region),
                ("--stack-name", settings.stack_name, config.stack_name),
            )
            if value and value != configured
        )
    )
    return Target(
        name=config_env or "",
        region=resolved_region,
        stack_name=settings.stack_name,
        profile=settings.profile,
        parameters=dict(config.parameters) if config else {},
        explicit_alias_path=settings.alias_path,
        explicit_domain=settings.domain,
        overrides=overrides,
    )


def _ambient_region(profile: str | None) -> str | None:
    """The region the AWS CLI would use: AWS_REGION, AWS_DEFAULT_REGION, the profile's region."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import boto3

    return boto3.session.Session(profile_name=profile).region_name
