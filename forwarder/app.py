"""Lambda entry point: `forwarder.app.lambda_handler`, invoked by an SES receipt rule."""

from __future__ import annotations

from typing import Any

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
    for record in records:
        mail, receipt = record.mail, record.receipt
        logger.append_keys(message_id=mail.message_id)
        outcome = service.forward(Inbound(mail.message_id, receipt.recipients, mail.source, receipt.verdicts()))
        count_outcome(outcome)
        outcomes.append(outcome.as_dict())
    return {"outcomes": outcomes}
