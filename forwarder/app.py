"""Lambda entry point: `forwarder.app.lambda_handler`, invoked by an SES receipt rule."""

from __future__ import annotations

import gc
from functools import cache
from typing import TYPE_CHECKING, Any

from forwarder.models import parse_event
from forwarder.observability import count_outcome, logger, metrics, tracer
from forwarder.ports import SenderNotReadyError
from forwarder.wiring import get_service

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from forwarder.service import ForwardingService


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Forward every SES record of `event`; raising asks Lambda to retry the whole event."""
    service = get_service()
    _freeze_once()
    return handle(event, context, service)


@cache
def _freeze_once() -> None:
    """Once per process, after the cold start built the service: what exists now (modules, botocore's models,
    clients, settings) lives as long as the process, so the garbage collector stops walking it on every
    collection of the invocations that follow."""
    gc.freeze()


def handle(event: dict[str, Any], context: LambdaContext, service: ForwardingService) -> dict[str, Any]:
    """The handler's work with the service passed in: tests call it with fakes."""
    records = parse_event(event).records
    service.register_context(context)
    outcomes = []
    for record, received in zip(records, event["Records"], strict=True):
        inbound = record.inbound()
        logger.append_keys(message_id=inbound.message_id)
        try:
            outcome = service.forward(inbound)
        except SenderNotReadyError as error:
            single = {"Records": [received]}
            outcome = service.park(single, inbound, error, context.aws_request_id, context.invoked_function_arn)
        count_outcome(outcome)
        outcomes.append(outcome.as_dict())
    return {"outcomes": outcomes}
