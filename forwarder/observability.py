"""The Powertools logger, metrics and tracer shared by the handler and the service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from forwarder.service import Outcome

SERVICE = "ses-forwarder"
NAMESPACE = "SesForwarder"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


def count_outcome(outcome: Outcome) -> None:
    """EMF metrics of one message: Forwarded and Recipients, or Dropped (in total and by reason)."""
    if outcome.forwarded:
        metrics.add_metric(name="Forwarded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Recipients", unit=MetricUnit.Count, value=outcome.recipients)
    else:
        metrics.add_metric(name="Dropped", unit=MetricUnit.Count, value=1)
        with single_metric(name="Dropped", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="reason", value=outcome.reason or "unknown")
    if outcome.failed:
        metrics.add_metric(name="RecipientsFailed", unit=MetricUnit.Count, value=len(outcome.failed))
    if outcome.oversize:
        metrics.add_metric(name="Oversize", unit=MetricUnit.Count, value=1)
