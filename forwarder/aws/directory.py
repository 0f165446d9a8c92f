"""The alias directory: one SSM parameter per alias under `FORWARDER_ALIAS_PATH`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider


class SsmAliasDirectory:
    """Alias name (lower case) -> raw member list, cached for `max_age` seconds by Powertools."""

    def __init__(self, provider: SSMProvider, path: str, max_age: int) -> None:
        self._provider = provider
        self.path = path.rstrip("/")
        self.max_age = max_age

    def aliases(self) -> dict[str, str]:
        """Every alias directly under the path; an alias name's case does not matter."""
        values = self._provider.get_multiple(self.path, max_age=self.max_age, decrypt=False, recursive=False)
        aliases: dict[str, str] = {}
        for name, value in values.items():
            if "/" in name:
                continue
            # SSM names are case-sensitive: `Team` and `team` are two parameters for one alias. Both lists receive
            # (routing sends each member once); keeping one would drop the other's members without a word.
            key, members = name.lower(), str(value)
            aliases[key] = f"{aliases[key]},{members}" if key in aliases else members
        return aliases
