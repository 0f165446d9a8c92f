"""Lambda entry point: `forwarder.app.lambda_handler`, invoked by an SES receipt rule."""

from __future__ import annotations

from typing import Any

from forwarder.aws.sender import SenderNotReadyError
from forwarder.models import parse_event
from forwarder.observability import count_outcome, logger, metrics, tracer
from forwarder.service import Inbound
from forwarder.wiring import get_service


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Forward every SES record of `event`; raising asks Lambda to retry the whole event."""
    records = parse_event(event).records
    service = get_service()
    service.once.register_context(context)
    outcomes = []
    for record, received in zip(records, event["Records"], strict=True):
        mail, receipt = record.mail, record.receipt
        logger.append_keys(message_id=mail.message_id)
        inbound = Inbound(mail.message_id, receipt.recipients, mail.source, receipt.verdicts())
        try:
            outcome = service.forward(inbound)
        except SenderNotReadyError as error:
            outcome = service.park({"Records": [received]}, inbound, error, context)
        count_outcome(outcome)
        outcomes.append(outcome.as_dict())
    return {"outcomes": outcomes}
