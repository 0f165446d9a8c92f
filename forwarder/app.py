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
    _cold_start()
    return handle(event, context, get_service())


@cache
def _cold_start() -> None:
    """Once per process, the first invocation: build the service (boto3's import, botocore's models, the
    clients, the settings) with the garbage collector paused, then freeze what exists. Nearly all of it lives as
    long as the process: collecting while it is built only walks it again and again (a tenth of the cold start),
    and freezing it spares every later collection the walk. A build that raises leaves the collector on."""
    gc.disable()
    try:
        get_service()
    finally:
        gc.enable()
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
