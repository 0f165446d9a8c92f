"""Doing a piece of work once per key: Powertools Idempotency on DynamoDB, or not at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from forwarder.ports import Result

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _run(*, key: Result, work: Callable[[], Result]) -> Result:
    return work()


class DynamoDBOnce:
    """One record per key in the table (partition key `id`, `send#<hash of the key>`), kept for `expiry_days`.

    A completed key returns its saved result; a key whose run is still in progress raises
    Powertools' `IdempotencyAlreadyInProgressError`, so that Lambda retries later; a run that raised
    leaves no record, so that its retry runs again.
    """

    def __init__(self, client: DynamoDBClient, table: str, expiry_days: int) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self.config = IdempotencyConfig(expires_after_seconds=expiry_days * 86_400, use_local_cache=True)
        self._run = idempotent_function(
            _run,
            data_keyword_argument="key",
            persistence_store=DynamoDBPersistenceLayer(table_name=table, boto3_client=client),
            config=self.config,
            key_prefix="send",
        )

    def register_context(self, context: Any) -> None:
        """Lets Powertools expire an in-progress record when this invocation times out."""
        self.config.register_lambda_context(context)

    def __call__(self, key: Result, work: Callable[[], Result]) -> Result:
        result: Result = self._run(key=key, work=work)
        return result
